// Optimizer kernels: AdamW against a plain scalar loop, grad-norm clipping, sums of squares, scaling.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class OptimTests
{
    /// <summary>
    /// torch.optim.AdamW for one scalar parameter, written out: decoupled decay, moments, bias correction.
    /// State (m, v) is updated in place; returns the new parameter.
    /// </summary>
    private static double AdamWScalar(double p, double g, ref double m, ref double v, int step,
        double lr, double b1, double b2, double eps, double wd)
    {
        p *= 1 - lr * wd;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        var bc1 = 1 - Math.Pow(b1, step);
        var bc2 = 1 - Math.Pow(b2, step);
        var denom = Math.Sqrt(v) / Math.Sqrt(bc2) + eps;
        return p - lr / bc1 * m / denom;
    }

    /// <summary>The gradient both implementations use: d/dp of Σ (p² + c·p)·k, with k and c per element.</summary>
    private static double Grad(double p, double c, double k) => k * (2 * p + c);

    [Fact]
    public void AdamW_step_matches_a_scalar_loop_for_three_steps()
    {
        const double lr = 0.1, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.05;
        double[] p1 = [0.5, -1.5, 2, 0.1, -0.3, 1];
        double[] c1 = [1, 0, -2, 0.5, 3, -1];
        double[] k1 = [1, 2, 0.5, 1, 3, 0.1];
        double[] p2 = [3, -2, 0.25, 0.75];
        double[] c2 = [0, 1, 0, -4];
        double[] k2 = [0.2, 1, 5, 1];

        using var scope = Torch.NewScope();
        var w1 = T.D(p1, 2, 3).RequiresGrad_();
        var w2 = T.D(p2).RequiresGrad_();
        var ps = new[] { w1, w2 };
        var ms = ps.Select(Torch.ZerosLike).ToArray();
        var vs = ps.Select(Torch.ZerosLike).ToArray();
        var (cc1, kk1, cc2, kk2) = (T.D(c1, 2, 3), T.D(k1, 2, 3), T.D(c2), T.D(k2));

        double[] r1 = (double[])p1.Clone(), r2 = (double[])p2.Clone();
        double[] m1 = new double[6], v1 = new double[6], m2 = new double[4], v2 = new double[4];

        for (var step = 1; step <= 3; step++)
        {
            using (Torch.NewScope())
            {
                var loss = ((w1 * w1 + cc1 * w1) * kk1).Sum() + ((w2 * w2 + cc2 * w2) * kk2).Sum();
                loss.Backward();
                Optim.AdamWStep(ps, [w1.Grad, w2.Grad], ms, vs, lr, b1, b2, eps, wd, step);
                w1.ZeroGrad();
                w2.ZeroGrad();
            }
            for (var i = 0; i < 6; i++) r1[i] = AdamWScalar(r1[i], Grad(r1[i], c1[i], k1[i]), ref m1[i], ref v1[i], step, lr, b1, b2, eps, wd);
            for (var i = 0; i < 4; i++) r2[i] = AdamWScalar(r2[i], Grad(r2[i], c2[i], k2[i]), ref m2[i], ref v2[i], step, lr, b1, b2, eps, wd);

            Near.Equal(r1, w1, 1e-6);
            Near.Equal(r2, w2, 1e-6);
            Near.Equal(m1, ms[0], 1e-6);
            Near.Equal(v2, vs[1], 1e-6);
        }
        Assert.True(Math.Abs(r1[0] - p1[0]) > 0.1); // the parameters really moved
        Assert.True(w1.IsLeaf && w1.RequiresGrad); // the update is invisible to autograd
    }

    [Fact]
    public void AdamW_in_float32_tracks_the_float64_loop()
    {
        const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
        float[] p0 = [0.5f, -1.5f, 2f];
        float[] g0 = [0.1f, -0.2f, 0.3f];
        using var scope = Torch.NewScope();
        var p = T.F(p0);
        var g = T.F(g0);
        var m = Torch.ZerosLike(p);
        var v = Torch.ZerosLike(p);
        var r = p0.Select(x => (double)x).ToArray();
        double[] rm = new double[3], rv = new double[3];
        for (var step = 1; step <= 3; step++)
        {
            Optim.AdamWStep([p], [g], [m], [v], lr, b1, b2, eps, wd, step);
            for (var i = 0; i < 3; i++) r[i] = AdamWScalar(r[i], g0[i], ref rm[i], ref rv[i], step, lr, b1, b2, eps, wd);
        }
        Assert.Equal(ScalarType.Float32, p.Dtype);
        Near.Equal(r, p, 1e-6);
    }

    [Fact]
    public void AdamW_step_rejects_null_grads_and_ragged_lists()
    {
        using var scope = Torch.NewScope();
        var p = T.D(1, 2);
        var m = Torch.ZerosLike(p);
        Assert.Throws<ArgumentException>(() => Optim.AdamWStep([p], [null], [m], [m], 0.1, 0.9, 0.99, 1e-8, 0, 1));
        Assert.Throws<ArgumentException>(() => Optim.AdamWStep([p, p], [p], [m], [m], 0.1, 0.9, 0.99, 1e-8, 0, 1));
        Assert.Throws<TorchException>(() => Optim.AdamWStep([p], [T.D(1, 2, 3)], [m], [m], 0.1, 0.9, 0.99, 1e-8, 0, 1));
    }

    [Fact]
    public void AdamW_class_skips_parameters_without_grads_and_counts_steps()
    {
        const double lr = 0.05;
        using var scope = Torch.NewScope();
        var a = T.D(1, -1).RequiresGrad_();
        var b = T.D(2).RequiresGrad_();
        using var opt = new AdamW([a, b], lr: lr, weightDecay: 0.1);
        double[] ra = [1, -1];
        double[] ma = [0, 0], va = [0, 0];

        for (var step = 1; step <= 2; step++)
        {
            using (Torch.NewScope()) (a * a).Sum().Backward(); // b gets no grad
            opt.Step();
            opt.ZeroGrad();
            for (var i = 0; i < 2; i++) ra[i] = AdamWScalar(ra[i], 2 * ra[i], ref ma[i], ref va[i], step, lr, 0.9, 0.999, 1e-8, 0.1);
        }
        Assert.Equal(2, opt.StepCount);
        Near.Equal(ra, a, 1e-9);
        Assert.Equal(new double[] { 2 }, b.ToArray<double>()); // untouched: no decay without a grad either
        Assert.Null(a.Grad);
        Assert.Equal(0.0, opt.ExpAvg[1].Abs().Sum().Item());
        Assert.NotEqual(0.0, opt.ExpAvg[0].Abs().Sum().Item());
    }

    [Fact]
    public void AdamW_class_counts_steps_per_parameter_as_torch_does()
    {
        // torch keeps state['step'] per parameter: one that first gets a gradient at the third step is bias-corrected
        // as at its first. Regression: a single global count over-corrected such late parameters.
        const double lr = 0.1;
        using var scope = Torch.NewScope();
        var a = T.D(1.0).RequiresGrad_();
        var b = T.D(-2.0).RequiresGrad_();
        using var opt = new AdamW([a, b], lr: lr, weightDecay: 0);
        double ra = 1, rb = -2, ma = 0, va = 0, mb = 0, vb = 0;
        var bSteps = 0;
        for (var step = 1; step <= 4; step++)
        {
            var withB = step >= 3;
            using (Torch.NewScope()) (withB ? (a * a + b * b * b) : a * a).Sum().Backward();
            opt.Step();
            opt.ZeroGrad();
            ra = AdamWScalar(ra, 2 * ra, ref ma, ref va, step, lr, 0.9, 0.999, 1e-8, 0);
            if (withB) rb = AdamWScalar(rb, 3 * rb * rb, ref mb, ref vb, ++bSteps, lr, 0.9, 0.999, 1e-8, 0);
        }
        Assert.Equal(4, opt.StepCount);
        Near.Equal(ra, a.Item(), 1e-12);
        Near.Equal(rb, b.Item(), 1e-12);
        Assert.True(Math.Abs(rb + 2) > 0.15); // b moved by about lr per step, as a fresh Adam does
    }

    [Fact]
    public void Clip_grad_norm_scales_to_the_maximum_and_returns_the_old_norm()
    {
        using var scope = Torch.NewScope();
        var g1 = T.D(new double[] { 3, 0, 0, 0 }, 2, 2);
        var g2 = T.F(4, 0, 12); // ‖(3, 4, 12)‖ = 13, across dtypes
        var norm = Optim.ClipGradNorm_([g1, null, g2], 6.5);
        Assert.Equal(13.0, norm, 12);
        var coef = 6.5 / (13 + 1e-6);
        Near.Equal(new[] { 3 * coef, 0, 0, 0 }, g1, 1e-12);
        Near.Equal(new[] { 4 * coef, 0, 12 * coef }, g2, 1e-5);
        Near.Equal(6.5, Math.Sqrt(Optim.SumOfSquares([g1, g2])), 1e-5);

        var small = T.D(0.3, 0.4);
        Assert.Equal(0.5, Optim.ClipGradNorm_([small], 1.0), 12);
        Assert.Equal(new[] { 0.3, 0.4 }, small.ToArray<double>()); // under the maximum: untouched
    }

    [Fact]
    public void Sum_of_squares_and_scale()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2);
        var b = Torch.Full([3], 2L, ScalarType.Int32);
        Assert.Equal(1 + 4 + 12.0, Optim.SumOfSquares([a, null, b]));
        Assert.Equal(0.0, Optim.SumOfSquares([]));
        Optim.Scale_([a, null], 0.5);
        Assert.Equal(new[] { 0.5, 1 }, a.ToArray<double>());
    }
}
