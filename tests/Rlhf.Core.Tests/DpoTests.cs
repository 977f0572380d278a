using FsCheck.Fluent;
using Rlhf.Core.Losses;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class DpoTests
{
    private static double Loss1(double z, double beta = 0.1, DpoLossType type = DpoLossType.Sigmoid, double smoothing = 0)
    {
        using var scope = Torch.NewScope();
        return Dpo.PairLoss(T.D([z]), beta, type, smoothing).Item();
    }

    [Fact]
    public void Sigmoid_loss_is_log_2_at_zero_decreases_in_z_and_swapping_maps_z_to_minus_z()
    {
        T.Close(Math.Log(2), Loss1(0), 1e-15);
        var pairs = Arb.From(from a in Gen.Choose(-2000, 2000) from b in Gen.Choose(-2000, 2000) from beta in Gen.Choose(1, 100)
                             select (Z1: a / 100.0, Z2: b / 100.0, Beta: beta / 100.0));
        T.Check(pairs, p =>
        {
            using var scope = Torch.NewScope();
            var beta = p.Beta;
            var (lo, hi) = p.Z1 < p.Z2 ? (p.Z1, p.Z2) : (p.Z2, p.Z1);
            if (lo < hi) Assert.True(Loss1(lo, beta) > Loss1(hi, beta), $"loss must decrease: L({lo}) vs L({hi})");
            // Swapping chosen and rejected: z = (L_c − L_r) − (R_c − R_r) becomes −z.
            var g = new Generator((ulong)(p.Z1 * 100 + 5000));
            var lc = T.Randn(g, 3); var lr = T.Randn(g, 3); var rc = T.Randn(g, 3); var rr = T.Randn(g, 3);
            Assert.True(Dpo.Logits(lr, lc, rr, rc).AllClose(-Dpo.Logits(lc, lr, rc, rr), 1e-12, 1e-12));
            var (l1, s1) = Dpo.Loss(lc, lr, rc, rr, beta, DpoLossType.Sigmoid, 0);
            var (l2, s2) = Dpo.Loss(lr, lc, rr, rc, beta, DpoLossType.Sigmoid, 0);
            var z = Dpo.Logits(lc, lr, rc, rr);
            T.Close((-(-z * p.Beta).LogSigmoid()).Mean().Item(), l2.Item(), 1e-12);
            T.Close(s1.Margins, -s2.Margins, 1e-12);
        });
    }

    [Fact]
    public void Hand_example_losses()
    {
        // z = 2, β = 0.1: sigmoid −logσ(0.2); with smoothing 0.1: −0.9 logσ(0.2) − 0.1 logσ(−0.2); ipo (2 − 5)² = 9; hinge 1 − 0.2 = 0.8.
        double LogSig(double x) => -Math.Log(1 + Math.Exp(-x));
        T.Close(-LogSig(0.2), Loss1(2), 1e-15);
        T.Close(-0.9 * LogSig(0.2) - 0.1 * LogSig(-0.2), Loss1(2, smoothing: 0.1), 1e-15);
        T.Close(9.0, Loss1(2, type: DpoLossType.Ipo), 1e-12);
        T.Close(0.8, Loss1(2, type: DpoLossType.Hinge), 1e-12);
        T.Close(0.0, Loss1(20, type: DpoLossType.Hinge), 1e-12);
    }

    [Fact]
    public void Hand_example_stats()
    {
        using var scope = Torch.NewScope();
        // Pair 0: L_c − R_c = 1, L_r − R_r = −1 (β·: 0.1, −0.1, correct); pair 1: 0 and 0.5 (0, 0.05, wrong).
        var (_, s) = Dpo.Loss(T.D([-1.0, -2.0]), T.D([-3.0, -1.5]), T.D([-2.0, -2.0]), T.D([-2.0, -2.0]), 0.1, DpoLossType.Sigmoid, 0);
        T.Close(0.05, s.RewardsChosen, 1e-12);
        T.Close(-0.025, s.RewardsRejected, 1e-12);
        T.Close(0.5, s.Accuracies, 1e-12);
        T.Close(0.075, s.Margins, 1e-12);
        T.Close(-1.5, s.LogpsChosen, 1e-12);
        T.Close(-2.25, s.LogpsRejected, 1e-12);
        var m = s.ToMetrics();
        foreach (var k in new[] { "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected" })
            Assert.True(m.ContainsKey(k), k);
    }

    [Fact]
    public void Pair_selection_k2_and_k_above_2()
    {
        using var scope = Torch.NewScope();
        // k = 2, strided layout (row j·P + i): prompt 0 rows {0, 2}, prompt 1 rows {1, 3}; a tie picks the first as chosen.
        var p = Dpo.SelectPairs(T.D([0.2, 0.5, 0.9, 0.5]), [0, 1, 0, 1]);
        Assert.Equal(new long[] { 2, 1 }, p.Chosen);
        Assert.Equal(new long[] { 0, 3 }, p.Rejected);
        // k = 4: argmax and argmin; all equal → the first and a different row.
        var q = Dpo.SelectPairs(T.D([0.1, 0.7, -0.3, 0.7, 1, 1, 1, 1]), [0, 0, 0, 0, 1, 1, 1, 1]);
        Assert.Equal(new long[] { 1, 4 }, q.Chosen);
        Assert.Equal(new long[] { 2, 5 }, q.Rejected);
        // Margins: 0.9 − 0.2 and 0.5 − 0.5 → mean 0.35.
        T.Close(0.35, Dpo.ScoresMargin(T.D([0.2, 0.5, 0.9, 0.5]), p).Item(), 1e-12);
    }

    [Fact]
    public void Selected_pairs_are_argmax_and_argmin_of_their_group() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var s = T.Randn(c.Gen(), c.B);
        var a = T.A(s);
        var p = Dpo.SelectPairs(s, c.Ids);
        Assert.Equal(c.G, p.Count);
        for (var k = 0; k < p.Count; k++)
        {
            var grp = c.Ids[p.Chosen[k]];
            Assert.Equal(grp, c.Ids[p.Rejected[k]]);
            Assert.NotEqual(p.Chosen[k], p.Rejected[k]);
            var rows = Enumerable.Range(0, c.B).Where(i => c.Ids[i] == grp).ToArray();
            Assert.Equal(rows.Max(i => a[i]), a[p.Chosen[k]]);
            Assert.Equal(rows.Min(i => a[i]), a[p.Rejected[k]]);
        }
        Assert.True(Dpo.ScoresMargin(s, p).Item() >= 0);
    });

    [Fact]
    public void Online_and_offline_losses_match_a_scalar_loop() => T.Check(T.Cases(minB: 2), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var lp = T.Randn(g, c.B, c.T);
        var rf = T.Randn(g, c.B, c.T);
        var mask = T.RowMask(g, c.B, c.T);
        var pairs = new Losses.PreferencePairs([0], [1]);
        double[] l = T.A(lp), r = T.A(rf);
        bool[] m = T.AB(mask);
        double Seq(double[] x, int row, bool avg)
        {
            double s = 0, n = 0;
            for (var t = 0; t < c.T; t++) if (m[row * c.T + t]) { s += x[row * c.T + t]; n++; }
            return avg ? s / n : s;
        }
        foreach (var type in Enum.GetValues<DpoLossType>())
        {
            foreach (var offline in new[] { false, true })
            {
                // Label smoothing (cDPO) is an offline-DPO option (TRL DPOConfig); online DPO has none.
                var sm = offline && type == DpoLossType.Sigmoid ? 0.2 : 0;
                var avg = offline && type == DpoLossType.Ipo;
                var z = Seq(l, 0, avg) - Seq(l, 1, avg) - (Seq(r, 0, avg) - Seq(r, 1, avg));
                double LogSig(double x) => -Math.Log(1 + Math.Exp(-x));
                var expected = type switch
                {
                    DpoLossType.Sigmoid => -(1 - sm) * LogSig(0.3 * z) - sm * LogSig(-0.3 * z),
                    DpoLossType.Ipo => Math.Pow(z - 1 / 0.6, 2),
                    _ => Math.Max(0, 1 - 0.3 * z),
                };
                var got = offline
                    ? Dpo.OfflineLoss(lp.Narrow(0, 0, 1), rf.Narrow(0, 0, 1), mask.Narrow(0, 0, 1), lp.Narrow(0, 1, 1), rf.Narrow(0, 1, 1), mask.Narrow(0, 1, 1), 0.3, type, sm).Loss
                    : Dpo.OnlineLoss(lp, rf, mask, pairs, 0.3, type).Loss;
                T.Close(expected, got.Item(), 1e-10, $"{type} offline={offline}");
            }
        }
    });

    [Fact]
    public void Gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(17);
        var rf = T.Randn(g, 4, 3);
        var mask = T.RowMask(g, 4, 3);
        var pairs = new Losses.PreferencePairs([0, 3], [1, 2]);
        foreach (var type in Enum.GetValues<DpoLossType>())
        {
            var sm = type == DpoLossType.Sigmoid ? 0.1 : 0;
            // Hinge has a kink at βz = 1; random logps keep away from it almost surely.
            GradCheck.Check(x => Dpo.OnlineLoss(x[0], rf, mask, pairs, 0.5, type).Loss, [T.Randn(g, 4, 3)]);
            GradCheck.Check(x => Dpo.OfflineLoss(x[0], rf.Narrow(0, 0, 2), mask.Narrow(0, 0, 2), x[1], rf.Narrow(0, 2, 2), mask.Narrow(0, 2, 2), 0.5, type, sm).Loss,
                [T.Randn(g, 2, 3), T.Randn(g, 2, 3)]);
        }
    }
}
