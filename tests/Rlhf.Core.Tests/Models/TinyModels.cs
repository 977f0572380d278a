using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>Tiny configs of every family and variant (≤ 2 layers, hidden 16) and weights that exercise every tensor.</summary>
internal static class TinyModels
{
    public const long Vocab = 11;

    public static readonly string[] Variants =
    [
        "llama", "llama-gqa-scaled-tied-bias", "llama-linear", "llama-dynamic", "qwen2", "qwen2-yarn", "neox", "neox-sequential",
        "neox-yarn-partial", "neox-dynamic-partial", "gpt2", "gpt2-untied-relu",
    ];

    /// <summary>Variants whose rotary frequencies depend on the longest position of the call (dynamic NTK), as in HF.</summary>
    public static bool DependsOnCallLength(string variant) => Config(variant).RopeScaling is DynamicRopeScaling;

    public static ModelConfig Config(string variant) => variant switch
    {
        "llama" => ModelConfig.Llama(Vocab, 16, 24, 2, 4),
        // grouped-query (4 query heads share 2 kv heads), llama3 rope scaling with a tiny original context so all
        // three frequency regimes occur (hd 4: wavelengths 2π and 200π against cuts 4 and 16), tied, with biases.
        "llama-gqa-scaled-tied-bias" => ModelConfig.Llama(Vocab, 16, 24, 2, 4, kvHeads: 2) with
        {
            RopeScaling = new Llama3RopeScaling(4, 1, 4, 16), TieWordEmbeddings = true, AttentionBias = true, MlpBias = true,
        },
        "llama-linear" => ModelConfig.Llama(Vocab, 16, 24, 1, 2) with { RopeScaling = new LinearRopeScaling(2.5) },
        // max_position_embeddings 4 below the 6-token test sequence, so the NTK base actually grows.
        "llama-dynamic" => ModelConfig.Llama(Vocab, 16, 24, 1, 2, maxPositions: 4) with { RopeScaling = new DynamicRopeScaling(3) },
        "qwen2" => ModelConfig.Qwen2(Vocab, 16, 24, 1, 4, kvHeads: 1) with { RopeTheta = 1000 },
        // hd 16 (8 frequencies) and an original context of 64: the ramp runs over dims 0…3, so extrapolated, blended and
        // interpolated frequencies all occur; the default attention factor 0.1·ln 4 + 1 scales cos and sin.
        "qwen2-yarn" => ModelConfig.Qwen2(Vocab, 32, 24, 1, 2, kvHeads: 1) with { RopeScaling = new YarnRopeScaling(4, 64) },
        "neox-yarn-partial" => ModelConfig.GptNeox(Vocab, 32, 24, 1, 2) with
        {
            RotaryPct = 0.5, RopeScaling = new YarnRopeScaling(2, 16, BetaFast: 8, BetaSlow: 2, Mscale: 1, MscaleAllDim: 0.5, Truncate: false),
        },
        "neox-dynamic-partial" => ModelConfig.GptNeox(Vocab, 16, 24, 1, 2, maxPositions: 4) with { RotaryPct = 0.5, RopeScaling = new DynamicRopeScaling(2) },
        "neox" => ModelConfig.GptNeox(Vocab, 16, 24, 2, 2) with { RotaryPct = 0.25 },   // hd 8, 2 rotated dims
        "neox-sequential" => ModelConfig.GptNeox(Vocab, 16, 24, 1, 4) with { RotaryPct = 0.5, UseParallelResidual = false, TieWordEmbeddings = true },
        "gpt2" => ModelConfig.Gpt2(Vocab, 16, 2, 4, positions: 12),
        "gpt2-untied-relu" => ModelConfig.Gpt2(Vocab, 16, 1, 2, positions: 12, intermediateSize: 20) with { TieWordEmbeddings = false, HiddenAct = "relu" },
        _ => throw new ArgumentException(variant),
    };

    /// <summary>Random weights with larger scale than HF init and noise on norms and biases, so every tensor matters.</summary>
    public static ModelWeights Weights(ModelConfig config, ulong seed = 7, ScalarType dtype = ScalarType.Float64)
    {
        var w = ModelInit.Random(config, seed, dtype, std: 0.4);
        using var gen = new Generator(seed + 1000);
        var noisy = w.Map((_, t) => (t + Torch.Randn(t.Shape, gen, dtype) * 0.2).DetachFromScope());
        w.Dispose();
        return noisy;
    }

    /// <summary>int64 ids [B, T] from a row-major array.</summary>
    public static Tensor Ids(long[] ids, long b, long t) => Torch.From(ids, b, t);
}
