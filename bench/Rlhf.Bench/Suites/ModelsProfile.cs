using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Bench.Suites;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Where a llama forward spends its time: each part of layer 0 (norms, q/k/v projections, rotary tables and
/// application, mask, attention, output projection, MLP) plus embedding, final norm and LM head, timed in isolation
/// (no grad, fastest of N repetitions, wall and process CPU time) at batch 4 × seq 256, float32. Args: [--model 3M|20M] (default 3M)
/// [--trace FILE]: instead, profile five forward+backward steps with libtorch's profiler, write the Chrome trace and print
/// the ops with the most self time.
/// </summary>
public sealed class ModelsProfile : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "models-profile";

    /// <inheritdoc />
    public string Description => "per-part times of one llama forward (embed, norms, projections, rotary, mask, attention, MLP, head); --trace FILE: profile fwd+bwd steps by op";

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var big = args.SkipWhile(a => a != "--model").Skip(1).FirstOrDefault("3M") == "20M";
        const int B = 4, T = 256;
        var c = (big ? ModelConfig.Llama(2048, 512, 1376, 6, 8) : ModelConfig.Llama(1024, 256, 512, 4, 4)) with { MaxPositionEmbeddings = T };
        using var w = ModelInit.Random(c, 0);
        using var g = new Generator(1);
        var trace = args.SkipWhile(a => a != "--trace").Skip(1).FirstOrDefault();
        if (trace is not null) return Trace(w, B, T, g, trace);
        using var outer = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var ids = Torch.Randint(0, c.VocabSize, [B, T], g);
        var pos = Torch.Arange(T).Unsqueeze(0).Expand(B, T);
        long h = c.NumAttentionHeads, hd = c.HeadDim;
        var x = Transformer.Embed(w, ids, pos);
        var p = WeightNames.Layer(c, 0);
        var xn = Norms.RmsNorm(x, w[p + "input_layernorm.weight"], c.RmsNormEps);
        var q = Functional.Linear(xn, w[p + "self_attn.q_proj.weight"]).View(B, T, h, hd).Transpose(1, 2);
        var (cos, sin) = Rotary.Tables(pos, c, q.Dtype);
        var qr = Rotary.Apply(q, cos, sin);
        var mask = Attention.CausalMask(T, null);
        var y = Attention.ScaledDotProduct(qr, qr, q, mask, 0.125);
        var yf = y.Transpose(1, 2).Reshape(B, T, h * hd);
        var attention = new CausalAttention();
        var sc = qr.Matmul(qr.Transpose(-2, -1));
        var notMask = mask.LogicalNot();
        var inter = Torch.Randn([B, T, c.IntermediateSize], g);
        var parts = new (string Name, Action Run)[]
        {
            ("embed", () => Transformer.Embed(w, ids, pos)),
            ("rmsnorm", () => Norms.RmsNorm(x, w[p + "input_layernorm.weight"], c.RmsNormEps)),
            ("q proj (x3 for qkv)", () => Functional.Linear(xn, w[p + "self_attn.q_proj.weight"]).View(B, T, h, hd).Transpose(1, 2)),
            ("rotary tables", () => Rotary.Tables(pos, c, q.Dtype)),
            ("rotary apply (x2 for q,k)", () => Rotary.Apply(q, cos, sin)),
            ("causal mask", () => Attention.CausalMask(T, null)),
            ("sdpa", () => Attention.ScaledDotProduct(qr, qr, q, mask, 0.125)),
            ("causal kernel (fused)", () => Functional.CausalAttention(qr, qr, q, null, 0.125)),
            ("causal kernel fwd+bwd", () => KernelForwardBackward(qr, q)),
            ("sdpa fwd+bwd", () => EagerForwardBackward(qr, q, mask)),
            ("  scores q·kᵀ", () => qr.Matmul(qr.Transpose(-2, -1))),
            ("  mul scale", () => sc.Mul(0.125)),
            ("  masked_fill", () => sc.MaskedFill(notMask, float.MinValue)),
            ("  softmax", () => sc.Softmax(-1)),
            ("  p·v", () => sc.Matmul(q)),
            ("  silu [B,T,I]", () => inter.Silu()),
            ("  mul [B,T,I]", () => _ = inter * inter),
            ("  scale+mask+softmax", () => qr.Matmul(qr.Transpose(-2, -1)).Mul(0.125).MaskedFill(mask.LogicalNot(), float.MinValue).Softmax(-1)),
            ("transpose+reshape y", () => y.Transpose(1, 2).Reshape(B, T, h * hd)),
            ("o proj", () => Functional.Linear(yf, w[p + "self_attn.o_proj.weight"])),
            ("self-attention (all)", () => SelfAttention.Forward(w, 0, xn, pos, attention)),
            ("mlp", () => Mlp.Forward(w, 0, xn)),
            ("block", () => Transformer.Block(w, 0, x, pos, attention)),
            ("final norm", () => Transformer.FinalNorm(w, x)),
            ("lm head", () => Transformer.LmHead(w, x)),
            ("forward (all)", () => Transformer.Forward(w, ids)),
        };
        Console.WriteLine($"llama {(big ? "20M" : "3M")}, batch {B} × seq {T}, {Torch.NumThreads} threads, {c.NumHiddenLayers} layers; best of 30: wall ms, process CPU ms");
        foreach (var (name, run) in parts)
        {
            double best = double.MaxValue, bestCpu = double.MaxValue;
            for (var i = 0; i < 30; i++)
            {
                using var s = Torch.NewScope();
                var c0 = CpuClock.Process();
                var t0 = Stopwatch.GetTimestamp();
                run();
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                bestCpu = Math.Min(bestCpu, (CpuClock.Process() - c0) * 1e3);
            }
            Console.WriteLine($"  {name,-28} {best,8:F3} {bestCpu,8:F3}");
        }
        return 0;
    }

    /// <summary>
    /// Five forward+backward steps under libtorch's profiler (after two warm-up steps): writes the Chrome trace to
    /// <paramref name="path"/> and prints the ops with the most self time per step.
    /// </summary>
    private static int Trace(ModelWeights w, int batch, int t, Generator g, string path)
    {
        const int steps = 5;
        foreach (var p in w.Tensors.Values) p.RequiresGrad_(true);
        ModelsBench.Step(w, batch, t, true, g);
        ModelsBench.Step(w, batch, t, true, g);
        var sw = Stopwatch.StartNew();
        using (Profiler.Record(path))
            for (var i = 0; i < steps; i++) ModelsBench.Step(w, batch, t, true, g);
        var wall = sw.Elapsed.TotalMilliseconds / steps;
        var ops = Profiler.Summarize(path);
        Console.WriteLine($"llama {w.Config.NumHiddenLayers} layers, batch {batch} × seq {t}, fwd+bwd, {Torch.NumThreads} threads: {wall:F1} ms/step under the profiler; trace {path}");
        Console.WriteLine($"  {"op",-52} {"calls",6} {"self ms",9} {"share",6}");
        var total = ops.Sum(o => o.SelfMs);
        foreach (var o in ops.Take(25))
            Console.WriteLine($"  {o.Name,-52} {o.Calls / steps,6} {o.SelfMs / steps,9:F2} {100 * o.SelfMs / total,5:F1}%");
        Console.WriteLine($"  {"(all ops)",-52} {"",6} {total / steps,9:F2}");
        return 0;
    }

    private static void KernelForwardBackward(Tensor qr, Tensor v)
    {
        using var grad = Torch.GradEnabled(true);
        var (a, b) = (qr.Detach().RequiresGrad_(), v.Detach().RequiresGrad_());
        var y = Functional.CausalAttention(a, a, b, null, 0.125);
        y.Backward(y.Detach());
    }

    private static void EagerForwardBackward(Tensor qr, Tensor v, Tensor mask)
    {
        using var grad = Torch.GradEnabled(true);
        var (a, b) = (qr.Detach().RequiresGrad_(), v.Detach().RequiresGrad_());
        var y = Attention.ScaledDotProduct(a, a, b, mask, 0.125);
        y.Backward(y.Detach());
    }
}
