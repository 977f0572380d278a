// The fused RMSNorm, rotary and SwiGLU kernels (native/src/fused.cpp, Functional.RmsNorm / Rotary / SiluMul) against the
// eager formulas written out here: outputs and every gradient, float64 to 1e-12 and float32 against float64, across the
// kernels' 64-row chunks, with transposed inputs and batch-broadcast tables; results independent of the thread count.
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

public class FusedLayerKernelTests
{
    private static void Close(Tensor got, Tensor want, string what, double atol, double rtol) => TensorAssert.Close(got, want, what, atol, rtol);

    // HF Llama's RMSNorm, op by op.
    private static Tensor EagerRmsNorm(Tensor x, Tensor w, double eps) => w * (x * (x.Square().Mean(-1, keepDim: true) + eps).Rsqrt());

    // HF's apply_rotary_pos_emb: x · cos + rotate_half(x) · sin, rotate_half([a, b]) = [−b, a].
    private static Tensor EagerRotary(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.Size(-1) / 2;
        var rotated = Torch.Cat([x.Narrow(-1, half, half).Neg(), x.Narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }

    [Theory]
    [InlineData(new long[] { 1 }, 1)]
    [InlineData(new long[] { 3, 7 }, 5)]
    [InlineData(new long[] { 2, 32 }, 64)]         // exactly one 64-row chunk
    [InlineData(new long[] { 3, 50 }, 16)]         // 150 rows: three chunks, the last partial
    [InlineData(new long[] { 130 }, 130)]
    public void RmsNorm_matches_the_eager_formula_forward_and_backward(long[] lead, long d)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator((ulong)(d * 7 + lead.Length));
        long[] shape = [.. lead, d];
        var x = Torch.Randn(shape, g) * 3;
        var w = Torch.Randn([d], g);
        var upstream = Torch.Randn(shape, g);
        const double eps = 1e-5;

        var (x64, w64) = (x.To(ScalarType.Float64).RequiresGrad_(), w.To(ScalarType.Float64).RequiresGrad_());
        var want = EagerRmsNorm(x64, w64, eps);
        want.Backward(upstream.To(ScalarType.Float64));

        var (xk, wk) = (x.To(ScalarType.Float64).RequiresGrad_(), w.To(ScalarType.Float64).RequiresGrad_());
        var got = Functional.RmsNorm(xk, wk, eps);
        Assert.True(got.RequiresGrad);
        got.Backward(upstream.To(ScalarType.Float64));
        Close(got, want, "y (float64)", 1e-12, 1e-12);
        Close(xk.Grad!, x64.Grad!, "dx (float64)", 1e-12, 1e-12);
        Close(wk.Grad!, w64.Grad!, "dw (float64)", 1e-11, 1e-12);

        var (x32, w32) = (x.Clone().RequiresGrad_(), w.Clone().RequiresGrad_());
        var got32 = Functional.RmsNorm(x32, w32, eps);
        got32.Backward(upstream);
        Close(got32, want, "y (float32)", 1e-5, 1e-5);
        Close(x32.Grad!, x64.Grad!, "dx (float32)", 1e-5, 1e-4);
        Close(w32.Grad!, w64.Grad!, "dw (float32)", 1e-4, 1e-4);
    }

    [Fact]
    public void RmsNorm_gives_each_input_its_gradient_alone_and_the_same_bits_on_any_thread_count()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(3);
        var x = Torch.Randn([4, 250, 256], g);          // 1,000 rows: 16 chunks, big enough to split across threads
        var w = Torch.Randn([256], g);
        var upstream = Torch.Randn([4, 250, 256], g);

        (double[] Dx, double[] Dw) Run(int threads)
        {
            using var t = Torch.UseThreads(threads);
            var (xa, wa) = (x.Clone().RequiresGrad_(), w.Clone().RequiresGrad_());
            Functional.RmsNorm(xa, wa, 1e-6).Backward(upstream);
            return (xa.Grad!.To(ScalarType.Float64).ToArray<double>(), wa.Grad!.To(ScalarType.Float64).ToArray<double>());
        }
        var one = Run(1);
        var three = Run(3);
        Assert.Equal(one.Dx, three.Dx);
        Assert.Equal(one.Dw, three.Dw);

        var wOnly = w.Clone().RequiresGrad_();
        Functional.RmsNorm(x, wOnly, 1e-6).Backward(upstream);
        Assert.Equal(one.Dw, wOnly.Grad!.To(ScalarType.Float64).ToArray<double>());
        var xOnly = x.Clone().RequiresGrad_();
        Functional.RmsNorm(xOnly, w, 1e-6).Backward(upstream);
        Assert.Equal(one.Dx, xOnly.Grad!.To(ScalarType.Float64).ToArray<double>());
    }

    [Fact]
    public void Norms_RmsNorm_takes_the_kernel_for_float_CPU_tensors_and_eager_ops_otherwise()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        var x = Torch.Randn([2, 3, 8], g);
        var w = Torch.Randn([8], g);
        Assert.True(FusedLayers.Enabled, "RLHF_FUSED_KERNELS=0 is set: this test compares the kernels with eager");
        Assert.True(FusedLayers.Fit(x, w));
        Assert.False(FusedLayers.Fit(x.To(ScalarType.BFloat16), w.To(ScalarType.BFloat16)));
        Assert.False(FusedLayers.Fit(x, w.To(ScalarType.Float64)));
        Close(Norms.RmsNorm(x, w, 1e-6), EagerRmsNorm(x.To(ScalarType.Float64), w.To(ScalarType.Float64), 1e-6), "y", 1e-6, 1e-6);
        // bf16 runs the eager ops: HF's float32 upcast, the bf16 cast, then the weight.
        var bf = Norms.RmsNorm(x.To(ScalarType.BFloat16), w.To(ScalarType.BFloat16), 1e-6);
        Assert.Equal(ScalarType.BFloat16, bf.Dtype);
        Close(bf, EagerRmsNorm(x, w, 1e-6), "y (bf16)", 0.05, 0.02);
    }

    [Theory]
    [InlineData(2, 3, 5, 8, true)]
    [InlineData(1, 2, 70, 64, false)]      // rows past one 64-row chunk
    [InlineData(3, 1, 1, 2, true)]         // one decode position, the smallest head
    public void Rotary_matches_the_eager_formula_on_a_transposed_view_forward_and_backward(int b, int h, int t, int hd, bool tablesPerBatch)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator((ulong)(b * 100 + t * 10 + hd));
        var projection = Torch.Randn([b, t, h, hd], g);                     // as a projection's output, viewed per head
        var angles = Torch.Randn([tablesPerBatch ? b : 1, 1, t, hd], g);
        var (cos, sin) = (angles.Cos(), angles.Sin());
        var upstream = Torch.Randn([b, h, t, hd], g);

        var x64 = projection.To(ScalarType.Float64).RequiresGrad_();
        var want = EagerRotary(x64.Transpose(1, 2), cos.To(ScalarType.Float64), sin.To(ScalarType.Float64));
        want.Backward(upstream.To(ScalarType.Float64));

        var xk = projection.To(ScalarType.Float64).RequiresGrad_();
        var got = Functional.Rotary(xk.Transpose(1, 2), cos.To(ScalarType.Float64), sin.To(ScalarType.Float64));
        Assert.True(got.IsContiguous);
        got.Backward(upstream.To(ScalarType.Float64));
        Close(got, want, "y (float64)", 1e-14, 1e-14);
        Close(xk.Grad!, x64.Grad!, "dx (float64)", 1e-14, 1e-14);

        // float32: the same products and sums as the eager ops, so the same bits.
        var xe = projection.Clone().RequiresGrad_();
        var eager32 = EagerRotary(xe.Transpose(1, 2), cos, sin);
        eager32.Backward(upstream);
        var x32 = projection.Clone().RequiresGrad_();
        var got32 = Rotary.Apply(x32.Transpose(1, 2), cos, sin);
        got32.Backward(upstream);
        Assert.True(got32.IsContiguous, "Rotary.Apply took the eager path");
        Assert.Equal(eager32.Contiguous().ToArray<float>(), got32.ToArray<float>());
        Assert.Equal(xe.Grad!.ToArray<float>(), x32.Grad!.ToArray<float>());
    }

    [Theory]
    [InlineData(new long[] { 7 })]                     // shorter than one 8-float vector: the scalar tail only
    [InlineData(new long[] { 3, 5, 37 })]              // vectors and a tail
    [InlineData(new long[] { 2, 128, 300 })]           // 76,800 elements: more than one parallel chunk
    public void SiluMul_matches_the_eager_formula_forward_and_backward(long[] shape)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator((ulong)shape.Aggregate(1L, (a, b) => a * b));
        var gate = Torch.Randn(shape, g) * 4;                                 // through silu's curved part and both tails
        gate.View(-1).Narrow(0, 0, 4).Copy_(Torch.From(new float[] { -100, -88, 90, 0 }));   // exp's clamps, and zero
        var up = Torch.Randn(shape, g);
        var upstream = Torch.Randn(shape, g);

        var (g64, u64) = (gate.To(ScalarType.Float64).RequiresGrad_(), up.To(ScalarType.Float64).RequiresGrad_());
        var want = g64.Silu() * u64;
        want.Backward(upstream.To(ScalarType.Float64));

        var (gk, uk) = (gate.To(ScalarType.Float64).RequiresGrad_(), up.To(ScalarType.Float64).RequiresGrad_());
        var got = Functional.SiluMul(gk, uk);
        got.Backward(upstream.To(ScalarType.Float64));
        Close(got, want, "y (float64)", 1e-14, 1e-13);
        Close(gk.Grad!, g64.Grad!, "dgate (float64)", 1e-14, 1e-13);
        Close(uk.Grad!, u64.Grad!, "dup (float64)", 1e-14, 1e-13);

        var (g32, u32) = (gate.Clone().RequiresGrad_(), up.Clone().RequiresGrad_());
        var got32 = Functional.SiluMul(g32, u32);
        got32.Backward(upstream);
        Close(got32, want, "y (float32)", 1e-6, 1e-6);
        Close(g32.Grad!, g64.Grad!, "dgate (float32)", 1e-6, 1e-6);
        Close(u32.Grad!, u64.Grad!, "dup (float32)", 1e-6, 1e-6);

        var upOnly = up.Clone().RequiresGrad_();
        Functional.SiluMul(gate, upOnly).Backward(upstream);
        Assert.Equal(u32.Grad!.ToArray<float>(), upOnly.Grad!.ToArray<float>());
    }

    [Fact]
    public void The_llama_MLP_takes_the_fused_product_and_matches_eager_silu_times_up()
    {
        using var scope = Torch.NewScope();
        var c = ModelConfig.Llama(64, 16, 40, 1, 2);
        using var w = ModelInit.Random(c, 3);
        using var g = new Generator(9);
        var x = Torch.Randn([2, 5, 16], g);
        var p = WeightNames.Layer(c, 0);
        var gate = Functional.Linear(x, w[p + "mlp.gate_proj.weight"]);
        var up = Functional.Linear(x, w[p + "mlp.up_proj.weight"]);
        Assert.True(FusedLayers.Fit(gate, up));
        var eager = Functional.Linear(gate.Silu() * up, w[p + "mlp.down_proj.weight"]);
        Close(Mlp.Forward(w, 0, x), eager, "mlp", 1e-6, 1e-5);
        var gelu = c with { HiddenAct = "gelu" };                            // any other activation: the eager ops
        using var wg = ModelInit.Random(gelu, 3);
        Close(Mlp.Forward(wg, 0, x), Functional.Linear(gate.Gelu() * up, wg[p + "mlp.down_proj.weight"]), "mlp (gelu)", 1e-6, 1e-5);
    }

    [Fact]
    public void Rejects_what_they_cannot_compute_in_one_clear_line()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([1, 2, 3, 4]);
        var e = Assert.ThrowsAny<Exception>(() => Functional.RmsNorm(x, Torch.Ones([3]), 1e-6));
        Assert.Contains("weight must be [4]", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.RmsNorm(x, Torch.Ones([4], ScalarType.Float64), 1e-6));
        Assert.Contains("one dtype", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.RmsNorm(x.To(ScalarType.Int64), Torch.Ones([4], ScalarType.Int64), 1e-6));
        Assert.Contains("float32 or float64", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.Rotary(x, Torch.Zeros([1, 1, 3, 2]), Torch.Zeros([1, 1, 3, 2])));
        Assert.Contains("[B|1, 1, T, hd] = [1|1, 1, 3, 4]", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.Rotary(Torch.Zeros([1, 2, 3, 5]), Torch.Zeros([1, 1, 3, 5]), Torch.Zeros([1, 1, 3, 5])));
        Assert.Contains("even hd", e.Message);
        var table = Torch.Zeros([1, 1, 3, 4]).RequiresGrad_();
        e = Assert.ThrowsAny<Exception>(() => Functional.Rotary(x, table, table));
        Assert.Contains("must not require grad", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.SiluMul(x, Torch.Zeros([1, 2, 3])));
        Assert.Contains("one shape", e.Message);
    }
}
