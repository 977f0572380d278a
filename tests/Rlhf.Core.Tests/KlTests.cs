using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class KlTests
{
    [Fact]
    public void Hand_example_k1_k2_k3()
    {
        using var scope = Torch.NewScope();
        // r = lp − ref = 0.5, −1, 20. k3 is TRL's, unclamped: e^−20 − 1 + 20 for the last.
        var lp = T.D([-1.0, -2.0, 0.0], 1, 3);
        var rf = T.D([-1.5, -1.0, -20.0], 1, 3);
        T.Close(new[] { 0.5, -1.0, 20.0 }, T.A(Kl.K1(lp, rf)));
        T.Close(new[] { 0.125, 0.5, 200.0 }, T.A(Kl.K2(lp, rf)));
        T.Close(new[] { Math.Exp(-0.5) - 1 + 0.5, Math.E - 1 - 1, Math.Exp(-20) + 19 }, T.A(Kl.K3(lp, rf)), 1e-12);
        // r = −30 gives e^30 − 31 unclamped (TRL); OpenRLHF clamps every estimator to ±10.
        T.Close(Math.Exp(30) - 31, Kl.K3(T.D([-30.0], 1, 1), T.D([0.0], 1, 1)).Item(), 1e-3);
        T.Close(10.0, Kl.Estimate(T.D([-30.0], 1, 1), T.D([0.0], 1, 1), KlEstimator.K3, clamp: Kl.OpenRlhfClamp).Item());
        T.Close(new[] { 0.5, -1.0, 10.0 }, T.A(Kl.Estimate(lp, rf, KlEstimator.K1, clamp: Kl.OpenRlhfClamp)));
        T.Close(new[] { 0.125, 0.5, 10.0 }, T.A(Kl.Estimate(lp, rf, KlEstimator.K2, clamp: Kl.OpenRlhfClamp)));
        // A mask zeroes positions.
        T.Close(new[] { 0.5, 0, 20 }, T.A(Kl.K1(lp, rf, T.B(new[,] { { true, false, true } }))));
    }

    [Fact]
    public void All_estimators_are_zero_when_logprobs_equal_the_reference() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var lp = T.Randn(c.Gen(), c.B, c.T);
        foreach (var e in new[] { KlEstimator.K1, KlEstimator.K2, KlEstimator.K3 })
            Assert.Equal(0.0, T.A(Kl.Estimate(lp, lp.Clone(), e)).Select(Math.Abs).Max());
    });

    [Fact]
    public void K2_and_k3_are_non_negative_and_match_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var lp = T.Randn(g, c.B, c.T) * 4;
        var rf = T.Randn(g, c.B, c.T) * 4;
        var k2 = T.A(Kl.K2(lp, rf));
        var k3 = T.A(Kl.K3(lp, rf));
        var a = T.A(lp);
        var b = T.A(rf);
        for (var i = 0; i < a.Length; i++)
        {
            var r = a[i] - b[i];
            Assert.True(k2[i] >= 0 && k3[i] >= 0);
            T.Close(r * r / 2, k2[i], 1e-12);
            T.Close(Math.Exp(-r) - 1 + r, k3[i], 1e-10 * Math.Max(1, Math.Abs(k3[i])));
        }
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(7);
        var lp = T.Randn(g, 2, 3) * 0.5;
        var rf = T.Randn(g, 2, 3) * 0.5;
        foreach (var e in new[] { KlEstimator.K1, KlEstimator.K2, KlEstimator.K3 })
            GradCheck.Check(x => Kl.Estimate(x[0], x[1], e).Sum(), [lp, rf]);
    }
}
