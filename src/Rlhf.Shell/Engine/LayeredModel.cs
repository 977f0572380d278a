using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

/// <summary>One named parameter of a layer and its shape.</summary>
public sealed record ParamSpec(string Name, long[] Shape)
{
    /// <summary>Number of elements.</summary>
    public long NumEl => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// One layer of a model the engine can run layer by layer: its parameters, a pure forward of
/// (parameters, input) → output, and an initialiser. The engine hands the forward gathered
/// parameters (ZeRO-3) or views of its flat buffers, and recomputes it in backward (activation
/// checkpointing), so <see cref="Forward"/> must be a function of its arguments only.
/// </summary>
public interface ILayer
{
    /// <summary>The layer's name; parameters are named <c>{Name}.{param}</c>.</summary>
    string Name { get; }

    /// <summary>The layer's parameters, in the order <see cref="Forward"/> receives them.</summary>
    IReadOnlyList<ParamSpec> Parameters { get; }

    /// <summary>Output of the layer for <paramref name="input"/> given its <paramref name="parameters"/> (spec order).</summary>
    Tensor Forward(IReadOnlyList<Tensor> parameters, Tensor input);

    /// <summary>Initial values (fp32, spec order and shapes) drawn from <paramref name="generator"/>.</summary>
    Tensor[] Initialize(Generator generator);
}

/// <summary>An ordered stack of layers; the last one's output is what <see cref="ZeroEngine.Forward"/> returns (logits, values…), and the caller's loss head turns it into a loss.</summary>
public interface ILayeredModel
{
    /// <summary>The layers, input to output.</summary>
    IReadOnlyList<ILayer> Layers { get; }
}

/// <summary>Writes consolidated weights somewhere (a Hugging Face directory by default).</summary>
public interface IWeightWriter
{
    /// <summary>Writes <paramref name="weights"/> (full tensors, HF names) into directory <paramref name="dir"/>.</summary>
    void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> weights);
}

/// <summary>Writes <c>model.safetensors</c> (Rlhf.Shell.Io) into the directory, copying <c>config.json</c> from a source directory when given.</summary>
public sealed class SafetensorsWeightWriter(string? configSourceDir = null) : IWeightWriter
{
    /// <inheritdoc />
    public void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> weights)
    {
        Directory.CreateDirectory(dir);
        Io.Safetensors.Write(Path.Combine(dir, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        if (configSourceDir is not null && File.Exists(Path.Combine(configSourceDir, "config.json")))
            File.Copy(Path.Combine(configSourceDir, "config.json"), Path.Combine(dir, "config.json"), overwrite: true);
    }
}
