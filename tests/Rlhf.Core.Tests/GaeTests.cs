using Rlhf.Core.Advantages;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class GaeTests
{
    /// <summary>The backwards recursion written with plain loops (TRL PPOv2).</summary>
    private static (double[,] A, double[,] R) Loop(double[,] r, double[,] v, double gamma, double lam)
    {
        int b = r.GetLength(0), t = r.GetLength(1);
        var a = new double[b, t];
        var ret = new double[b, t];
        for (var i = 0; i < b; i++)
        {
            double last = 0;
            for (var k = t - 1; k >= 0; k--)
            {
                var next = k < t - 1 ? v[i, k + 1] : 0;
                var delta = r[i, k] + gamma * next - v[i, k];
                last = delta + gamma * lam * last;
                a[i, k] = last;
                ret[i, k] = last + v[i, k];
            }
        }
        return (a, ret);
    }

    [Fact]
    public void Hand_example()
    {
        using var scope = Torch.NewScope();
        // r = [0, 0, 1], V = [0.5, 0.5, 0.5], γ = 1, λ = 0.5:
        // δ = [0 + 0.5 − 0.5, 0 + 0.5 − 0.5, 1 + 0 − 0.5] = [0, 0, 0.5]; A_2 = 0.5, A_1 = 0 + 0.25, A_0 = 0.125.
        var res = Gae.Compute(T.D([0, 0, 1.0], 1, 3), T.D([0.5, 0.5, 0.5], 1, 3), 1.0, 0.5);
        T.Close(new[] { 0.125, 0.25, 0.5 }, T.A(res.Advantages), 1e-12);
        T.Close(new[] { 0.625, 0.75, 1.0 }, T.A(res.Returns), 1e-12);
    }

    [Fact]
    public void Matches_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var r = T.Randn(g, c.B, c.T);
        var v = T.Randn(g, c.B, c.T);
        var (a, ret) = Loop(T.A2(r), T.A2(v), 0.9, 0.8);
        var res = Gae.Compute(r, v, 0.9, 0.8);
        T.Close(a, res.Advantages, 1e-12);
        T.Close(ret, res.Returns, 1e-12);
    });

    [Fact]
    public void With_gamma_and_lambda_one_advantages_are_reward_to_go_minus_values() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var r = T.Randn(g, c.B, c.T);
        var v = T.Randn(g, c.B, c.T);
        // reward-to-go G_t = Σ_{s ≥ t} r_s = flip(cumsum(flip(r))).
        var rtg = r.Flip(1).Cumsum(1).Flip(1);
        var res = Gae.Compute(r, v, 1.0, 1.0);
        Assert.True(res.Advantages.AllClose(rtg - v, 1e-10, 1e-10));
        Assert.True(res.Returns.AllClose(rtg, 1e-10, 1e-10));
        Assert.True(DiscountedReturns.Compute(r, null, 1.0).AllClose(rtg, 1e-10, 1e-10));
    });

    [Fact]
    public void Discounted_returns_hand_example_and_mask()
    {
        using var scope = Torch.NewScope();
        // γ = 0.5, r = [1, 2, 4] → G = [1 + 0.5·(2 + 0.5·4), 2 + 0.5·4, 4] = [3, 4, 4]; masking the last: [2, 2, 0].
        T.Close(new[] { 3.0, 4, 4 }, T.A(DiscountedReturns.Compute(T.D([1, 2, 4.0], 1, 3), null, 0.5)));
        T.Close(new[] { 2.0, 2, 0 }, T.A(DiscountedReturns.Compute(T.D([1, 2, 4.0], 1, 3), T.B(new[,] { { true, true, false } }), 0.5)));
    }

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(1);
        var w = T.Randn(g, 2, 4);
        GradCheck.Check(x =>
        {
            var res = Gae.Compute(x[0], x[1], 0.9, 0.7);
            return (res.Advantages * w).Sum() + (res.Returns * w).Sum() * 0.5;
        }, [T.Randn(g, 2, 4), T.Randn(g, 2, 4)]);
    }
}
