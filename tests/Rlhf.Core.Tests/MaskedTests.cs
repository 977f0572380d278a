using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class MaskedTests
{
    [Fact]
    public void Hand_example_mean_var_whiten()
    {
        using var scope = Torch.NewScope();
        // Active: 1, 2, 3, 6 (mean 3, Σ(x−μ)² = 4+1+0+9 = 14, Bessel var 14/3); the 100 is masked.
        var x = T.D([1, 2, 100, 3, 6, 0], 2, 3);
        var m = T.B(new[,] { { true, true, false }, { true, true, false } });
        T.Close(3.0, Masked.Mean(x, m).Item());
        T.Close(14.0 / 3, Masked.Var(x, m).Item());
        T.Close(14.0 / 4, Masked.Var(x, m, unbiased: false).Item());
        Assert.Equal(new[] { 1.5, 4.5 }, T.A(Masked.Mean(x, m, 1)));
        var s = 1 / Math.Sqrt(14.0 / 3 + 1e-8);
        T.Close(new[] { -2 * s, -1 * s, 0, 0, 3 * s, 0 }, T.A(Masked.Whiten(x, m)), 1e-12);
        T.Close(new[] { -2 * s + 3, -1 * s + 3, 0, 3, 3 * s + 3, 0 }, T.A(Masked.Whiten(x, m, shiftMean: false)), 1e-12);
        // Float masks work like bool ones.
        T.Close(3.0, Masked.Mean(x, m.To(ScalarType.Float64)).Item());
    }

    [Fact]
    public void Whitening_gives_masked_mean_zero_and_variance_one() => T.Check(T.Cases(minT: 2), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var x = T.Randn(g, c.B, c.T) * 3 + 2;
        var m = T.AnyMask(g, c.B, c.T, min: 2);
        var w = Masked.Whiten(x, m);
        T.Close(0, Masked.Mean(w, m).Item(), 1e-9, "mean");
        // var(w) = σ²/(σ² + 1e-8): 1 up to the epsilon.
        var v = Masked.Var(x, m).Item();
        T.Close(v / (v + 1e-8), Masked.Var(w, m).Item(), 1e-9, "variance");
    });

    [Fact]
    public void Masked_functions_do_not_depend_on_values_at_masked_positions() => T.Check(T.Cases(minT: 2), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var x = T.Randn(g, c.B, c.T);
        var m = T.AnyMask(g, c.B, c.T, min: 2);
        // Replace every masked entry by junk, including ±∞ and NaN.
        var junk = Torch.Where(m, x, double.NaN);
        var junk2 = Torch.Where(m, x, 1e30);
        foreach (var y in new[] { junk, junk2 })
        {
            T.Close(Masked.Mean(x, m).Item(), Masked.Mean(y, m).Item(), 1e-12);
            T.Close(Masked.Var(x, m).Item(), Masked.Var(y, m).Item(), 1e-12);
            Assert.True(Masked.Whiten(x, m).AllClose(Masked.Whiten(y, m), 1e-12, 1e-12));
            Assert.True(Masked.Whiten(x, m, false).AllClose(Masked.Whiten(y, m, false), 1e-12, 1e-12));
            Assert.True(Masked.Sum(x, m, 1).AllClose(Masked.Sum(y, m, 1), 1e-12, 1e-12));
        }
    });

    [Fact]
    public void Masked_stats_match_a_scalar_loop() => T.Check(T.Cases(minT: 2), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var x = T.Randn(g, c.B, c.T);
        var m = T.AnyMask(g, c.B, c.T, min: 2);
        var xs = T.A(x);
        var ms = T.AB(m);
        double sum = 0, n = 0;
        for (var i = 0; i < xs.Length; i++) if (ms[i]) { sum += xs[i]; n++; }
        var mean = sum / n;
        double ss = 0;
        for (var i = 0; i < xs.Length; i++) if (ms[i]) ss += (xs[i] - mean) * (xs[i] - mean);
        var var = ss / (n - 1);
        T.Close(mean, Masked.Mean(x, m).Item(), 1e-12);
        T.Close(var, Masked.Var(x, m).Item(), 1e-12);
        var w = T.A(Masked.Whiten(x, m));
        for (var i = 0; i < xs.Length; i++) T.Close(ms[i] ? (xs[i] - mean) / Math.Sqrt(var + 1e-8) : 0, w[i], 1e-10);
    });

    [Fact]
    public void Variance_with_fewer_than_two_active_entries_is_an_error()
    {
        using var scope = Torch.NewScope();
        var x = T.D([1, 2], 1, 2);
        Assert.Throws<ArgumentException>(() => Masked.Var(x, T.B(new[,] { { true, false } })));
        Assert.Throws<ArgumentException>(() => Masked.Var(x, T.B(new[,] { { false, false } }), unbiased: false));
    }

    [Fact]
    public void Whitening_gradient_matches_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(11);
        var m = T.AnyMask(g, 3, 4, min: 3);
        var wts = T.Randn(g, 3, 4);
        GradCheck.Check(x => (Masked.Whiten(x[0], m) * wts).Sum() + (Masked.Whiten(x[0], m, false) * wts).Sum(), [T.Randn(g, 3, 4)]);
    }
}
