using FsCheck.Fluent;
using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Objectives;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

/// <summary>The objective abstraction: terms + aggregation + off-policy weights compose the same way for every algorithm.</summary>
public class ObjectiveTests
{
    /// <summary>A random rollout batch: prompts of 2 tokens, responses of <paramref name="t"/> tokens that may stop early (stop 2, pad 0).</summary>
    private static RolloutBatch Batch(Generator g, int[] ids, int t)
    {
        var b = ids.Length;
        var responses = Torch.Randint(2, 8, [b, t], g);          // 2 is the stop token: some rows stop early
        var lp = -Torch.Rand([b, t], g, ScalarType.Float64) * 2 - 0.05;
        var rf = lp + T.Randn(g, b, t) * 0.2;
        return RolloutBatch.Create(Torch.Randint(3, 9, [b, 2], g), responses, lp, rf, T.Randn(g, b, t), T.Randn(g, b),
            ids, new long[b], stopTokenId: 2, padTokenId: 0);
    }

    private static IEnumerable<(string Name, IObjective Objective)> All()
    {
        yield return ("ppo", new PpoObjective(0.2, 0.2, 0.1, 1.0, 0.95, 0.05, KlEstimator.K1, whitenRewards: false));
        foreach (var agg in Enum.GetValues<LossAggregation>())
            yield return ($"grpo {agg}", new GrpoObjective(0.2, 0.28, 0.04, GroupScaling.Group, agg));
        yield return ("rloo", new RlooObjective(0.2, 0.2, 0.05, normalizeAdvantages: false));
        yield return ("reinforce++", new ReinforcePlusPlusObjective(0.2, 0.01, KlEstimator.K1, 1.0, baseline: true, (-10, 10), normalizeStd: true));
        yield return ("online dpo", new OnlineDpoObjective(0.1, DpoLossType.Sigmoid));
        yield return ("best-of-k", new BestOfKObjective());
    }

    private static readonly (ImportanceSamplingLevel, ImportanceSamplingMode)[] Corrections =
    [
        (ImportanceSamplingLevel.Token, ImportanceSamplingMode.Truncate), (ImportanceSamplingLevel.Token, ImportanceSamplingMode.Mask),
        (ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate), (ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Mask),
    ];

    private static bool TokenLevel(IObjective o) => o is PpoObjective or GrpoObjective or ReinforcePlusPlusObjective;

    [Fact]
    public void Importance_correction_with_all_ratios_one_is_the_identity_for_every_algorithm() => T.Check(T.GroupCases(maxG: 3, maxK: 3), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var batch = Batch(g, c.Ids, 4);
        foreach (var (name, objective) in All())
        {
            var prepared = objective.Prepare(batch);
            var rows = prepared.Rollouts;
            var lp = rows.Logprobs + T.Randn(g, rows.BatchSize, rows.ResponseLength) * 0.3;
            var values = T.Randn(g, rows.BatchSize, rows.ResponseLength);
            var (plain, _) = Objective.Loss(objective, prepared, lp, values);
            foreach (var (level, mode) in Corrections)
            {
                if (!TokenLevel(objective) && level == ImportanceSamplingLevel.Token) continue;
                var (corrected, stats) = Objective.Loss(objective, prepared, lp, values, rows.Logprobs.Clone(), new ImportanceCorrection(level, mode, 3.0, 0.5));
                T.Close(plain.Item(), corrected.Item(), 1e-12, $"{name} {level} {mode}");
                var m = stats.ToMetrics();
                Assert.Equal(1.0, m["sampling/importance_sampling_ratio/mean"]);
                Assert.Equal(0.0, m["sampling/sampling_logp_difference/max"]);
            }
        }
    }, maxTest: 25);

    [Fact]
    public void Objectives_equal_their_primitive_losses() => T.Check(T.GroupCases(maxG: 3, maxK: 3), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var batch = Batch(g, c.Ids, 5);
        var mask = batch.ResponseMask();
        var lp = batch.Logprobs + T.Randn(g, c.B, 5) * 0.3;
        var mu = batch.Logprobs;

        var ppo = new PpoObjective(0.2, 0.2, 0.1, 0.99, 0.95, 0.05, KlEstimator.K1, whitenRewards: true);
        var pp = ppo.Prepare(batch);
        var (rewards, _) = Rewards.TokenRewards(batch.Kl(), batch.Scores, batch.EndIndex(), 0.05);
        var adv = Ppo.Advantages(rewards, batch.Values!, mask, batch.ValueMask(), 0.99, 0.95, whitenRewards: true);
        Assert.True(pp.Advantages!.AllClose(adv.Advantages, 1e-12, 1e-12) && pp.Returns!.AllClose(adv.Returns, 1e-12, 1e-12));
        var v = T.Randn(g, c.B, 5);
        T.Close(Ppo.Loss(lp, mu, adv.Advantages, mask, v, batch.Values!, adv.Returns, batch.ValueMask(), 0.2, 0.2, 0.1).Loss.Item(),
            Objective.Loss(ppo, pp, lp, v).Loss.Item(), 1e-12, "ppo");

        foreach (var agg in Enum.GetValues<LossAggregation>())
        {
            var grpo = new GrpoObjective(0.2, 0.28, 0.04, GroupScaling.Batch, agg, maxCompletionLength: 7);
            var gp = grpo.Prepare(batch);
            Assert.True(gp.Advantages!.AllClose(GroupAdvantages.Grpo(batch.Scores, c.Ids, GroupScaling.Batch), 1e-12, 1e-12));
            T.Close(Grpo.Loss(lp, mu, gp.Advantages!, mask, batch.RefLogprobs, 0.2, 0.28, 0.04, agg, 7).Loss.Item(),
                Objective.Loss(grpo, gp, lp).Loss.Item(), 1e-12, $"grpo {agg}");
        }

        var rloo = new RlooObjective(0.2, 0.3, 0.05, normalizeAdvantages: true);
        var rp = rloo.Prepare(batch);
        var radv = Rloo.Advantages(Rloo.RlhfReward(batch.Scores, mu, batch.RefLogprobs, mask, 0.05), c.Ids, normalize: true);
        T.Close(Rloo.Loss(lp, mu, radv, mask, 0.2, 0.3).Loss.Item(), Objective.Loss(rloo, rp, lp).Loss.Item(), 1e-12, "rloo");

        var dpo = new OnlineDpoObjective(0.1, DpoLossType.Ipo);
        var dp = dpo.Prepare(batch);
        var pairs = Dpo.SelectPairs(batch.Scores, c.Ids);
        var dlp = T.Randn(g, dp.Rollouts.BatchSize, 5);
        var rows = pairs.Chosen.Zip(pairs.Rejected, (a, b) => new[] { a, b }).SelectMany(x => x).ToArray();
        var full = Torch.Zeros([c.B, 5], ScalarType.Float64).IndexCopy(0, Torch.From(rows), dlp);
        T.Close(Dpo.OnlineLoss(full, batch.RefLogprobs, mask, pairs, 0.1, DpoLossType.Ipo).Loss.Item(), Objective.Loss(dpo, dp, dlp).Loss.Item(), 1e-12, "online dpo");

        var bok = new BestOfKObjective();
        var bp = bok.Prepare(batch);
        var best = BestOfK.Select(batch.Scores, c.Ids);
        var blp = lp.IndexSelect(0, Torch.From(best));
        T.Close(BestOfK.Loss(blp, batch.Rows(best).ResponseMask()).Loss.Item(), Objective.Loss(bok, bp, blp).Loss.Item(), 1e-12, "best-of-k");
    }, maxTest: 25);

    /// <summary>Two rows of one group, two tokens each, no stop token; GRPO with β = 0, ε 0.2 / 0.28, scaling none (A = ±0.5).</summary>
    private static (RolloutBatch Batch, Tensor Proximal, Tensor Theta) DecoupledExample()
    {
        // μ (generator): row 0 [ln ½, ln ¼], row 1 [0, 0]; π_prox: all 0 → π_prox/μ = [2, 4] and [1, 1]; π_θ: row 0 [ln 1.1, 0].
        var mu = T.D([Math.Log(0.5), Math.Log(0.25), 0, 0], 2, 2);
        var batch = RolloutBatch.Create(T.L([5, 5, 5, 5], 2, 2), T.L([5, 5, 5, 5], 2, 2), mu, mu.Clone(), null, T.D([1.0, 0.0]),
            [0, 0], [0, 0], stopTokenId: 2, padTokenId: 0);
        return (batch, Torch.Zeros([2, 2], ScalarType.Float64), T.D([Math.Log(1.1), 0, 0, 0], 2, 2));
    }

    [Fact]
    public void Hand_example_decoupled_ppo_clips_against_the_proximal_policy_and_weights_by_proximal_over_behaviour()
    {
        using var scope = Torch.NewScope();
        var (batch, prox, theta) = DecoupledExample();
        var grpo = new GrpoObjective(0.2, 0.28, 0.0, GroupScaling.None, LossAggregation.Bnpo);
        var prepared = grpo.Prepare(batch);
        T.Close(new[] { 0.5, -0.5 }, T.A(prepared.Advantages!), 1e-12);
        // Against π_prox: ρ = [1.1, 1] (row 0, A = ½) → terms −0.55, −0.5; row 1: ρ = 1, A = −½ → 0.5, 0.5.
        // Mask mode, cap 3: weights [2, 0 (4 > 3)], [1, 1] → (−1.1 + 0 + 0.5 + 0.5)/4 = −0.025.
        var (masked, ms) = Objective.Loss(grpo, prepared, theta, null, prox, new ImportanceCorrection(ImportanceSamplingLevel.Token, ImportanceSamplingMode.Mask, 3.0, 0.0));
        T.Close(-0.025, masked.Item(), 1e-12);
        // Truncate: weights [2, 3], [1, 1] → (−1.1 − 1.5 + 1)/4 = −0.4.
        var (truncated, ts) = Objective.Loss(grpo, prepared, theta, null, prox, new ImportanceCorrection(ImportanceSamplingLevel.Token, ImportanceSamplingMode.Truncate, 3.0, 0.0));
        T.Close(-0.4, truncated.Item(), 1e-12);
        var m = ts.ToMetrics();
        T.Close(1.0, m["sampling/importance_sampling_ratio/min"], 1e-12);
        T.Close(1.75, m["sampling/importance_sampling_ratio/mean"], 1e-12);
        T.Close(3.0, m["sampling/importance_sampling_ratio/max"], 1e-12);
        T.Close(Math.Log(4), m["sampling/sampling_logp_difference/max"], 1e-12);
        T.Close(-0.4, m["loss"], 1e-12);
        T.Close(0.0, ms.ToMetrics()["sampling/importance_sampling_ratio/min"], 1e-12);
        // Without a proximal policy the ratio is taken against μ: ρ = [2.2, 4] → clipped at 1.28: −0.64, −0.64; row 1 as before.
        T.Close((-0.64 - 0.64 + 0.5 + 0.5) / 4, Objective.Loss(grpo, prepared, theta).Loss.Item(), 1e-12);
        // A correction needs the proximal logprobs.
        Assert.Throws<ArgumentException>(() => Objective.Loss(grpo, prepared, theta, null, null,
            new ImportanceCorrection(ImportanceSamplingLevel.Token, ImportanceSamplingMode.Mask, 3.0, 0.0)));
    }

    [Fact]
    public void Hand_example_pair_weight_is_the_product_of_the_two_sequence_ratios()
    {
        using var scope = Torch.NewScope();
        // Scores [1, 0]: row 0 chosen, row 1 rejected. π_prox/μ per sequence: exp(ln 2) = 2 for both → the pair's ratio 4.
        var mu = T.D([Math.Log(0.5), 0, 0, Math.Log(0.5)], 2, 2);
        var batch = RolloutBatch.Create(T.L([5, 5, 5, 5], 2, 2), T.L([5, 5, 5, 5], 2, 2), mu, mu - 0.1, null, T.D([1.0, 0.0]),
            [0, 0], [0, 0], stopTokenId: 2, padTokenId: 0);
        var dpo = new OnlineDpoObjective(0.1, DpoLossType.Sigmoid);
        var prepared = dpo.Prepare(batch);
        var prox = Torch.Zeros([2, 2], ScalarType.Float64);
        var theta = T.D([-0.3, -0.2, -0.4, -0.1], 2, 2);
        var plain = Objective.Loss(dpo, prepared, theta).Loss.Item();
        Tensor L(ImportanceSamplingMode mode, double cap) =>
            Objective.Loss(dpo, prepared, theta, null, prox, new ImportanceCorrection(ImportanceSamplingLevel.Sequence, mode, cap, 0.0)).Loss;
        T.Close(3 * plain, L(ImportanceSamplingMode.Truncate, 3).Item(), 1e-12);
        T.Close(4 * plain, L(ImportanceSamplingMode.Truncate, 5).Item(), 1e-12);
        T.Close(0.0, L(ImportanceSamplingMode.Mask, 3).Item(), 1e-12);
        // A per-pair loss has no token-level ratio.
        var e = Assert.Throws<ArgumentException>(() => Objective.Loss(dpo, prepared, theta, null, prox,
            new ImportanceCorrection(ImportanceSamplingLevel.Token, ImportanceSamplingMode.Truncate, 3, 0.0)));
        Assert.Contains("sequence level", e.Message);
    }

    [Fact]
    public void Dapo_with_one_sequence_equals_bnpo() => T.Check(T.Cases(maxB: 1), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        var terms = T.Randn(g, 1, c.T);
        var mask = T.RowMask(g, 1, c.T);
        T.Close(Aggregation.Reduce(terms, mask, LossAggregation.Bnpo).Item(), Aggregation.Reduce(terms, mask, LossAggregation.Dapo).Item(), 1e-12);
        T.Close(Aggregation.Reduce(terms, mask, LossAggregation.Bnpo).Item(), Aggregation.Reduce(terms, mask, LossAggregation.Grpo).Item(), 1e-12);
    });

    [Fact]
    public void Corrected_objective_gradients_match_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(31);
        var batch = Batch(g, [0, 0, 1, 1], 3);
        var prox = batch.Logprobs + T.Randn(g, 4, 3) * 0.4;
        var grpo = new GrpoObjective(0.2, 0.28, 0.04, GroupScaling.Group, LossAggregation.Dapo);
        var gp = grpo.Prepare(batch);
        var tokenTis = new ImportanceCorrection(ImportanceSamplingLevel.Token, ImportanceSamplingMode.Truncate, 1.5, 0.7);
        GradCheck.Check(x => Objective.Loss(grpo, gp, x[0], null, prox, tokenTis).Loss, [prox + T.Randn(g, 4, 3) * 0.1]);
        var rloo = new RlooObjective(0.2, 0.2, 0.05, normalizeAdvantages: false);
        var rp = rloo.Prepare(batch);
        var seqTis = new ImportanceCorrection(ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate, 1.5, 0.7);
        GradCheck.Check(x => Objective.Loss(rloo, rp, x[0], null, prox, seqTis).Loss, [prox + T.Randn(g, 4, 3) * 0.1]);
        var ppo = new PpoObjective(0.2, 0.2, 0.1, 1.0, 0.95, 0.05, KlEstimator.K3, whitenRewards: false);
        var pp = ppo.Prepare(batch);
        GradCheck.Check(x => Objective.Loss(ppo, pp, x[0], x[1], prox, tokenTis).Loss, [prox + T.Randn(g, 4, 3) * 0.1, T.Randn(g, 4, 3)]);
    }

    [Fact]
    public void Stats_are_tensors_named_as_trl_and_average_over_micro_batches()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(5);
        var batch = Batch(g, [0, 0, 1, 1], 3);
        var grpo = new GrpoObjective(0.2, 0.28, 0.04, GroupScaling.Group, LossAggregation.Dapo);
        var prepared = grpo.Prepare(batch);
        var parts = new[] { prepared.Rows([0, 1]), prepared.Rows([2, 3]) };
        var stats = parts.Select(p => Objective.Loss(grpo, p, p.Rollouts.Logprobs + 0.1, null, p.Rollouts.Logprobs.Clone(),
            new ImportanceCorrection(ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate, 3.0, 0.0)).Stats).ToArray();
        foreach (var key in new[] { "loss", "loss/policy_avg", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                     "sampling/importance_sampling_ratio/mean", "sampling/sampling_logp_difference/mean" })
            Assert.True(stats[0].Contains(key), key);
        var mean = TensorStats.Mean(stats).ToMetrics();
        var a = stats[0].ToMetrics();
        var b = stats[1].ToMetrics();
        foreach (var key in a.Keys) T.Close((a[key] + b[key]) / 2, mean[key], 1e-12, key);
        Assert.Throws<KeyNotFoundException>(() => stats[0]["policy/clipfrac_avg"]);
    }
}

/// <summary>The objective path leaves no tensor behind: every intermediate is disposed by its scope.</summary>
[Collection("Memory")]
public class ObjectiveMemoryTests
{
    [Fact]
    public void Objective_losses_do_not_leak_tensors()
    {
        using var outer = Torch.NewScope();
        var g = new Generator(3);
        var lp = -Torch.Rand([4, 5], g, ScalarType.Float64) - 0.1;
        var batch = RolloutBatch.Create(Torch.Randint(3, 9, [4, 2], g), Torch.Randint(2, 8, [4, 5], g), lp, lp + 0.1, T.Randn(g, 4, 5), T.Randn(g, 4),
            [0, 0, 1, 1], new long[4], stopTokenId: 2, padTokenId: 0);
        IObjective[] objectives =
        [
            new PpoObjective(0.2, 0.2, 0.1, 1.0, 0.95, 0.05, KlEstimator.K1, whitenRewards: false),
            new GrpoObjective(0.2, 0.28, 0.04, GroupScaling.Group, LossAggregation.Dapo),
            new RlooObjective(0.2, 0.2, 0.05, normalizeAdvantages: false),
        ];
        var prepared = objectives.Select(o => o.Prepare(batch)).ToArray();
        var theta = (lp + T.Randn(g, 4, 5) * 0.1).RequiresGrad_();
        var values = T.Randn(g, 4, 5).RequiresGrad_();
        var correction = new ImportanceCorrection(ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate, 3.0, 0.0);
        RunAll();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = Torch.LiveTensors;
        for (var i = 0; i < 200; i++) RunAll();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(before, Torch.LiveTensors);

        void RunAll()
        {
            using var scope = Torch.NewScope();
            var stats = new List<TensorStats>();
            for (var k = 0; k < objectives.Length; k++)
            {
                var (loss, s) = Objective.Loss(objectives[k], prepared[k], theta, values, lp, correction);
                loss.Backward();
                stats.Add(s);
            }
            Assert.NotEmpty(TensorStats.Mean(stats.Take(1).ToArray()).ToMetrics());
            theta.ZeroGrad();
            values.ZeroGrad();
        }
    }
}
