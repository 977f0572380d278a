using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class RolloutBatchTests
{
    private static RolloutBatch Example()
    {
        // B = 2, ctx = 2, T = 4; stop = 2, pad = 0. Row 0 stops at t = 1; row 1 never stops.
        return RolloutBatch.Create(
            T.L([0, 5, 6, 7], 2, 2),
            T.L([4, 2, 9, 9, 3, 3, 3, 3], 2, 4),
            T.D([-0.5, -0.25, -3, -3, -1, -1, -1, -1], 2, 4),
            T.D([-1.0, -0.25, -2, -2, -1, -1.5, -1, -1], 2, 4),
            T.D([1, 2, 3, 4, 5, 6, 7, 8], 2, 4),
            T.D([1.0, 0.5]),
            [0, 0], [3, 4], stopTokenId: 2, padTokenId: 0);
    }

    [Fact]
    public void Create_truncates_and_derives_the_views()
    {
        using var scope = Torch.NewScope();
        var b = Example();
        Assert.Equal(new long[] { 4, 2, 0, 0, 3, 3, 3, 3 }, T.AL(b.Responses));
        Assert.Equal(new long[] { 1, 3 }, T.AL(b.SequenceLengths));
        Assert.Equal(new[] { true, true, false, false, true, true, true, true }, T.AB(b.ResponseMask()));
        Assert.Equal(new[] { true, true, true, false, true, true, true, true }, T.AB(b.ValueMask()));
        Assert.Equal(new long[] { 2, 3 }, T.AL(b.EndIndex()));
        Assert.Equal(new[] { true, false }, T.AB(b.ContainsStop()));
        Assert.Equal(new[] { -0.5, -0.25, 1, 1, -1, -1, -1, -1 }, T.A(b.Logprobs));
        Assert.Equal(new[] { 1.0, 2, 3, 0, 5, 6, 7, 8 }, T.A(b.Values!));
        Assert.Equal(new long[] { 0, 5, 4, 2, 0, 0, 6, 7, 3, 3, 3, 3 }, T.AL(b.QueryResponses()));
        T.Close(new[] { 0.5, 0, 0, 0, 0, 0.5, 0, 0 }, T.A(b.Kl()), 1e-12);
        Assert.Equal(new long[] { 2, 1 }, b.Staleness(5));
        var r = b.Rows([1]);
        Assert.Equal(new long[] { 3 }, T.AL(r.SequenceLengths));
        Assert.Equal(new long[] { 4 }, r.PolicyVersion);
    }

    [Fact]
    public void Rollout_stats_hand_example()
    {
        using var scope = Torch.NewScope();
        var s = RolloutStats.Compute(Example(), klCoef: 0.1, KlEstimator.K1);
        // KL sums 0.5 and 0.5 → 0.5; entropy −Σ lp over response tokens: 0.75 and 4 → 2.375.
        T.Close(0.5, s.Kl, 1e-12);
        T.Close(2.375, s.Entropy, 1e-12);
        T.Close(-0.05, s.NonScoreReward, 1e-12);
        T.Close(0.75, s.Scores, 1e-12);
        T.Close(0.7, s.RlhfReward, 1e-12);
        T.Close(1, s.NumEosTokens, 1e-12);
        var m = s.ToMetrics();
        foreach (var k in new[] { "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward", "objective/scores", "val/num_eos_tokens" })
            Assert.True(m.ContainsKey(k), k);
    }

    [Fact]
    public void Create_rejects_mismatched_shapes()
    {
        using var scope = Torch.NewScope();
        Assert.Throws<ArgumentException>(() => RolloutBatch.Create(T.L([0, 5], 1, 2), T.L([4, 2], 1, 2), T.D([0.0], 1, 1), T.D([0.0, 0], 1, 2),
            null, T.D([1.0]), [0], [0], 2, 0));
        Assert.Throws<ArgumentException>(() => RolloutBatch.Create(T.L([0, 5], 1, 2), T.L([4, 2], 1, 2), T.D([0.0, 0], 1, 2), T.D([0.0, 0], 1, 2),
            null, T.D([1.0]), [0, 1], [0], 2, 0));
    }
}

/// <summary>Runs alone: <see cref="Torch.LiveTensors"/> counts every handle in the process.</summary>
[CollectionDefinition("Memory", DisableParallelization = true)]
public class MemoryCollection;

[Collection("Memory")]
public class MemoryTests
{
    [Fact]
    public void Losses_do_not_leak_tensors_over_a_thousand_calls()
    {
        using var outer = Torch.NewScope();
        var g = new Generator(1);
        var old = T.Randn(g, 4, 6);
        var lp = (old + T.Randn(g, 4, 6) * 0.1).RequiresGrad_();
        var adv = T.Randn(g, 4, 6);
        var mask = T.RowMask(g, 4, 6);
        var v = T.Randn(g, 4, 6).RequiresGrad_();
        var ret = T.Randn(g, 4, 6);
        var seqAdv = T.Randn(g, 4);
        int[] ids = [0, 0, 1, 1];
        // Warm up once (lazy statics), then count.
        RunAll();
        // Let finalizers of other tests' stray handles run now rather than during the count.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = Torch.LiveTensors;
        for (var i = 0; i < 1000; i++) RunAll();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(before, Torch.LiveTensors);

        void RunAll()
        {
            using var scope = Torch.NewScope();
            var (l, _) = Ppo.Loss(lp, old, adv, mask, v, old, ret, mask, 0.2, 0.2, 0.1);
            l.Backward();
            Grpo.Loss(lp, old, Grpo.Advantages(seqAdv, ids, GroupScaling.Group), mask, old, 0.2, 0.2, 0.04, LossAggregation.Dapo);
            Rloo.Loss(lp, old, Rloo.Advantages(seqAdv, ids, normalize: false), mask, 0.2, 0.2);
            Dpo.OnlineLoss(lp, old, mask, Dpo.SelectPairs(seqAdv, ids), 0.1, DpoLossType.Sigmoid);
            ImportanceSampling.Weights(lp, old, mask, ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Mask, 3.0, 0.1);
            Advantages.Gae.Compute(adv, ret, 1.0, 0.95);
            lp.ZeroGrad();
            v.ZeroGrad();
        }
    }
}
