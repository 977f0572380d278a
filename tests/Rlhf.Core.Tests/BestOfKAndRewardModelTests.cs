using Rlhf.Core.Losses;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class BestOfKTests
{
    [Fact]
    public void Hand_example_selection_and_loss()
    {
        using var scope = Torch.NewScope();
        Assert.Equal(new long[] { 2, 1 }, BestOfK.Select(T.D([0.1, 0.9, 0.4, 0.9]), [0, 1, 0, 1]));
        // −mean(Σ m lp) = −mean(−3, −0.5) = 1.75.
        var (loss, s) = BestOfK.Loss(T.D([-1.0, -2.0, -0.5, -9.0], 2, 2), T.B(new[,] { { true, true }, { true, false } }));
        T.Close(1.75, loss.Item(), 1e-12);
        T.Close(-1.75, s.LogpsChosen, 1e-12);
    }

    [Fact]
    public void Selection_is_the_group_argmax_and_loss_matches_a_loop() => T.Check(T.GroupCases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var s = T.Randn(g, c.B);
        var a = T.A(s);
        var best = BestOfK.Select(s, c.Ids);
        foreach (var b in best)
            Assert.Equal(Enumerable.Range(0, c.B).Where(i => c.Ids[i] == c.Ids[b]).Max(i => a[i]), a[b]);
        var lp = T.Randn(g, c.B, 4);
        var mask = T.RowMask(g, c.B, 4);
        double total = 0;
        var l = T.A(lp);
        var m = T.AB(mask);
        for (var i = 0; i < l.Length; i++) if (m[i]) total += l[i];
        T.Close(-total / c.B, BestOfK.Loss(lp, mask).Loss.Item(), 1e-12);
    });

    [Fact]
    public void Gradient_matches_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(3);
        var mask = T.RowMask(g, 2, 3);
        GradCheck.Check(x => BestOfK.Loss(x[0], mask).Loss, [T.Randn(g, 2, 3)]);
    }
}

public class RewardModelTests
{
    [Fact]
    public void Hand_example()
    {
        using var scope = Torch.NewScope();
        // d = r_c − r_r − margin = [1 − 0 − 0.5, 0 − 1 − 0] = [0.5, −1].
        var rc = T.D([1.0, 0.0]);
        var rr = T.D([0.0, 1.0]);
        double Sp(double x) => Math.Log(1 + Math.Exp(-x));   // −logσ(x)
        var (loss, s) = RewardModelLoss.Compute(rc, rr, T.D([0.5, 0.0]));
        T.Close((Sp(0.5) + Sp(-1)) / 2, loss.Item(), 1e-12);
        T.Close(0.5, s.Accuracy, 1e-12);
        T.Close(0.0, s.Margin, 1e-12);
        // Centering: + 0.01 · mean((r_c + r_r)²) = 0.01 · 1.
        var (lc, _) = RewardModelLoss.Compute(rc, rr, null, 0.01);
        T.Close((Sp(1) + Sp(-1)) / 2 + 0.01, lc.Item(), 1e-12);
        Assert.True(s.ToMetrics().ContainsKey("accuracy") && s.ToMetrics().ContainsKey("margin"));
        // Equal rewards: log 2.
        T.Close(Math.Log(2), RewardModelLoss.Compute(T.D([3.0]), T.D([3.0])).Loss.Item(), 1e-12);
    }

    [Fact]
    public void Matches_a_scalar_loop_and_is_shift_invariant_without_centering() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var rc = T.Randn(g, c.B);
        var rr = T.Randn(g, c.B);
        var mg = Torch.Rand([c.B], g, ScalarType.Float64);
        double[] a = T.A(rc), b = T.A(rr), m = T.A(mg);
        double loss = 0, center = 0;
        for (var i = 0; i < c.B; i++)
        {
            loss += Math.Log(1 + Math.Exp(-(a[i] - b[i] - m[i])));
            center += (a[i] + b[i]) * (a[i] + b[i]);
        }
        T.Close(loss / c.B + 0.05 * center / c.B, RewardModelLoss.Compute(rc, rr, mg, 0.05).Loss.Item(), 1e-10);
        T.Close(RewardModelLoss.Compute(rc, rr, mg).Loss.Item(), RewardModelLoss.Compute(rc + 7.0, rr + 7.0, mg).Loss.Item(), 1e-10);
    });

    [Fact]
    public void Gradient_matches_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(8);
        var mg = Torch.Rand([3], g, ScalarType.Float64);
        GradCheck.Check(x => RewardModelLoss.Compute(x[0], x[1], mg, 0.01).Loss, [T.Randn(g, 3), T.Randn(g, 3)]);
    }
}
