using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class ImportanceSamplingTests
{
    private static readonly (ImportanceSamplingLevel Level, ImportanceSamplingMode Mode)[] All =
    [
        (ImportanceSamplingLevel.Token, ImportanceSamplingMode.Truncate),
        (ImportanceSamplingLevel.Token, ImportanceSamplingMode.Mask),
        (ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate),
        (ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Mask),
    ];

    private static (Tensor Weights, TensorStats Stats) W(Tensor tr, Tensor gen, Tensor mask, (ImportanceSamplingLevel Level, ImportanceSamplingMode Mode) set,
        double cap = 2.0, double floor = 0.0) => ImportanceSampling.Weights(tr, gen, mask, set.Level, set.Mode, cap, floor);

    [Fact]
    public void Hand_example_all_modes()
    {
        using var scope = Torch.NewScope();
        // Token log-ratios: row 0 [ln 3, ln 0.5], row 1 [ln 1.5, (padding)].
        var gen = T.D([0, 0, 0, 0], 2, 2);
        var tr = T.D([Math.Log(3), Math.Log(0.5), Math.Log(1.5), 5.0], 2, 2);
        var mask = T.B(new[,] { { true, true }, { true, false } });
        T.Close(new[] { 2.0, 0.5, 1.5, 1.0 }, T.A(W(tr, gen, mask, All[0]).Weights), 1e-12);
        T.Close(new[] { 0.0, 0.5, 1.5, 1.0 }, T.A(W(tr, gen, mask, All[1]).Weights), 1e-12);
        // Sequence ratios: row 0 exp(ln 3 + ln 0.5) = 1.5, row 1 = 1.5.
        T.Close(new[] { 1.5, 1.5, 1.5, 1.0 }, T.A(W(tr, gen, mask, All[2]).Weights), 1e-12);
        var tr2 = T.D([Math.Log(3), 0, Math.Log(1.5), 5.0], 2, 2);
        T.Close(new[] { 2.0, 2.0, 1.5, 1.0 }, T.A(W(tr2, gen, mask, All[2]).Weights), 1e-12);
        var (w, s) = W(tr2, gen, mask, All[3]);
        T.Close(new[] { 0.0, 0.0, 1.5, 1.0 }, T.A(w), 1e-12);
        var m = s.ToMetrics();
        T.Close(0.0, m["sampling/importance_sampling_ratio/min"], 1e-12);
        T.Close(1.5, m["sampling/importance_sampling_ratio/max"], 1e-12);
        // Sequence level: the mean is over the two sequences (TRL flattens its [B, 1] ratio), not over the three tokens (0.5).
        T.Close(0.75, m["sampling/importance_sampling_ratio/mean"], 1e-12);
        T.Close(Math.Log(3), m["sampling/sampling_logp_difference/max"], 1e-12);
        T.Close(Math.Log(3) / 3 + Math.Log(1.5) / 3, m["sampling/sampling_logp_difference/mean"], 1e-12);
        // Token level: the mean is over response tokens: (2 + 0.5 + 1.5) / 3.
        T.Close(4.0 / 3, W(tr, gen, mask, All[0]).Stats.ToMetrics()["sampling/importance_sampling_ratio/mean"], 1e-12);
    }

    [Fact]
    public void Hand_example_floor_for_truncate_and_mask()
    {
        using var scope = Torch.NewScope();
        // Token ratios 3, 0.5, 1.5 (and padding); floor 0.6, cap 2.
        var gen = T.D([0, 0, 0, 0], 2, 2);
        var tr = T.D([Math.Log(3), Math.Log(0.5), Math.Log(1.5), 5.0], 2, 2);
        var mask = T.B(new[,] { { true, true }, { true, false } });
        T.Close(new[] { 2.0, 0.6, 1.5, 1.0 }, T.A(W(tr, gen, mask, All[0], floor: 0.6).Weights), 1e-12);
        T.Close(new[] { 0.0, 0.0, 1.5, 1.0 }, T.A(W(tr, gen, mask, All[1], floor: 0.6).Weights), 1e-12);
        // Sequence ratios 1.5 and 1.5 with cap 2, floor 0.6: both pass; a row ratio of 0.5 is raised to / dropped below the floor.
        var tr3 = T.D([Math.Log(0.5), 0, Math.Log(1.5), 5.0], 2, 2);
        T.Close(new[] { 0.6, 0.6, 1.5, 1.0 }, T.A(W(tr3, gen, mask, All[2], floor: 0.6).Weights), 1e-12);
        T.Close(new[] { 0.0, 0.0, 1.5, 1.0 }, T.A(W(tr3, gen, mask, All[3], floor: 0.6).Weights), 1e-12);
        Assert.Throws<ArgumentException>(() => W(tr, gen, mask, All[0], floor: 1.5));
        Assert.Throws<ArgumentException>(() => W(tr, gen, mask, All[0], cap: 0.9));
    }

    [Fact]
    public void Correction_is_the_identity_when_generator_and_trainer_agree() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var lp = T.Randn(g, c.B, c.T);
        var mask = T.RowMask(g, c.B, c.T);
        var loss = T.Randn(g, c.B, c.T);
        foreach (var set in All)
        {
            var (w, s) = W(lp, lp.Clone(), mask, set, floor: 0.5);
            Assert.True(ImportanceSampling.Apply(loss, w).Equal(loss));
            var m = s.ToMetrics();
            Assert.Equal(1.0, m["sampling/importance_sampling_ratio/mean"]);
            Assert.Equal(0.0, m["sampling/sampling_logp_difference/max"]);
        }
    });

    [Fact]
    public void Weights_match_a_scalar_loop_are_bounded_and_carry_no_gradient() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var gen = T.Randn(g, c.B, c.T);
        var tr = (gen + T.Randn(g, c.B, c.T) * 0.5).RequiresGrad_();
        var mask = T.RowMask(g, c.B, c.T);
        double[] a = T.A(tr), b = T.A(gen);
        bool[] m = T.AB(mask);
        foreach (var set in All)
        {
            var (w, _) = W(tr, gen, mask, set);
            Assert.False(w.RequiresGrad);
            var ws = T.A(w);
            for (var i = 0; i < c.B; i++)
            {
                double seq = 0;
                for (var t = 0; t < c.T; t++) if (m[i * c.T + t]) seq += a[i * c.T + t] - b[i * c.T + t];
                for (var t = 0; t < c.T; t++)
                {
                    var k = i * c.T + t;
                    var rho = Math.Exp(set.Level == ImportanceSamplingLevel.Token ? a[k] - b[k] : seq);
                    var expected = !m[k] ? 1.0 : set.Mode == ImportanceSamplingMode.Truncate ? Math.Min(rho, 2.0) : rho > 2.0 ? 0.0 : rho;
                    T.Close(expected, ws[k], 1e-10);
                    Assert.True(ws[k] <= 2.0 + 1e-12);
                }
            }
        }
    });

    [Fact]
    public void Corrected_loss_gradient_matches_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(6);
        var gen = T.Randn(g, 2, 3);
        var mask = T.RowMask(g, 2, 3);
        var adv = T.Randn(g, 2);
        // The weights are constants: the gradient flows only through the GRPO per-token loss.
        var (w, _) = W(gen + T.Randn(g, 2, 3) * 0.3, gen, mask, All[0]);
        GradCheck.Check(x => Aggregation.Reduce(ImportanceSampling.Apply(Grpo.PerTokenLoss(x[0], gen, adv, 0.2, 0.2, 0.0, null), w), mask, LossAggregation.Dapo),
            [gen + T.Randn(g, 2, 3) * 0.1]);
    }
}
