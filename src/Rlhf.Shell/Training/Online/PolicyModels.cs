using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Online;

/// <summary>The policy's model and tokenizer as the flat <c>model:</c> and <c>tokenizer:</c> sections describe them.</summary>
public static class PolicyModels
{
    /// <summary>
    /// The architecture of <c>model:</c>: read from <c>model.path</c>'s <c>config.json</c> when set, else built from the section's
    /// sizes (a random init, as transformers' <c>AutoModelForCausalLM.from_config</c>).
    /// </summary>
    public static ModelConfig Config(ModelSettings m)
    {
        if (m.Path is { } path) return HfModelDirectory.LoadConfig(path);
        var layers = checked((int)m.NumHiddenLayers);
        var heads = checked((int)m.NumAttentionHeads);
        int? kv = m.NumKeyValueHeads is long k ? checked((int)k) : null;
        var c = m.ModelType switch
        {
            ModelType.Llama => ModelConfig.Llama(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            ModelType.Qwen2 => ModelConfig.Qwen2(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            ModelType.GptNeox => ModelConfig.GptNeox(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, m.MaxPositionEmbeddings),
            ModelType.Gpt2 => ModelConfig.Gpt2(m.VocabSize, m.HiddenSize, layers, heads, m.MaxPositionEmbeddings, m.IntermediateSize),
            var t => throw new ArgumentException($"model.model_type: {t} cannot be built from sizes"),
        };
        return (c with { RopeTheta = m.RopeTheta, RmsNormEps = m.RmsNormEps, TieWordEmbeddings = m.TieWordEmbeddings }).Validated();
    }

    /// <summary>Where the policy comes from, in words (for <c>--dry-run</c>).</summary>
    public static string Describe(ModelSettings m) =>
        m.Path is { } p ? $"Hugging Face directory {p}" : $"random init of a {m.ModelType} model from model: ({m.HiddenSize} hidden, {m.NumHiddenLayers} layers)";

    /// <summary>The layered model the engine trains: the weights of <c>model.path</c>, or a random init of <see cref="Config"/>.</summary>
    public static TransformerLayers Layers(ModelSettings m) =>
        m.Path is { } path ? new TransformerLayers(HfModelDirectory.Load(path, ScalarType.Float32)) : new TransformerLayers(Config(m));

    /// <summary>The tokenizer of <c>tokenizer:</c> (byte ids for the synthetic tasks, or a <c>tokenizer.json</c>).</summary>
    public static ITokenizer Tokenizer(TokenizerSettings t, ModelSettings m) => t.Kind switch
    {
        TokenizerKind.Byte => new ByteTokenizer(checked((int)Math.Max(259, m.VocabSize))),
        _ => ByteLevelBpeTokenizer.FromFile(TokenizerFile(t.Path ?? m.Path
            ?? throw new ArgumentException("tokenizer.kind is hf: set tokenizer.path or model.path to the directory holding tokenizer.json"))),
    };

    private static string TokenizerFile(string path) => Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;

    /// <summary><c>training.device</c> as a device: <c>auto</c> is the first GPU when there is one, else the CPU.</summary>
    public static Device Device(DeviceKind device) => device switch
    {
        DeviceKind.Cpu => Rlhf.Torch.Device.Cpu,
        DeviceKind.Cuda => Rlhf.Torch.Device.Cuda(0),
        _ => Torch.Torch.CudaIsAvailable ? Rlhf.Torch.Device.Cuda(0) : Rlhf.Torch.Device.Cpu,
    };
}
