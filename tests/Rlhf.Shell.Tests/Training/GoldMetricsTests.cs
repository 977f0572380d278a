using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Tests.Training;

/// <summary>Gold evaluation: mean gold reward, exact match, and the win-rate with ties counting half.</summary>
public class GoldMetricsTests
{
    [Fact]
    public void Win_rate_by_hand() =>
        // win, tie, loss, win → (1 + 0.5 + 0 + 1) / 4
        Assert.Equal(0.625, GoldMetrics.WinRate([0.9, 0.5, 0.1, 1.0], [0.4, 0.5, 0.2, 0.0]));

    [Fact]
    public void Win_rate_is_half_against_itself_and_complementary() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(0, 4).Select(i => i / 4.0).ArrayOf()), Arb.From(Gen.Choose(0, 4).Select(i => i / 4.0).ArrayOf()), (a, b) =>
            Prop.When(a.Length > 0, () =>
            {
                var n = Math.Min(a.Length, b.Length);
                Assert.Equal(0.5, GoldMetrics.WinRate(a, a));
                if (n > 0) Assert.Equal(1.0, GoldMetrics.WinRate(a[..n], b[..n]) + GoldMetrics.WinRate(b[..n], a[..n]), 12);
            })));

    [Fact]
    public void Evaluation_averages_gold_and_exact_match()
    {
        var task = new ReverseTask(1, 6);
        RewardSample S(string p, string c, bool stop) => new(p, [], c, [], stop);
        var e = GoldMetrics.Evaluate(task, [S("12=", "21", true), S("12=", "21", false), S("345=", "543", true), S("345=", "5", true)]);
        // gold: 1.0, 0.8, 1.0, 0.8·1/3 + 0.2; exact: 1, 0, 1, 0
        Assert.Equal((1.0 + 0.8 + 1.0 + 0.8 / 3 + 0.2) / 4, e.GoldReward, 12);
        Assert.Equal(0.5, e.ExactMatch);
        Assert.Equal(4, e.Count);
        Assert.Throws<ArgumentException>(() => GoldMetrics.WinRate([1.0], [1.0, 2.0]));
    }
}
