// The fused causal attention kernel (native/src/attention.cpp, Functional.CausalAttention) against the eager sequence in
// float64: outputs and the gradients of q, k and v, across row-block boundaries, with and without padding masks.
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

public class CausalAttentionKernelTests
{
    private static void Close(Tensor got, Tensor want, string what, double atol = 2e-5, double rtol = 2e-4) => TensorAssert.Close(got, want, what, atol, rtol);

    private static Tensor? Padding(string kind, int b, int t, Random rng)
    {
        if (kind == "none") return null;
        var m = new long[b * t];
        for (var s = 0; s < b; s++)
            for (var p = 0; p < t; p++)
                m[s * t + p] = kind switch
                {
                    "left" => p >= (s * 7) % t ? 1 : 0,                 // leading padding: those queries see no key at all
                    "right" => p < t - (s * 5) % t ? 1 : 0,
                    _ => p == t - 1 || rng.NextDouble() > 0.3 ? 1 : 0,    // holes anywhere
                };
        return Torch.From(m, b, t);
    }

    [Theory]
    [InlineData(2, 3, 1, 8, "none")]
    [InlineData(2, 2, 31, 5, "left")]
    [InlineData(1, 2, 32, 16, "none")]          // exactly one row block
    [InlineData(2, 2, 33, 8, "right")]          // one row past a block
    [InlineData(3, 2, 70, 12, "left")]
    [InlineData(2, 1, 100, 4, "holes")]
    public void Matches_the_eager_sequence_in_float64_forward_and_backward(int b, int h, int t, int hd, string padding)
    {
        using var scope = Torch.NewScope();
        var rng = new Random(b * 1000 + h * 100 + t);
        using var g = new Generator((ulong)(t * 31 + hd));
        var q = Torch.Randn([b, h, t, hd], g);
        var k = Torch.Randn([b, h, t, hd], g);
        var v = Torch.Randn([b, h, t, hd], g);
        var upstream = Torch.Randn([b, h, t, hd], g);
        var pad = Padding(padding, b, t, rng);
        var scale = 1 / Math.Sqrt(hd);

        var (q64, k64, v64) = (q.To(ScalarType.Float64).RequiresGrad_(), k.To(ScalarType.Float64).RequiresGrad_(), v.To(ScalarType.Float64).RequiresGrad_());
        var want = Attention.ScaledDotProduct(q64, k64, v64, Attention.CausalMask(t, pad), scale);
        want.Backward(upstream.To(ScalarType.Float64));

        var (q32, k32, v32) = (q.Clone().RequiresGrad_(), k.Clone().RequiresGrad_(), v.Clone().RequiresGrad_());
        var got = Functional.CausalAttention(q32, k32, v32, pad, scale);
        Assert.True(got.RequiresGrad);
        got.Backward(upstream);

        Close(got, want, "out");
        Close(q32.Grad!, q64.Grad!, "dq");
        Close(k32.Grad!, k64.Grad!, "dk");
        Close(v32.Grad!, v64.Grad!, "dv");
    }

    [Fact]
    public void The_layer_with_grouped_heads_and_padding_matches_eager_float32_attention()
    {
        // CausalAttention.Attend takes the kernel for float32 CPU inputs of FusedMinLength or more; its gradients reach the grouped k and v through the repeat.
        using var scope = Torch.NewScope();
        using var g = new Generator(7);
        const int b = 2, h = 4, kv = 2, t = (int)CausalAttention.FusedMinLength + 5, hd = 8;
        var q = Torch.Randn([b, h, t, hd], g);
        var k = Torch.Randn([b, kv, t, hd], g);
        var v = Torch.Randn([b, kv, t, hd], g);
        var upstream = Torch.Randn([b, h, t, hd], g);
        var pad = Padding("left", b, t, new Random(1));
        Assert.True(CausalAttention.FusedEnabled, "RLHF_CAUSAL_KERNEL=0 is set: this test compares the kernel with eager");
        Assert.True(CausalAttention.UsesKernel(q, k));
        Assert.False(CausalAttention.UsesKernel(q, k.Narrow(2, 0, t - 1)));                    // keys of another length: eager
        Assert.False(CausalAttention.UsesKernel(q.Narrow(2, 0, CausalAttention.FusedMinLength - 1), k.Narrow(2, 0, CausalAttention.FusedMinLength - 1)));
        Assert.False(CausalAttention.UsesKernel(q.To(ScalarType.Float64), k.To(ScalarType.Float64)));

        var (qa, ka, va) = (q.Clone().RequiresGrad_(), k.Clone().RequiresGrad_(), v.Clone().RequiresGrad_());
        var fused = new CausalAttention(pad).Attend(0, qa, ka, va, 1 / Math.Sqrt(hd));
        fused.Backward(upstream);
        var (qb, kb, vb) = (q.Clone().RequiresGrad_(), k.Clone().RequiresGrad_(), v.Clone().RequiresGrad_());
        var eager = Attention.ScaledDotProduct(qb, kb, vb, Attention.CausalMask(t, pad), 1 / Math.Sqrt(hd));
        eager.Backward(upstream);

        Close(fused, eager, "out", 1e-5, 1e-4);
        Close(qa.Grad!, qb.Grad!, "dq", 1e-5, 1e-4);
        Close(ka.Grad!, kb.Grad!, "dk", 1e-5, 1e-4);
        Close(va.Grad!, vb.Grad!, "dv", 1e-5, 1e-4);
    }

    [Fact]
    public void Rejects_what_it_cannot_compute_in_one_clear_line()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([1, 2, 3, 4]);
        var e = Assert.ThrowsAny<Exception>(() => Functional.CausalAttention(x, x, Torch.Zeros([1, 1, 3, 4]), null, 0.5));
        Assert.Contains("[B, H, T, hd]", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.CausalAttention(x.To(ScalarType.Float64), x.To(ScalarType.Float64), x.To(ScalarType.Float64), null, 0.5));
        Assert.Contains("float32", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.CausalAttention(x, x, x, Torch.Ones([1, 4], ScalarType.Int64), 0.5));
        Assert.Contains("key_allowed must be [1, 3]", e.Message);
    }
}
