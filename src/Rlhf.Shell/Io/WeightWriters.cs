using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Shell.Io;

/// <summary>Writes consolidated weights somewhere (a Hugging Face directory by default).</summary>
public interface IWeightWriter
{
    /// <summary>Writes <paramref name="weights"/> (full tensors, HF names) into directory <paramref name="dir"/>.</summary>
    void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> weights);
}

/// <summary>Writes <c>model.safetensors</c> into the directory, copying <c>config.json</c> from a source directory when given.</summary>
public sealed class SafetensorsWeightWriter(string? configSourceDir = null) : IWeightWriter
{
    /// <inheritdoc />
    public void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> weights)
    {
        Directory.CreateDirectory(dir);
        Safetensors.Write(Path.Combine(dir, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        if (configSourceDir is not null && File.Exists(Path.Combine(configSourceDir, "config.json")))
            File.Copy(Path.Combine(configSourceDir, "config.json"), Path.Combine(dir, "config.json"), overwrite: true);
    }
}

/// <summary>Writes consolidated weights as a Hugging Face model directory (<c>config.json</c> + safetensors) with <see cref="HfModelDirectory.Save"/>.</summary>
public sealed class HfModelWriter(ModelConfig config, long? maxShardBytes = null) : IWeightWriter
{
    /// <inheritdoc />
    public void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> weights) =>
        HfModelDirectory.Save(dir, new ModelWeights(config, weights), maxShardBytes);
}
