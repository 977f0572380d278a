using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Bench.Suites;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Where one decode step of the <c>generation</c> suite's model goes: 64 sequences × 1 new token at context 160, one
/// thread — the whole step, one layer's weight matmuls, the paged attention (slot write, gather, scores, softmax, values),
/// and the same attention on contiguous keys (what the gather costs). Best-of times in ms, wall and thread CPU (the
/// latter is what to compare on a shared machine).
/// </summary>
public sealed class GenerationProfile : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "generation-profile";

    /// <inheritdoc />
    public string Description => "per-part times of one paged decode step (64 sequences, context 160, 1 thread)";

    /// <inheritdoc />
    public int Run(string[] args)
    {
        Torch.NumThreads = 1;
        const int G = 64, Ctx = 160, Bs = 16;
        var config = ModelConfig.Llama(8192, 384, 1024, 8, 6, kvHeads: 2, maxPositions: 1024);
        using var w = ModelInit.Random(config, 1);
        using var cache = new KvCache(config.NumHiddenLayers, G * Ctx / Bs + 8, Bs, config.NumKeyValueHeads, config.HeadDim);
        using var outer = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        using var g = new Generator(3);
        var seqs = Enumerable.Range(0, G).Select(i => new AttentionSeq(1, Ctx, Enumerable.Range(i * (Ctx / Bs), Ctx / Bs).ToArray())).ToArray();
        using var md = new PagedAttentionMetadata(seqs, Bs);
        long h = config.NumAttentionHeads, kv = config.NumKeyValueHeads, hd = config.HeadDim;
        var q = Torch.Randn([G, h, hd], g);
        var k = Torch.Randn([G, kv, hd], g);
        var x = Torch.Randn([1, G, config.HiddenSize], g);
        var pos = Torch.Arange(Ctx - 1, Ctx - 1 + G).Unsqueeze(0);
        var kc = Torch.Randn([G, kv, Ctx, hd], g);
        var attention = new PagedKvAttention(cache, md);
        var slots = Torch.Arange(G * Ctx);
        var p = WeightNames.Layer(config, 0);
        var q4 = q.Transpose(0, 1).Unsqueeze(0);   // [1, H, G, hd] as the block hands it
        var k4 = k.Transpose(0, 1).Unsqueeze(0);
        var (cos, sin) = Rotary.Tables(pos, config, ScalarType.Float32);
        var recipe = config.Recipe;
        var parts = new (string Name, Action Run)[]
        {
            ("block (all)", () => Transformer.Block(w, 0, x, pos, attention)),
            ("self-attention (all)", () => SelfAttention.Forward(w, 0, x, pos, attention)),
            ("rotary tables", () => Rotary.Tables(pos, config, ScalarType.Float32)),
            ("rotary apply q", () => Rotary.Apply(q4, cos, sin)),
            ("rmsnorm", () => Norms.RmsNorm(x, w[p + "input_layernorm.weight"], 1e-6)),
            ("PagedKvAttention.Attend", () => attention.Attend(0, q4, k4, k4, 0.125)),
            ("q/k/v projection", () => recipe.QueryKeyValue(w, p, x)),
            ("mlp", () => recipe.Mlp(w, p, x)),
            ("o projection", () => recipe.AttentionOutput(w, p, x)),
            ("paged attend", () => md.Attend(cache, 0, q, k, k, 0.125)),
            ("  gather k (index_select)", () => cache.KeySlots(0).IndexSelect(0, slots)),
            ("  contiguous attention", () => Attention.ScaledDotProduct(q.View(G, h, 1, hd), kc, kc, null, 0.125)),
            ("lm head (64 rows)", () => Transformer.LmHead(w, x)),
        };
        Console.WriteLine($"decode step: {G} sequences × 1 token, context {Ctx}, {config.NumHiddenLayers} layers, 1 thread; best of 20: wall ms, thread CPU ms");
        foreach (var (name, run) in parts)
        {
            for (var i = 0; i < 3; i++) { using var s = Torch.NewScope(); run(); }
            double best = double.MaxValue, bestCpu = double.MaxValue;
            for (var i = 0; i < 20; i++)
            {
                using var s = Torch.NewScope();
                var c0 = CpuClock.Thread();
                var t0 = Stopwatch.GetTimestamp();
                run();
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                bestCpu = Math.Min(bestCpu, (CpuClock.Thread() - c0) * 1e3);
            }
            Console.WriteLine($"  {name,-28} {best,8:F3} {bestCpu,8:F3}");
        }
        return 0;
    }
}
