using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class GrpoTests
{
    [Fact]
    public void Hand_example_advantages()
    {
        using var scope = Torch.NewScope();
        // Groups (interleaved on purpose): {1, 2, 3} → mean 2, std 1; {5, 5} → std 0, advantages 0.
        var r = T.D([1, 5, 2, 5, 3]);
        int[] ids = [7, 9, 7, 9, 7];
        T.Close(new[] { -1 / 1.0001, 0, 0, 0, 1 / 1.0001 }, T.A(Grpo.Advantages(r, ids, GroupScaling.Group)), 1e-12);
        T.Close(new[] { -1.0, 0, 0, 0, 1 }, T.A(Grpo.Advantages(r, ids, GroupScaling.None)), 1e-12);
        var batchStd = Math.Sqrt(new[] { 1.0, 5, 2, 5, 3 }.Select(x => (x - 3.2) * (x - 3.2)).Sum() / 4);
        T.Close(new[] { -1 / (batchStd + 1e-4), 0, 0, 0, 1 / (batchStd + 1e-4) }, T.A(Grpo.Advantages(r, ids, GroupScaling.Batch)), 1e-12);
        Assert.Throws<ArgumentException>(() => Grpo.Advantages(T.D([1, 2, 3]), [0, 0, 1], GroupScaling.Group));
    }

    [Fact]
    public void Advantages_have_zero_group_mean() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var r = T.Randn(c.Gen(), c.B) * 3 + 1;
        foreach (var s in new[] { GroupScaling.Group, GroupScaling.Batch, GroupScaling.None })
        {
            var a = Grpo.Advantages(r, c.Ids, s);
            Assert.True(Groups.Mean(a, c.Ids).Abs().Max().Item() < 1e-10);
        }
    });

    [Fact]
    public void Group_scaled_advantages_are_invariant_to_positive_scaling() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var r = T.Randn(g, c.B);
        var k = Torch.Rand([1], g, ScalarType.Float64).Item() * 10 + 0.1;
        // Exactly invariant without the epsilon; with it, scaling by k is the same as dividing the epsilon by k:
        // (k r − k μ)/(k s + ε) = (r − μ)/(s + ε/k).
        Assert.True(GroupAdvantages.Grpo(r * k, c.Ids, GroupScaling.Group, 0).AllClose(GroupAdvantages.Grpo(r, c.Ids, GroupScaling.Group, 0), 1e-9, 1e-9));
        Assert.True(Grpo.Advantages(r * k, c.Ids, GroupScaling.Group).AllClose(GroupAdvantages.Grpo(r, c.Ids, GroupScaling.Group, GroupAdvantages.GrpoEpsilon / k), 1e-9, 1e-9));
        // ... and to adding a constant to every reward.
        Assert.True(Grpo.Advantages(r + 3.0, c.Ids, GroupScaling.Group).AllClose(Grpo.Advantages(r, c.Ids, GroupScaling.Group), 1e-9, 1e-9));
    });

    [Fact]
    public void Hand_example_aggregations()
    {
        using var scope = Torch.NewScope();
        // One update per generation (old = lp.detach()): ρ = 1, per-token loss = −A. A = [1, −2].
        var lp = T.D([-1, -2, -3, -1, -2, -3], 2, 3);
        var adv = T.D([1.0, -2.0]);
        var mask = T.B(new[,] { { true, true, false }, { true, true, true } });
        double L(LossAggregation a, long? maxLen = null, double? global = null) =>
            Grpo.Loss(lp, null, adv, mask, null, 0.2, 0.2, 0.0, a, maxLen, global).Loss.Item();
        // Row sums: −2 (2 tokens) and 6 (3 tokens).
        T.Close((-1.0 + 2.0) / 2, L(LossAggregation.Grpo), 1e-12);
        T.Close(4.0 / 5, L(LossAggregation.Bnpo), 1e-12);
        T.Close(4.0 / 6, L(LossAggregation.DrGrpo), 1e-12);
        T.Close(4.0 / 8, L(LossAggregation.DrGrpo, maxLen: 4), 1e-12);
        T.Close(4.0 / 5, L(LossAggregation.Dapo), 1e-12);
        T.Close(4.0 / 10, L(LossAggregation.Dapo, global: 10), 1e-12);
    }

    [Fact]
    public void Hand_example_clip_ratios_and_kl()
    {
        using var scope = Torch.NewScope();
        // ε_low = 0.2, ε_high = 0.28 (DAPO). Tokens: ρ = 0.7 with A < 0 (low clip), 1.3 with A > 0 (high clip), 1.25 with A > 0 (inside).
        var old = T.D([0, 0, 0], 3, 1);
        var lp = T.D([Math.Log(0.7), Math.Log(1.3), Math.Log(1.25)], 3, 1);
        var adv = T.D([-1.0, 2.0, 1.0]);
        var mask = Torch.Ones([3, 1], ScalarType.Bool);
        var rf = T.D([0, 0, 0], 3, 1);
        var (loss, s) = Grpo.Loss(lp, old, adv, mask, rf, 0.2, 0.28, 0.1, LossAggregation.Bnpo);
        // −min(ρA, clip(ρ)A): 0.8 (low clip: −min(−0.7, −0.8)); −min(2.6, 2.56) = −2.56; −1.25. KL k3 = exp(−r) − 1 + r.
        double K3(double r) => Math.Exp(-r) - 1 + r;
        var expected = (0.8 - 2.56 - 1.25 + 0.1 * (K3(Math.Log(0.7)) + K3(Math.Log(1.3)) + K3(Math.Log(1.25)))) / 3;
        T.Close(expected, loss.Item(), 1e-12);
        T.Close(1.0 / 3, s.ClipRatioLow, 1e-12);
        T.Close(1.0 / 3, s.ClipRatioHigh, 1e-12);
        T.Close(2.0 / 3, s.ClipRatioRegion, 1e-12);
        T.Close((K3(Math.Log(0.7)) + K3(Math.Log(1.3)) + K3(Math.Log(1.25))) / 3, s.Kl!.Value, 1e-12);
        var m = s.ToMetrics();
        Assert.True(m.ContainsKey("clip_ratio/low_mean") && m.ContainsKey("clip_ratio/high_mean") && m.ContainsKey("clip_ratio/region_mean") && m.ContainsKey("kl"));
        Assert.False(Grpo.Loss(lp, old, adv, mask, null, 0.2, 0.28, 0.0, LossAggregation.Bnpo).Stats.ToMetrics().ContainsKey("kl"));
    }

    [Fact]
    public void Per_token_loss_matches_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var lp = old + T.Randn(g, c.B, c.T) * 0.4;
        var rf = old + T.Randn(g, c.B, c.T) * 0.4;
        var adv = T.Randn(g, c.B);
        var mask = T.RowMask(g, c.B, c.T);
        var per = T.A(Grpo.PerTokenLoss(lp, old, adv, 0.2, 0.28, 0.04, rf));
        var a = T.A(adv);
        var l = T.A(lp);
        var o = T.A(old);
        var rr = T.A(rf);
        var m = T.AB(mask);
        double grpo = 0;
        for (var i = 0; i < c.B; i++)
        {
            double rowSum = 0, rowN = 0;
            for (var t = 0; t < c.T; t++)
            {
                var k = i * c.T + t;
                var rho = Math.Exp(l[k] - o[k]);
                var r = l[k] - rr[k];
                var expected = -Math.Min(rho * a[i], Math.Clamp(rho, 0.8, 1.28) * a[i]) + 0.04 * (Math.Exp(-r) - 1 + r);
                T.Close(expected, per[k], 1e-10);
                if (m[k]) { rowSum += expected; rowN++; }
            }
            grpo += rowSum / Math.Max(rowN, 1);
        }
        T.Close(grpo / c.B, Grpo.Loss(lp, old, adv, mask, rf, 0.2, 0.28, 0.04, LossAggregation.Grpo).Loss.Item(), 1e-10);
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(9);
        var old = T.Randn(g, 3, 4);
        var rf = T.Randn(g, 3, 4);
        var adv = T.Randn(g, 3);
        var mask = T.RowMask(g, 3, 4);
        foreach (var agg in Enum.GetValues<LossAggregation>())
        {
            GradCheck.Check(x => Grpo.Loss(x[0], old, adv, mask, rf, 0.2, 0.28, 0.04, agg).Loss, [old + T.Randn(g, 3, 4) * 0.3]);
        }
        // Advantages are differentiable in the rewards too.
        GradCheck.Check(x => (Grpo.Advantages(x[0], [0, 0, 0, 1, 1], GroupScaling.Group) * T.D([1, 2, 3, 4, 5])).Sum(), [T.Randn(g, 5)]);
    }
}
