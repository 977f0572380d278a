using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>What one unit of an objective's terms is: a response token, a whole sequence (one per row), or a preference pair.</summary>
public enum ObjectiveUnit
{
    /// <summary>Terms [B, T]: one per response token of each row.</summary>
    Token,
    /// <summary>Terms [N, 1]: one per sequence (RLOO's sequence ratio, best-of-K's NLL).</summary>
    Sequence,
    /// <summary>Terms [P, 1]: one per (chosen, rejected) pair (DPO).</summary>
    Pair,
}

/// <summary>
/// The per-unit terms of a loss before reduction (rlax/optax style): the policy-gradient terms an off-policy correction
/// multiplies, optional penalty terms it leaves alone (GRPO's β·k3, as TRL adds the KL after the importance weight), their mask,
/// the aggregation that reduces them, an auxiliary scalar added after reduction (PPO's <c>vf_coef · vf</c>) and the stats as tensors.
/// </summary>
/// <param name="Policy">Policy terms, [B, T] (token units) or [N, 1].</param>
/// <param name="Penalty">Penalty terms of the same shape, or null.</param>
/// <param name="Mask">Active units, same shape.</param>
/// <param name="Unit">What a unit is.</param>
/// <param name="Aggregation">How the terms reduce to a scalar.</param>
/// <param name="Stats">The objective's own statistics, as tensors.</param>
/// <param name="Pairs">For pair units: which batch rows form each pair (to weight a pair by both of its sequences).</param>
/// <param name="Auxiliary">A scalar added to the reduced loss, or null.</param>
/// <param name="MaxCompletionLength">Dr. GRPO's max_completion_length; null = the terms' width.</param>
public sealed record ObjectiveTerms(
    Tensor Policy,
    Tensor? Penalty,
    Tensor Mask,
    ObjectiveUnit Unit,
    LossAggregation Aggregation,
    TensorStats Stats,
    PreferencePairs? Pairs = null,
    Tensor? Auxiliary = null,
    long? MaxCompletionLength = null);

/// <summary>
/// A rollout batch made ready for an objective: the rows to train on (best-of-K keeps the winners; online DPO orders each pair's
/// chosen row before its rejected row) with the advantages and returns computed once, before any update.
/// </summary>
/// <param name="Rollouts">The rows.</param>
/// <param name="Advantages">Advantages, [B] (sequence level) or [B, T], or null.</param>
/// <param name="Returns">Value targets [B, T] (PPO), or null.</param>
public sealed record ObjectiveBatch(RolloutBatch Rollouts, Tensor? Advantages = null, Tensor? Returns = null)
{
    /// <summary>The rows at <paramref name="rows"/> (a mini-batch), advantages and returns with them. Keep a group's rows together.</summary>
    public ObjectiveBatch Rows(long[] rows)
    {
        var rollouts = Rollouts.Rows(rows);        // owned by the caller's scope
        using var scope = Torch.NewScope();
        var idx = Torch.From(rows);
        Tensor? Pick(Tensor? t) => t?.IndexSelect(0, idx.To(t.Device)).MoveToOuter();
        return new ObjectiveBatch(rollouts, Pick(Advantages), Pick(Returns));
    }
}

/// <summary>
/// One RLHF algorithm as a pure function of data (what the training loop calls): <see cref="Prepare"/> once per rollout batch
/// (advantages, pair or winner selection; no gradients), then <see cref="Terms"/> per micro-batch from the fresh policy logprobs.
/// <see cref="Objective.Loss"/> composes them with the off-policy correction and the reduction.
/// </summary>
public interface IObjective
{
    /// <summary>Advantages, returns and row selection of a rollout batch, computed once before the update.</summary>
    ObjectiveBatch Prepare(RolloutBatch batch);

    /// <summary>
    /// The per-unit terms of one micro-batch. logprobs [B, T] (fresh, with grad), oldLogprobs [B, T] (the ratio's denominator:
    /// π_prox, or the generator's μ), values [B, T] (fresh, with grad; PPO) or null.
    /// </summary>
    ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values);
}

/// <summary>The composition every algorithm shares: terms → off-policy weights → aggregation → scalar loss and stats.</summary>
public static class Objective
{
    /// <summary>
    /// The loss of one micro-batch. The ratio's denominator is <paramref name="proximalLogprobs"/> (π_prox, the trainer's logprobs
    /// at the start of the step) when given, else the generator's logprobs (μ, <see cref="RolloutBatch.Logprobs"/>). With a
    /// <paramref name="correction"/> the policy terms are weighted by the corrected π_prox/μ (TRL <c>vllm_importance_sampling_*</c>;
    /// AReaL's decoupled PPO), which needs <paramref name="proximalLogprobs"/>. Stats stay tensors: read them once per step
    /// (<see cref="TensorStats.Mean"/> over micro-batches, then <see cref="TensorStats.ToMetrics"/>).
    /// logprobs [B, T] (with grad), values [B, T] or null, proximalLogprobs [B, T] or null → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, TensorStats Stats) Loss(IObjective objective, ObjectiveBatch batch, Tensor logprobs, Tensor? values = null,
        Tensor? proximalLogprobs = null, ImportanceCorrection? correction = null, double? globalActiveUnits = null)
    {
        var rollouts = batch.Rollouts;
        Guard.SameShape(logprobs, nameof(logprobs), rollouts.Logprobs, "the batch's logprobs");
        if (proximalLogprobs is not null) Guard.SameShape(proximalLogprobs, nameof(proximalLogprobs), rollouts.Logprobs, "the batch's logprobs");
        Guard.That(correction is null || proximalLogprobs is not null,
            "an importance-sampling correction weights by π_prox/μ: pass the trainer's proximal logprobs (computed at the start of the step)");
        using var scope = Torch.NewScope();
        var old = proximalLogprobs ?? rollouts.Logprobs;
        var terms = objective.Terms(batch, logprobs, old, values);
        Tensor? weights = null;
        TensorStats? isStats = null;
        if (correction is not null) (weights, isStats) = Weights(terms, rollouts, proximalLogprobs!, correction);
        var (loss, stats) = Reduce(terms, weights, globalActiveUnits);
        if (isStats is not null) stats.AddRange(isStats);
        return (loss.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Reduces terms: <c>Aggregation.Reduce(w · policy + penalty, mask) + auxiliary</c>, adding <c>loss</c> and the reduced policy
    /// part (<c>loss/policy_avg</c>) to the stats. Offline objectives (SFT, offline DPO) call this directly.
    /// terms, weights [same shape as the terms] or null → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, TensorStats Stats) Reduce(ObjectiveTerms terms, Tensor? weights = null, double? globalActiveUnits = null)
    {
        using var scope = Torch.NewScope();
        var policy = weights is null ? terms.Policy : ImportanceSampling.Apply(terms.Policy, weights);
        var policyLoss = Aggregation.Reduce(policy, terms.Mask, terms.Aggregation, terms.MaxCompletionLength, globalActiveUnits);
        var loss = terms.Penalty is null
            ? policyLoss
            : Aggregation.Reduce(policy + terms.Penalty, terms.Mask, terms.Aggregation, terms.MaxCompletionLength, globalActiveUnits);
        if (terms.Auxiliary is not null) loss = loss + terms.Auxiliary;
        var stats = new TensorStats().AddRange(terms.Stats).Add("loss/policy_avg", policyLoss).Add("loss", loss);
        return (loss.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// The off-policy weights of an objective's units. Token units take token- or sequence-level weights
    /// (<see cref="ImportanceSampling.Weights"/>); a sequence unit takes its row's sequence ratio, a pair unit the product of its
    /// two sequences' ratios (the pair's probability ratio). Sequence and pair units need the sequence level.
    /// proximal, behaviour [B, T] → (weights shaped like the terms, stats).
    /// </summary>
    public static (Tensor Weights, TensorStats Stats) Weights(ObjectiveTerms terms, RolloutBatch rollouts, Tensor proximalLogprobs, ImportanceCorrection correction)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = rollouts.ResponseMask();
        if (terms.Unit == ObjectiveUnit.Token)
        {
            var (w, s) = ImportanceSampling.Weights(proximalLogprobs, rollouts.Logprobs, mask, correction.Level, correction.Mode, correction.Cap, correction.Floor);
            return (w.MoveToOuter(), s.MoveToOuter());
        }
        Guard.That(correction.Level == ImportanceSamplingLevel.Sequence,
            $"this objective's loss is per {(terms.Unit == ObjectiveUnit.Pair ? "preference pair" : "sequence")}: importance sampling must use the sequence level, not {correction.Level}");
        var diff = Masked.Select(proximalLogprobs.Detach() - rollouts.Logprobs.Detach(), mask);
        var seq = diff.Sum(1);                                                              // [B]
        var logRatio = terms.Unit == ObjectiveUnit.Pair
            ? seq.IndexSelect(0, Torch.From(terms.Pairs!.Chosen).To(seq.Device)) + seq.IndexSelect(0, Torch.From(terms.Pairs.Rejected).To(seq.Device))
            : seq;
        Guard.That(logRatio.Size(0) == terms.Policy.Size(0), $"{logRatio.Size(0)} units of weights for {terms.Policy.Size(0)} rows of terms");
        var (uw, us) = ImportanceSampling.UnitWeights(logRatio, correction.Mode, correction.Cap, correction.Floor);
        var stats = ImportanceSampling.LogpDifferenceStats(diff, mask).AddRange(us);
        return (uw.MoveToOuter(), stats.MoveToOuter());
    }
}
