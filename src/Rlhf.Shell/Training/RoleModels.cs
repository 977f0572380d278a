using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Training;

using Torch = Rlhf.Torch.Torch;

/// <summary>A model role of a run, as ROLL names them (the flat <c>model:</c> section is the policy's).</summary>
public enum ModelRole
{
    /// <summary><c>actor_train</c>: the policy being trained (also every offline stage's model).</summary>
    ActorTrain,
    /// <summary><c>reference</c>: the frozen reference policy.</summary>
    Reference,
    /// <summary><c>reward</c>: the learned reward model (score head), run frozen.</summary>
    Reward,
    /// <summary><c>critic</c>: PPO's value model (score head), trained.</summary>
    Critic,
}

/// <summary>
/// The one loader of every model a run trains or runs frozen, online or offline: each role from a Hugging Face directory or
/// a random init of the <c>model</c> section's architecture (as transformers' <c>AutoModel…from_config</c>), with a
/// language-model head or a scalar score head. A score-head role started from a language-model directory drops the LM head
/// and gets a fresh <c>score.weight</c> ~ N(0, 0.02²), as transformers initialises <c>AutoModelForSequenceClassification</c>
/// from a causal-LM checkpoint (TRL <c>RewardTrainer</c> and PPOv2's value model start from one). Frozen roles run through
/// <see cref="ZeroEngine.Frozen"/>. Also the run's tokenizer and device.
/// </summary>
public static class RoleModels
{
    /// <summary>Standard deviation of the random init (transformers' <c>initializer_range</c> default).</summary>
    public const double InitializerRange = 0.02;

    /// <summary>
    /// The trainer's intra-op threads when the generator does not share the cores: <c>training.trainer_threads</c>, else the
    /// process default (<see cref="Torch.DefaultNumThreads"/>). Training sets it on its thread whatever the thread ran
    /// before: the rounding depends on the count, and a run must repeat bit for bit (resumed, or in-process on another thread).
    /// </summary>
    public static int TrainerThreads(TrainingSettings t) => t.TrainerThreads is long n ? checked((int)n) : Torch.DefaultNumThreads;

    /// <summary>
    /// The Hugging Face directory <paramref name="role"/> loads, or null for a random init of <c>model:</c>:
    /// the role's <c>model_args.model_name_or_path</c> (the reward's under <c>reward.model_args</c>), else <c>model.path</c>
    /// for the policy and the reference (the critic's fallbacks are <see cref="CriticSource"/>'s).
    /// </summary>
    public static string? Path(RlhfConfig c, ModelRole role) => role switch
    {
        ModelRole.ActorTrain => c.ActorTrain?.ModelArgs.ModelNameOrPath ?? c.Model.Path,
        ModelRole.Reference => c.Reference?.ModelArgs.ModelNameOrPath ?? c.ActorTrain?.ModelArgs.ModelNameOrPath ?? c.Model.Path,
        ModelRole.Reward => c.Reward?.ModelArgs?.ModelNameOrPath,
        ModelRole.Critic => c.Critic?.ModelArgs.ModelNameOrPath,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, null),
    };

    /// <summary>
    /// Where PPO's value model starts (TRL PPOv2 passes a value model built from the reward model's checkpoint): the
    /// <c>critic</c> role's directory, else the reward model's (<c>reward.model_args.model_name_or_path</c>), else null = the
    /// policy's initial weights with a fresh score head.
    /// </summary>
    public static string? CriticSource(RlhfConfig c) => Path(c, ModelRole.Critic) ?? Path(c, ModelRole.Reward);

    /// <summary>The <c>model</c> section with <c>path</c> set to <paramref name="role"/>'s directory (null: a random init).</summary>
    public static ModelSettings Settings(RlhfConfig c, ModelRole role) =>
        c.Model with { Path = role == ModelRole.Critic ? CriticSource(c) : Path(c, role) };

    /// <summary>The architecture the <c>model</c> section describes (random init), with <paramref name="head"/>.</summary>
    public static ModelConfig Architecture(ModelSettings m, ModelHead head = ModelHead.LanguageModel)
    {
        var heads = checked((int)m.NumAttentionHeads);
        int? kv = m.NumKeyValueHeads is long k ? checked((int)k) : null;
        var layers = checked((int)m.NumHiddenLayers);
        var c = m.ModelType switch
        {
            ModelType.Llama => ModelConfig.Llama(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            ModelType.Qwen2 => ModelConfig.Qwen2(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, kv, m.MaxPositionEmbeddings),
            ModelType.GptNeox => ModelConfig.GptNeox(m.VocabSize, m.HiddenSize, m.IntermediateSize, layers, heads, m.MaxPositionEmbeddings),
            ModelType.Gpt2 => ModelConfig.Gpt2(m.VocabSize, m.HiddenSize, layers, heads, m.MaxPositionEmbeddings, m.IntermediateSize),
            var t => throw new ArgumentException($"model.model_type: {ModelTypeYaml.ToYaml(t)} cannot be built from sizes; expected one of {string.Join(", ", HfConfig.SupportedModelTypes)}"),
        };
        return (c with { RopeTheta = m.RopeTheta, RmsNormEps = m.RmsNormEps, TieWordEmbeddings = m.TieWordEmbeddings, Head = head }).Validated();
    }

    /// <summary>The architecture of <paramref name="m"/>: <c>path</c>'s <c>config.json</c> when set, else <see cref="Architecture"/>.</summary>
    public static ModelConfig Config(ModelSettings m) => m.Path is { } path ? HfModelDirectory.LoadConfig(path) : Architecture(m);

    /// <summary>Where <paramref name="m"/>'s model comes from, in words (for <c>--dry-run</c>).</summary>
    public static string Describe(ModelSettings m) =>
        m.Path is { } p ? $"Hugging Face directory {p}" : $"random init of a {ModelTypeYaml.ToYaml(m.ModelType)} model from model: ({m.HiddenSize} hidden, {m.NumHiddenLayers} layers)";

    /// <summary>
    /// An engine over <paramref name="m"/>'s model: loaded from <c>path</c> (converted to <paramref name="head"/> when the
    /// directory has the other head: LM → score adds a fresh score head from the init seed) or a random init drawn from
    /// <paramref name="seed"/> (<c>model.init_seed</c> wins when set). <paramref name="frozen"/> gives a
    /// <see cref="ZeroEngine.Frozen"/> engine. <paramref name="group"/> null means one process.
    /// </summary>
    public static (ZeroEngine Engine, TransformerLayers Layers) Engine(ModelSettings m, ModelHead head, DeepSpeedSettings settings, ulong seed,
        Device device, bool frozen, bool gradientCheckpointing, ProcessGroup? group = null)
    {
        var initSeed = InitSeed(m, seed);
        if (m.Path is not { } dir)
        {
            var layers = new TransformerLayers(Architecture(m, head), InitializerRange);
            return (Create(layers, settings, initSeed, device, frozen, gradientCheckpointing, group), layers);
        }
        using var loaded = HfModelDirectory.Load(dir);
        return FromWeights(loaded, head, settings, initSeed, device, frozen, gradientCheckpointing, group);
    }

    /// <summary>
    /// An engine started from <paramref name="weights"/> (the caller still owns them; the engine copies them while it is
    /// constructed), converted to <paramref name="head"/> as <see cref="Engine"/> does.
    /// </summary>
    public static (ZeroEngine Engine, TransformerLayers Layers) FromWeights(ModelWeights weights, ModelHead head, DeepSpeedSettings settings, ulong seed,
        Device device, bool frozen, bool gradientCheckpointing, ProcessGroup? group = null)
    {
        using var scope = Torch.NewScope();
        var layers = new TransformerLayers(weights.Config.Head == head ? weights : WithHead(weights, head, seed));
        return (Create(layers, settings, seed, device, frozen, gradientCheckpointing, group), layers);
    }

    /// <summary>The seed a model's random init (and a fresh score head) draws from: <c>model.init_seed</c>, else <paramref name="seed"/>.</summary>
    public static ulong InitSeed(ModelSettings m, ulong seed) => m.InitSeed is long s ? unchecked((ulong)s) : seed;

    private static ZeroEngine Create(TransformerLayers l, DeepSpeedSettings settings, ulong seed, Device device, bool frozen, bool gradientCheckpointing, ProcessGroup? group) =>
        frozen ? ZeroEngine.Frozen(l, settings, group, seed, device) : new ZeroEngine(l, settings, group, seed, gradientCheckpointing, device);

    /// <summary><paramref name="w"/> with its head swapped for <paramref name="head"/> (tensors in the caller's scope, shared with <paramref name="w"/>).</summary>
    public static ModelWeights WithHead(ModelWeights w, ModelHead head, ulong seed)
    {
        if (head == ModelHead.LanguageModel)
            throw new ArgumentException($"model.path holds a {w.Config.ModelType} model with a score head (a reward model); this role needs a language model");
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
        return ByteLevelBpeTokenizer.FromFile(Directory.Exists(path) ? System.IO.Path.Combine(path, "tokenizer.json") : path);
    }

    /// <summary>The device of <c>training.device</c>: cpu, cuda[:i], or auto (cuda when libtorch sees one).</summary>
    public static Device Device(TrainingSettings t) =>
        DeviceKindYaml.ToYaml(t.Device) is var kind && kind == "auto"
            ? (Torch.CudaIsAvailable ? Rlhf.Torch.Device.Cuda(0) : Rlhf.Torch.Device.Cpu)
            : Rlhf.Torch.Device.Parse(kind);
}
