using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class ReinforcePlusPlusTests
{
    [Fact]
    public void Hand_example()
    {
        using var scope = Torch.NewScope();
        // Row 0: tokens 0–1 active; kl = [0.1, 0.2], score 1, kl_coef 0.5 → r = [−0.05, −0.1 + 1] → G = [0.85, 0.9].
        // Row 1: tokens 0–2 active; kl = 0, score −1 → G = [−1, −1, −1].
        var kl = T.D([0.1, 0.2, 99, 0, 0, 0], 2, 3);
        var mask = T.B(new[,] { { true, true, false }, { true, true, true } });
        var res = ReinforcePlusPlus.Advantages(kl, T.D([1.0, -1.0]), mask, 0.5, 1.0, null, null, normalizeStd: true);
        T.Close(new[] { 0.85, 0.9, 0, -1, -1, -1 }, T.A(res.Returns), 1e-12);
        // OpenRLHF: mean over the 5 response tokens = −1.25/5 = −0.25; population variance (÷ 5, not ÷ 4) = (1.1² + 1.15² + 3 · 0.75²)/5 = 4.22/5 = 0.844.
        var g = new[] { 0.85, 0.9, -1, -1, -1 };
        const double mean = -0.25, var = 0.844;
        T.Close(mean, g.Average(), 1e-12);
        T.Close(var, g.Sum(x => (x - mean) * (x - mean)) / 5, 1e-12);
        var rs = 1 / Math.Sqrt(var);
        T.Close(new[] { 1.1 * rs, 1.15 * rs, 0, -0.75 * rs, -0.75 * rs, -0.75 * rs }, T.A(res.Advantages), 1e-12);
        // no_advantage_std_norm: only centred.
        var centred = ReinforcePlusPlus.Advantages(kl, T.D([1.0, -1.0]), mask, 0.5, 1.0, null, null, normalizeStd: false);
        T.Close(new[] { 1.1, 1.15, 0, -0.75, -0.75, -0.75 }, T.A(centred.Advantages), 1e-12);
    }

    [Fact]
    public void Hand_example_reward_clip_baseline_and_variance_floor()
    {
        using var scope = Torch.NewScope();
        // One token per row, no KL. Scores 30 and −2 in one group; clip range (−10, 10).
        var kl = T.D([0.0, 0.0], 2, 1);
        var mask = T.B(new[,] { { true }, { true } });
        var clipped = ReinforcePlusPlus.Advantages(kl, T.D([30.0, -2.0]), mask, 0.1, 1.0, null, (-10, 10), normalizeStd: false);
        T.Close(new[] { 10.0, -2.0 }, T.A(clipped.Returns), 1e-12);
        // Baseline first (mean 14 → 16, −16), then the clip: 10, −10 (OpenRLHF subtracts the group mean before compute_reward clips).
        var both = ReinforcePlusPlus.Advantages(kl, T.D([30.0, -2.0]), mask, 0.1, 1.0, [0, 0], (-10, 10), normalizeStd: false);
        T.Close(new[] { 10.0, -10.0 }, T.A(both.Returns), 1e-12);
        // Equal returns: variance 0 is floored at 1e-8, so the advantages are 0, not NaN.
        var flat = ReinforcePlusPlus.Advantages(kl, T.D([3.0, 3.0]), mask, 0.1, 1.0, null, null, normalizeStd: true);
        T.Close(new[] { 0.0, 0.0 }, T.A(flat.Advantages), 1e-12);
        // A variance below the floor is divided by 1e-4, not by its own root: returns ±1e-6 have variance 1e-12.
        var tiny = ReinforcePlusPlus.Advantages(kl, T.D([1e-6, -1e-6]), mask, 0.1, 1.0, null, null, normalizeStd: true);
        T.Close(new[] { 1e-2, -1e-2 }, T.A(tiny.Advantages), 1e-12);
    }

    [Fact]
    public void Matches_a_scalar_loop_with_and_without_the_group_baseline() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        const int len = 5;
        var kl = T.Randn(g, c.B, len);
        var scores = T.Randn(g, c.B);
        var mask = T.RowMask(g, c.B, len);
        foreach (var baseline in new[] { false, true })
        {
            var res = ReinforcePlusPlus.Advantages(kl, scores, mask, 0.1, 0.95, baseline ? c.Ids : null, null, normalizeStd: true);
            var k = T.A(kl);
            var s = T.A(scores);
            var m = T.AB(mask);
            if (baseline)
            {
                var groupMean = c.Ids.Select(id => Enumerable.Range(0, c.B).Where(j => c.Ids[j] == id).Average(j => T.A(scores)[j])).ToArray();
                s = s.Select((v, i) => v - groupMean[i]).ToArray();
            }
            var ret = new double[c.B * len];
            for (var i = 0; i < c.B; i++)
            {
                var last = -1;
                for (var t = 0; t < len; t++) if (m[i * len + t]) last = t;
                double acc = 0;
                for (var t = len - 1; t >= 0; t--)
                {
                    var r = m[i * len + t] ? -0.1 * k[i * len + t] + (t == last ? s[i] : 0) : 0;
                    acc = r + 0.95 * acc;
                    ret[i * len + t] = acc;
                }
            }
            T.Close(ret, T.A(res.Returns), 1e-10, "returns");
            var active = ret.Where((_, i) => m[i]).ToArray();
            var mean = active.Average();
            var sd = Math.Sqrt(Math.Max(active.Sum(x => (x - mean) * (x - mean)) / active.Length, 1e-8));
            T.Close(ret.Select((x, i) => m[i] ? (x - mean) / sd : 0).ToArray(), T.A(res.Advantages), 1e-8, "advantages");
        }
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(13);
        var mask = T.RowMask(g, 2, 3);
        var w = T.Randn(g, 2, 3);
        GradCheck.Check(x => (ReinforcePlusPlus.Advantages(x[0], x[1], mask, 0.1, 0.9, [0, 0], null, normalizeStd: true).Advantages * w).Sum(), [T.Randn(g, 2, 3), T.Randn(g, 2)]);
    }
}
