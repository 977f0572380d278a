using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// GRPO as TRL GRPOTrainer computes it: group-normalised sequence advantages, clipped token ratio (ε_low, ε_high), TRL's unclamped
/// k3 penalty weighted by β (outside the importance weight), reduced by the chosen <see cref="LossAggregation"/>.
/// </summary>
/// <param name="epsilonLow">Lower clip ε_low.</param>
/// <param name="epsilonHigh">Upper clip ε_high.</param>
/// <param name="beta">Weight β of the k3 term (0 = none).</param>
/// <param name="scaling">How group-centred rewards are scaled.</param>
/// <param name="aggregation">TRL <c>loss_type</c>.</param>
/// <param name="maxCompletionLength">Dr. GRPO's divisor; null = T.</param>
public sealed class GrpoObjective(double epsilonLow, double epsilonHigh, double beta, GroupScaling scaling, LossAggregation aggregation,
    long? maxCompletionLength = null) : IObjective
{
    /// <summary>ε_low.</summary>
    public double EpsilonLow { get; } = epsilonLow;
    /// <summary>ε_high.</summary>
    public double EpsilonHigh { get; } = epsilonHigh;
    /// <summary>β.</summary>
    public double Beta { get; } = beta;
    /// <summary>Advantage scaling.</summary>
    public GroupScaling Scaling { get; } = scaling;
    /// <summary>Aggregation.</summary>
    public LossAggregation Aggregation { get; } = aggregation;
    /// <summary>Dr. GRPO's max_completion_length, or null.</summary>
    public long? MaxCompletionLength { get; } = maxCompletionLength;

    /// <summary>Group advantages of the scores (TRL).</summary>
    public ObjectiveBatch Prepare(RolloutBatch batch)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        return new ObjectiveBatch(batch, Grpo.Advantages(batch.Scores, batch.GroupIds, Scaling).MoveToOuter());
    }

    /// <summary>Clipped token terms, β·k3 penalty terms, TRL's clip-ratio and KL stats.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        using var scope = Torch.NewScope();
        var b = batch.Rollouts;
        var mask = b.ResponseMask();
        var adv = batch.Advantages!;
        var policy = Grpo.PolicyTerms(logprobs, oldLogprobs, adv, EpsilonLow, EpsilonHigh);
        var penalty = Beta != 0 ? Grpo.KlTerms(logprobs, b.RefLogprobs, Beta) : null;
        var stats = Grpo.ClipStats(logprobs, oldLogprobs, adv.Unsqueeze(1), mask, EpsilonLow, EpsilonHigh, Beta != 0 ? b.RefLogprobs : null);
        return new ObjectiveTerms(policy.MoveToOuter(), penalty?.MoveToOuter(), mask.MoveToOuter(), ObjectiveUnit.Token, Aggregation, stats.MoveToOuter(),
            MaxCompletionLength: MaxCompletionLength);
    }
}
