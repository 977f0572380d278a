using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class RlooTests
{
    [Fact]
    public void Hand_example_advantages_and_rlhf_reward()
    {
        using var scope = Torch.NewScope();
        // k = 3: A_0 = 1 − (2+3)/2 = −1.5, A_1 = 2 − (1+3)/2 = 0, A_2 = 3 − (1+2)/2 = 1.5; k = 2 group {4, 10}: ∓6.
        T.Close(new[] { -1.5, -6, 0, 1.5, 6 }, T.A(Rloo.Advantages(T.D([1, 4, 2, 3, 10]), [0, 1, 0, 0, 1], normalize: false)), 1e-12);
        // rlhf = score − kl_coef Σ_t m (lp − ref): 1 − 0.5·(0.2 + 0.4) = 0.7 (third token masked).
        var rl = Rloo.RlhfReward(T.D([1.0]), T.D([-1.0, -1.0, 5.0], 1, 3), T.D([-1.2, -1.4, 0.0], 1, 3), T.B(new[,] { { true, true, false } }), 0.5);
        T.Close(0.7, rl.Item(), 1e-12);
    }

    [Fact]
    public void Advantages_sum_to_zero_per_group() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var a = Rloo.Advantages(T.Randn(c.Gen(), c.B) * 5, c.Ids, normalize: false);
        return Groups.Broadcast(a, c.Ids).Sum.Abs().Max().Item() < 1e-10;
    });

    [Fact]
    public void Advantages_ignore_a_constant_added_to_a_groups_rewards() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var r = T.Randn(g, c.B);
        var perGroup = T.Randn(g, c.G) * 10;
        var shift = perGroup.IndexSelect(0, Torch.From(c.Ids.Select(i => (long)i).ToArray()));
        return Rloo.Advantages(r + shift, c.Ids, normalize: false).AllClose(Rloo.Advantages(r, c.Ids, normalize: false), 1e-9, 1e-9);
    });

    [Fact]
    public void Hand_example_loss()
    {
        using var scope = Torch.NewScope();
        // Sequence ratios: row 0 Σ diff = ln 1.5 (A = 1 → clipped to 1.2), row 1 Σ diff = ln 0.9 (A = −2 → inside).
        var old = T.D([0, 0, 0, 0], 2, 2);
        var lp = T.D([Math.Log(1.5), 0, Math.Log(0.9), 3.0], 2, 2);
        var mask = T.B(new[,] { { true, true }, { true, false } });
        var (loss, s) = Rloo.Loss(lp, old, T.D([1.0, -2.0]), mask, 0.2, 0.2);
        // max(−1.5, −1.2) = −1.2; max(1.8, 1.8) = 1.8 → mean 0.3.
        T.Close(0.3, loss.Item(), 1e-12);
        T.Close(0.5, s.ClipFrac, 1e-12);
        T.Close(1.2, s.Ratio, 1e-12);
        T.Close(0.5 * (Math.Pow(Math.Log(1.5), 2) + Math.Pow(Math.Log(0.9), 2)) / 2, s.ApproxKl, 1e-12);
        Assert.Equal(0.3, s.ToMetrics()["loss/policy_avg"], 12);
    }

    [Fact]
    public void Loss_matches_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var lp = old + T.Randn(g, c.B, c.T) * 0.2;
        var adv = T.Randn(g, c.B);
        var mask = T.RowMask(g, c.B, c.T);
        var l = T.A(lp);
        var o = T.A(old);
        var a = T.A(adv);
        var m = T.AB(mask);
        double total = 0;
        for (var i = 0; i < c.B; i++)
        {
            double d = 0;
            for (var t = 0; t < c.T; t++) if (m[i * c.T + t]) d += l[i * c.T + t] - o[i * c.T + t];
            var rho = Math.Exp(d);
            total += Math.Max(-a[i] * rho, -a[i] * Math.Clamp(rho, 0.8, 1.2));
        }
        T.Close(total / c.B, Rloo.Loss(lp, old, adv, mask, 0.2, 0.2).Loss.Item(), 1e-10);
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(2);
        var old = T.Randn(g, 3, 4);
        var adv = T.Randn(g, 3);
        var mask = T.RowMask(g, 3, 4);
        GradCheck.Check(x => Rloo.Loss(x[0], old, adv, mask, 0.2, 0.2).Loss, [old + T.Randn(g, 3, 4) * 0.1]);
        GradCheck.Check(x => (Rloo.Advantages(x[0], [0, 1, 0, 1], normalize: true) * T.D([1, -2, 3, 0.5])).Sum(), [T.Randn(g, 4)]);
    }
}
