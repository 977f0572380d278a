using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Offline;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The model and tokenizer an offline stage trains, from the <c>model</c> and <c>tokenizer</c> sections: a Hugging Face
/// directory (<c>model.path</c>) or a random init from the section's architecture keys, with a language-model head (SFT,
/// DPO) or a scalar score head (reward model). A reward model started from a language-model directory drops the LM head
/// and gets a fresh <c>score.weight</c> ~ N(0, 0.02²), as transformers initialises <c>AutoModelForSequenceClassification</c>
/// from a causal-LM checkpoint (TRL <c>RewardTrainer</c> starts from one).
/// </summary>
public static class StageModels
{
    /// <summary>Standard deviation of the random init (transformers' <c>initializer_range</c> default).</summary>
    public const double InitializerRange = 0.02;

    /// <summary>The architecture the <c>model</c> section describes (random init), with <paramref name="head"/>.</summary>
    public static ModelConfig Architecture(ModelSettings m, ModelHead head)
    {
        var heads = checked((int)m.NumAttentionHeads);
        int? kv = m.NumKeyValueHeads is long k ? checked((int)k) : null;
        var layers = checked((int)m.NumHiddenLayers);
        var c = ModelTypeYaml.ToYaml(m.ModelType) switch
        {
            "llama" => ModelConfig.Llama(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            "qwen2" => ModelConfig.Qwen2(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            "gpt_neox" => ModelConfig.GptNeox(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, m.MaxPositionEmbeddings),
            "gpt2" => ModelConfig.Gpt2(m.VocabSize, m.HiddenSize, layers, heads, m.MaxPositionEmbeddings, m.IntermediateSize),
            var t => throw new ArgumentException($"model.model_type: unknown architecture '{t}'; expected one of {string.Join(", ", HfConfig.SupportedModelTypes)}"),
        };
        return (c with { RopeTheta = m.RopeTheta, RmsNormEps = m.RmsNormEps, TieWordEmbeddings = m.TieWordEmbeddings, Head = head }).Validated();
    }

    /// <summary>
    /// An engine over the stage's model: loaded from <c>model.path</c> (converted to <paramref name="head"/> when the directory
    /// has the other head: LM → score adds a fresh score head from <paramref name="seed"/>) or a random init drawn from
    /// <paramref name="seed"/> (<c>model.init_seed</c> wins when set). <paramref name="frozen"/> gives a <see cref="ZeroEngine.Frozen"/>
    /// engine (the DPO reference). One process (no process group).
    /// </summary>
    public static (ZeroEngine Engine, TransformerLayers Layers) Engine(ModelSettings m, ModelHead head, DeepSpeedSettings settings, ulong seed,
        Device device, bool frozen, bool gradientCheckpointing)
    {
        var initSeed = m.InitSeed is long s ? unchecked((ulong)s) : seed;
        if (m.Path is not { } dir)
        {
            var layers = new TransformerLayers(Architecture(m, head), InitializerRange);
            return (Create(layers), layers);
        }
        using var loaded = HfModelDirectory.Load(dir);
        using var scope = Torch.NewScope();
        var fromDir = new TransformerLayers(loaded.Config.Head == head ? loaded : WithHead(loaded, head, initSeed));
        return (Create(fromDir), fromDir);   // the engine copies the weights while it is constructed

        ZeroEngine Create(TransformerLayers l) => frozen
            ? ZeroEngine.Frozen(l, settings, null, initSeed, device)
            : new ZeroEngine(l, settings, null, initSeed, gradientCheckpointing, device);
    }

    /// <summary><paramref name="w"/> with its head swapped for <paramref name="head"/> (tensors in the caller's scope, shared with <paramref name="w"/>).</summary>
    public static ModelWeights WithHead(ModelWeights w, ModelHead head, ulong seed)
    {
        if (head == ModelHead.LanguageModel)
            throw new ArgumentException($"model.path holds a {w.Config.ModelType} model with a score head (a reward model); this stage needs a language model");
        var config = w.Config with { Head = head };
        var names = ModelWeights.ExpectedShapes(config).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var kept = w.Tensors.Where(kv => names.Contains(kv.Key)).ToList();
        using var gen = new Generator(seed);
        kept.Add(KeyValuePair.Create(WeightNames.Score, Torch.Randn([1, config.HiddenSize], gen, ScalarType.Float32) * InitializerRange));
        return new ModelWeights(config, kept).Validated();
    }

    /// <summary>The tokenizer of the <c>tokenizer</c> section: the byte tokenizer, or <c>tokenizer.json</c> from <c>tokenizer.path</c> (else <c>model.path</c>).</summary>
    public static ITokenizer Tokenizer(TokenizerSettings t, ModelSettings m)
    {
        if (t.Kind == TokenizerKind.Byte)
            return m.VocabSize > ByteTokenizer.Bos ? new ByteTokenizer(checked((int)m.VocabSize))
                : throw new ArgumentException($"model.vocab_size: the byte tokenizer needs at least {ByteTokenizer.Bos + 1} ids (256 bytes, pad, eos, bos); got {m.VocabSize}");
        var path = t.Path ?? m.Path ?? throw new ArgumentException("tokenizer.kind hf: set tokenizer.path (a tokenizer.json or its directory) or model.path");
        return ByteLevelBpeTokenizer.FromFile(Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path);
    }

    /// <summary>The device of <c>training.device</c>: cpu, cuda[:i], or auto (cuda when libtorch sees one).</summary>
    public static Device Device(TrainingSettings t) =>
        DeviceKindYaml.ToYaml(t.Device) is var kind && kind == "auto"
            ? (Torch.CudaIsAvailable ? Rlhf.Torch.Device.Cuda(0) : Rlhf.Torch.Device.Cpu)
            : Rlhf.Torch.Device.Parse(kind);
}

