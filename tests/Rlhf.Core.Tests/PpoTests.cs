using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class PpoTests
{
    [Fact]
    public void Hand_example_policy_loss()
    {
        using var scope = Torch.NewScope();
        // Row 0 (A = 1): ρ = 1.1 (inside) and 1.5 (clipped to 1.2). Row 1 (A = −1): ρ = 0.5 (clipped to 0.8) and a padded token.
        var old = T.D([0, 0, 0, 0], 2, 2);
        var lp = T.D([Math.Log(1.1), Math.Log(1.5), Math.Log(0.5), 7.0], 2, 2);
        var adv = T.D([1, 1, -1, -1], 2, 2);
        var mask = T.B(new[,] { { true, true }, { true, false } });
        var (loss, s) = Ppo.PolicyLoss(lp, old, adv, mask, 0.2, null);
        // per token: max(−1.1, −1.1) = −1.1; max(−1.5, −1.2) = −1.2; max(0.5, 0.8) = 0.8 → mean −0.5.
        T.Close(-0.5, loss.Item(), 1e-12);
        T.Close(-0.5, s.Loss, 1e-12);
        T.Close(2.0 / 3, s.ClipFrac, 1e-12);
        T.Close(0.5 * (Math.Pow(Math.Log(1.1), 2) + Math.Pow(Math.Log(1.5), 2) + Math.Pow(Math.Log(0.5), 2)) / 3, s.ApproxKl, 1e-12);
        T.Close((1.1 + 1.5 + 0.5) / 3, s.Ratio, 1e-12);
        var m = s.ToMetrics();
        Assert.Equal(-0.5, m["loss/policy_avg"], 12);
        Assert.True(m.ContainsKey("policy/clipfrac_avg") && m.ContainsKey("policy/approxkl_avg") && m.ContainsKey("val/ratio") && m.ContainsKey("val/ratio_var"));
    }

    [Fact]
    public void Hand_example_dual_clip()
    {
        using var scope = Torch.NewScope();
        // A = −1, ρ = 5: standard loss max(5, 1.2) = 5; dual clip c = 3 caps it at 3. A = +1 is untouched by dual clip.
        var ratio = T.D([5.0, 5.0]);
        var adv = T.D([-1.0, 1.0]);
        T.Close(new[] { 5.0, -1.2 }, T.A(Ppo.ClippedSurrogate(ratio, adv, 0.2, 0.2)), 1e-12);
        T.Close(new[] { 3.0, -1.2 }, T.A(Ppo.ClippedSurrogate(ratio, adv, 0.2, 0.2, dualClip: 3.0)), 1e-12);
    }

    [Fact]
    public void Hand_example_value_loss()
    {
        using var scope = Torch.NewScope();
        // t0: v = 0.1, v_old = 0.5 → v_clip = 0.3; (0.1−0)² = 0.01 < (0.3−0)² = 0.09 → 0.09 (clipped).
        // t1: v = 2 = v_old, ret = 3 → 1. vf = ½·mean(0.09, 1) = 0.2725; t2 masked.
        var (loss, s) = Ppo.ValueLoss(T.D([0.1, 2.0, 9.0], 1, 3), T.D([0.5, 2.0, 0.0], 1, 3), T.D([0.0, 3.0, 0.0], 1, 3),
            T.B(new[,] { { true, true, false } }), 0.2);
        T.Close(0.2725, loss.Item(), 1e-12);
        T.Close(0.5, s.ClipFrac, 1e-12);
        Assert.Equal(0.2725, s.ToMetrics()["loss/value_avg"], 12);
    }

    [Fact]
    public void Clipped_objective_equals_unclipped_when_ratios_are_inside_the_clip_range() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var ratio = Torch.Rand([c.B, c.T], g, ScalarType.Float64) * 0.38 + 0.81;    // (0.81, 1.19) ⊂ 1 ± 0.2
        var lp = old + ratio.Log();
        var adv = T.Randn(g, c.B, c.T);
        var mask = T.RowMask(g, c.B, c.T);
        var (loss, s) = Ppo.PolicyLoss(lp, old, adv, mask, 0.2, null);
        T.Close(Masked.Mean(-adv * ratio, mask).Item(), loss.Item(), 1e-10);
        Assert.Equal(0.0, s.ClipFrac);
    });

    [Fact]
    public void Gradient_is_zero_exactly_where_the_clip_is_active() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var lp = (old + T.Randn(g, c.B, c.T) * 0.4).RequiresGrad_();
        var adv = T.Randn(g, c.B, c.T);
        var mask = T.RowMask(g, c.B, c.T);
        var (loss, _) = Ppo.PolicyLoss(lp, old, adv, mask, 0.2, null);
        var grad = T.A(Autograd.Grad([loss], [lp])[0]!);
        var r = T.A((lp.Detach() - old).Exp());
        var a = T.A(adv);
        var m = T.AB(mask);
        var n = m.Count(x => x);
        for (var i = 0; i < r.Length; i++)
        {
            var clipActive = (a[i] > 0 && r[i] > 1.2) || (a[i] < 0 && r[i] < 0.8);
            // d/dlp (−A ρ)/n = −A ρ / n where the unclipped term is the max; 0 where the clip is active or masked.
            var expected = !m[i] || clipActive ? 0.0 : -a[i] * r[i] / n;
            T.Close(expected, grad[i], 1e-10, $"grad[{i}] (clip active: {clipActive})");
        }
    });

    /// <summary>TRL PPOv2's micro-batch loss written with plain loops.</summary>
    private static (double Pg, double Vf, double ClipFrac, double VfClipFrac) Loop(double[] lp, double[] old, double[] adv, bool[] m,
        double[] v, double[] vOld, double[] ret, bool[] vm, double eps, double epsV)
    {
        double pg = 0, n = 0, cf = 0, vf = 0, nv = 0, vcf = 0;
        for (var i = 0; i < lp.Length; i++)
        {
            if (m[i])
            {
                var rho = Math.Exp(lp[i] - old[i]);
                var l1 = -adv[i] * rho;
                var l2 = -adv[i] * Math.Clamp(rho, 1 - eps, 1 + eps);
                pg += Math.Max(l1, l2);
                cf += l2 > l1 ? 1 : 0;
                n++;
            }
            if (vm[i])
            {
                var vc = Math.Clamp(v[i], vOld[i] - epsV, vOld[i] + epsV);
                var e1 = (v[i] - ret[i]) * (v[i] - ret[i]);
                var e2 = (vc - ret[i]) * (vc - ret[i]);
                vf += Math.Max(e1, e2);
                vcf += e2 > e1 ? 1 : 0;
                nv++;
            }
        }
        return (pg / n, 0.5 * vf / nv, cf / n, vcf / nv);
    }

    [Fact]
    public void Loss_matches_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var lp = old + T.Randn(g, c.B, c.T) * 0.3;
        var adv = T.Randn(g, c.B, c.T);
        var len = Torch.Randint(0, c.T, [c.B], g);
        var mask = Masking.ResponseMask(len, c.T);
        var vmask = Masking.ResponseMask(len, c.T, offset: 1);
        var vOld = T.Randn(g, c.B, c.T);
        var v = vOld + T.Randn(g, c.B, c.T) * 0.3;
        var ret = T.Randn(g, c.B, c.T);
        var (loss, s) = Ppo.Loss(lp, old, adv, mask, v, vOld, ret, vmask, 0.2, 0.2, 0.1);
        var e = Loop(T.A(lp), T.A(old), T.A(adv), T.AB(mask), T.A(v), T.A(vOld), T.A(ret), T.AB(vmask), 0.2, 0.2);
        T.Close(e.Pg + 0.1 * e.Vf, loss.Item(), 1e-10, "loss");
        T.Close(e.ClipFrac, s.Policy.ClipFrac, 1e-12, "clipfrac");
        T.Close(e.Vf, s.Value.Loss, 1e-10, "vf");
        T.Close(e.VfClipFrac, s.Value.ClipFrac, 1e-12, "vf clipfrac");
    });

    [Fact]
    public void Loss_does_not_depend_on_values_at_masked_positions() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var old = T.Randn(g, c.B, c.T);
        var lp = old + T.Randn(g, c.B, c.T) * 0.3;
        var adv = T.Randn(g, c.B, c.T);
        var mask = T.RowMask(g, c.B, c.T);
        var (l1, _) = Ppo.PolicyLoss(lp, old, adv, mask, 0.2, null);
        var junk = Torch.Where(mask, lp, 1e4);   // exp(1e4) would overflow if it leaked
        var (l2, s2) = Ppo.PolicyLoss(junk, Torch.Where(mask, old, -1e4), Torch.Where(mask, adv, double.NaN), mask, 0.2, null);
        T.Close(l1.Item(), l2.Item(), 1e-12);
        Assert.True(double.IsFinite(s2.ApproxKl) && double.IsFinite(s2.Ratio));
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(21);
        var old = T.Randn(g, 2, 4);
        var adv = T.Randn(g, 2, 4);
        var mask = T.RowMask(g, 2, 4);
        var vOld = T.Randn(g, 2, 4);
        var ret = T.Randn(g, 2, 4);
        GradCheck.Check(x => Ppo.Loss(x[0], old, adv, mask, x[1], vOld, ret, mask, 0.2, 0.2, 0.1, dualClip: 3.0).Loss,
            [old + T.Randn(g, 2, 4) * 0.3, vOld + T.Randn(g, 2, 4) * 0.3]);
        // Dual clip's branch: large ratios with negative advantages.
        var negAdv = -adv.Abs();
        GradCheck.Check(x => Ppo.PolicyLoss(x[0], old, negAdv, mask, 0.2, dualClip: 1.5).Loss, [old + T.Randn(g, 2, 4)]);
    }

    [Fact]
    public void Advantages_whiten_gae_over_response_tokens()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(4);
        var r = T.Randn(g, 3, 5);
        var v = T.Randn(g, 3, 5);
        var len = T.L([1, 4, 2]);
        var mask = Masking.ResponseMask(len, 5);
        var res = Ppo.Advantages(r, v, mask, Masking.ResponseMask(len, 5, 1), 0.99, 0.9, whitenRewards: false);
        var gae = Advantages.Gae.Compute(r, v, 0.99, 0.9);
        Assert.True(res.Returns.AllClose(gae.Returns, 1e-12, 1e-12));
        Assert.True(res.Advantages.AllClose(Masked.Whiten(gae.Advantages, mask), 1e-12, 1e-12));
        T.Close(0, Masked.Mean(res.Advantages, mask).Item(), 1e-10);
        Assert.Equal(0.0, T.A(Masked.Select(res.Advantages, mask.LogicalNot())).Select(Math.Abs).Max());
    }

    [Fact]
    public void Stats_average_over_micro_batches_gives_ratio_variance()
    {
        var a = new PpoStats(new PolicyLossStats(0.1, 0.2, 0.3, 1.0, 0), new ValueLossStats(0.5, 0.1), 2.0);
        var b = new PpoStats(new PolicyLossStats(0.3, 0.4, 0.5, 1.2, 0), new ValueLossStats(0.7, 0.3), 4.0);
        var m = PpoStats.Average([a, b]).ToMetrics();
        T.Close(1.1, m["val/ratio"], 1e-12);
        T.Close(0.02, m["val/ratio_var"], 1e-12);
        T.Close(3.0, m["policy/entropy_avg"], 1e-12);
        T.Close(0.6, m["loss/value_avg"], 1e-12);
        T.Close(0.2, m["policy/approxkl_avg"], 1e-12);
    }
}
