// Functional.Linear's split kernel for float32 CPU training (native/src/linear.cpp): which products take it, its
// output and gradients against float64 products written out here, bits independent of the thread count, and
// gradients that stay differentiable under create_graph.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class LinearKernelTests
{
    private const string KernelNode = "LinearFn";

    private static void Close(Tensor got, Tensor want, string what, double atol, double rtol) => TensorAssert.Close(got, want, what, atol, rtol);

    private static double[] Bits(Tensor t) => t.To(ScalarType.Float64).ToArray<double>();

    // The kernel runs where the shim calls OpenBLAS's OpenMP build directly (Debian's libtorch with libopenblas0-openmp,
    // which tools/bootstrap.sh installs); a PyTorch wheel (the GPU check) keeps aten::linear, and so do CUDA tensors.
    private static bool Expected => Functional.LinearKernelAvailable && Torch.DefaultDevice == Device.Cpu;

    [Fact]
    public void The_kernel_is_on_exactly_where_the_BLAS_is_OpenBLAS_OpenMP_build()
    {
        var off = Environment.GetEnvironmentVariable("RLHF_LINEAR_KERNEL") == "0";
        // The system's OpenBLAS (a wheel's libtorch brings its own BLAS from its own folder, and keeps aten::linear).
        var system = BlasKernels.LibraryDirectory?.StartsWith("/usr/lib/", StringComparison.Ordinal) == true;
        Assert.Equal(BlasKernels.Threading == "OpenMP" && system && !off, Functional.LinearKernelAvailable);
    }

    [Theory]
    [InlineData(new long[] { 256, 96 }, 96L, 80L, true, true, false)]      // 2-D, both gradients
    [InlineData(new long[] { 3, 50, 64 }, 64L, 200L, true, true, true)]   // 3-D rows (150: uneven chunks), bias
    [InlineData(new long[] { 130, 33 }, 33L, 17L, true, false, false)]    // frozen weight: dx only
    [InlineData(new long[] { 2, 100, 48 }, 48L, 40L, false, true, true)]  // frozen input: dw (and db) only
    public void Training_products_take_the_kernel_and_match_float64(long[] shape, long inF, long outF, bool gx, bool gw, bool bias)
    {
        using var scope = Torch.NewScope();
        using var threads = Torch.UseThreads(2);
        using var g = new Generator((ulong)(inF * 31 + outF));
        var x = Torch.Randn(shape, g);
        var w = Torch.Randn([outF, inF], g) * 0.2;
        var b = bias ? Torch.Randn([outF], g) : null;
        long[] outShape = [.. shape[..^1], outF];
        var upstream = Torch.Randn(outShape, g);

        var (xk, wk, bk) = (x.Clone().RequiresGrad_(gx), w.Clone().RequiresGrad_(gw), b?.Clone().RequiresGrad_(gw));
        Assert.Equal(Expected, Functional.Linear(xk, wk).GradFnName.Contains(KernelNode));
        var y = Functional.Linear(xk, wk, bk);
        if (Expected) Assert.Equal(bias ? "AddBackward0" : $"torch::autograd::CppNode<(anonymous namespace)::{KernelNode}>", y.GradFnName);
        y.Backward(upstream);

        var (x64, w64, b64) = (x.To(ScalarType.Float64).RequiresGrad_(gx), w.To(ScalarType.Float64).RequiresGrad_(gw), b?.To(ScalarType.Float64).RequiresGrad_(gw));
        var want = x64.Reshape(-1, inF).Mm(w64.T).Reshape(outShape);
        if (b64 is not null) want = want + b64;
        want.Backward(upstream.To(ScalarType.Float64));

        Close(y, want, "y", 1e-4, 1e-4);
        Assert.Equal(gx, xk.Grad is not null);
        Assert.Equal(gw, wk.Grad is not null);
        if (gx) Close(xk.Grad!, x64.Grad!, "dx", 1e-4, 1e-4);
        if (gw) Close(wk.Grad!, w64.Grad!, "dw", 1e-3, 1e-4);
        if (bias && gw) Close(bk!.Grad!, b64!.Grad!, "db", 1e-3, 1e-4);
    }

    [Fact]
    public void Other_products_keep_aten_linear()
    {
        using var scope = Torch.NewScope();
        using var threads = Torch.UseThreads(2);
        using var g = new Generator(11);
        var x = Torch.Randn([256, 32], g).RequiresGrad_();
        var w = Torch.Randn([16, 32], g).RequiresGrad_();
        Assert.Equal(Expected, Functional.Linear(x, w).GradFnName.Contains(KernelNode));
        using (Torch.NoGrad()) Assert.Equal("", Functional.Linear(x, w).GradFnName);                          // no autograd
        Assert.DoesNotContain(KernelNode, Functional.Linear(x.Detach(), w.Detach()).GradFnName);               // nothing needs a gradient
        Assert.DoesNotContain(KernelNode, Functional.Linear(x.Narrow(0, 0, 90), w).GradFnName);                // 90 rows: < 48 per thread
        Assert.DoesNotContain(KernelNode, Functional.Linear(x.To(ScalarType.Float64), w.To(ScalarType.Float64)).GradFnName);
        using (Torch.UseThreads(1)) Assert.DoesNotContain(KernelNode, Functional.Linear(x, w).GradFnName);     // one thread
    }

    [Fact]
    public void Results_are_the_same_bits_on_any_thread_count_and_as_one_unsplit_product()
    {
        if (!Expected) return;                               // aten::linear's threads split products their own way
        using var scope = Torch.NewScope();
        using var g = new Generator(7);
        var x = Torch.Randn([4, 250, 256], g);                // 1,000 rows
        var w = Torch.Randn([384, 256], g) * 0.1;
        var upstream = Torch.Randn([4, 250, 384], g);

        (double[] Y, double[] Dx, double[] Dw) Run(int threads)
        {
            using var t = Torch.UseThreads(threads);
            var (xa, wa) = (x.Clone().RequiresGrad_(), w.Clone().RequiresGrad_());
            var y = Functional.Linear(xa, wa);
            Assert.Contains(KernelNode, y.GradFnName);
            y.Backward(upstream);
            return (Bits(y), Bits(xa.Grad!), Bits(wa.Grad!));
        }
        var two = Run(2);
        var three = Run(3);
        var four = Run(4);
        Assert.Equal(two.Y, three.Y);
        Assert.Equal(two.Dx, three.Dx);
        Assert.Equal(two.Dw, three.Dw);
        Assert.Equal(two.Y, four.Y);
        Assert.Equal(two.Dw, four.Dw);

        // One unsplit BLAS call per product (aten's mm on one thread) gives the same bits.
        using var one = Torch.UseThreads(1);
        var (x1, w1) = (x.Clone().RequiresGrad_(), w.Clone().RequiresGrad_());
        var y1 = x1.Reshape(-1, 256).Mm(w1.T).Reshape(4, 250, 384);
        y1.Backward(upstream);
        Assert.Equal(Bits(y1), two.Y);
        Assert.Equal(Bits(x1.Grad!), two.Dx);
        Assert.Equal(Bits(w1.Grad!), two.Dw);
    }

    [Fact]
    public void Gradients_stay_differentiable_under_create_graph()
    {
        using var scope = Torch.NewScope();
        using var threads = Torch.UseThreads(2);
        using var g = new Generator(13);
        var x = Torch.Randn([128, 24], g);
        var w = Torch.Randn([20, 24], g) * 0.3;

        // A gradient penalty: p = Σ (∂ Σ linear(x, w)² / ∂x)², differentiated again with respect to w.
        double[] Penalty(Tensor xs, Tensor ws)
        {
            var y = Functional.Linear(xs, ws);
            var dx = Autograd.Grad([y.Square().Sum()], [xs], createGraph: true)[0]!;
            dx.Square().Sum().Backward();
            return Bits(ws.Grad!);
        }
        var got = Penalty(x.Clone().RequiresGrad_(), w.Clone().RequiresGrad_());
        var want = Penalty(x.To(ScalarType.Float64).RequiresGrad_(), w.To(ScalarType.Float64).RequiresGrad_());
        Assert.Contains(got, v => v != 0);
        for (var i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(got[i] - want[i]) <= 1e-2 + 1e-3 * Math.Abs(want[i]), $"d penalty / dw[{i}]: {got[i]} vs float64 {want[i]}");
    }
}
