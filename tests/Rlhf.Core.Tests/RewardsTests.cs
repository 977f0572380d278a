using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class RewardsTests
{
    [Fact]
    public void Missing_stop_penalty_both_variants()
    {
        using var scope = Torch.NewScope();
        var s = T.D([0.5, 2.0, -0.3]);
        var has = Torch.From(new[] { true, false, false });
        T.Close(new[] { 0.5, -1.0, -1.0 }, T.A(Rewards.MissingStopPenalty(s, has, -1.0, MissingStopPenaltyMode.Replace)));
        T.Close(new[] { 0.5, 1.0, -1.3 }, T.A(Rewards.MissingStopPenalty(s, has, 1.0, MissingStopPenaltyMode.Subtract)));
    }

    [Fact]
    public void Token_rewards_hand_example()
    {
        using var scope = Torch.NewScope();
        // seq_len = [1, 3] with T = 4: ends at 2 (seq_len+1 fits) and 3 (seq_len+1 = T does not).
        var kl = T.D([0.2, -0.4, 0, 0,
                      0.1, 0.1, 0.1, 0.1], 2, 4);
        var end = Masking.EndIndex(T.L([1, 3]), 4);
        var (r, ns) = Rewards.TokenRewards(kl, T.D([1.0, 2.0]), end, 0.5);
        T.Close(new[] { -0.1, 0.2, 0, 0, -0.05, -0.05, -0.05, -0.05 }, T.A(ns), 1e-12);
        T.Close(new[] { -0.1, 0.2, 1.0, 0, -0.05, -0.05, -0.05, 1.95 }, T.A(r), 1e-12);
    }

    [Fact]
    public void Token_rewards_sum_to_score_plus_non_score_reward() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var kl = T.Randn(g, c.B, c.T);
        var scores = T.Randn(g, c.B);
        var end = Torch.Randint(0, c.T, [c.B], g);
        var (r, ns) = Rewards.TokenRewards(kl, scores, end, 0.05);
        Assert.True(r.Sum(1).AllClose(scores + ns.Sum(1), 1e-12, 1e-12));
        Assert.True(ns.AllClose(kl * -0.05, 1e-12, 1e-12));
    });
}
