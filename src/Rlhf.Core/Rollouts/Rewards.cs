using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>How a response that never emitted the stop token is penalised (TRL changed this between versions).</summary>
public enum MissingStopPenaltyMode
{
    /// <summary>TRL v0.9.4 (<c>non_eos_penalty</c>, used by async_rlhf): the score is replaced by the penalty value (default −1).</summary>
    Replace,
    /// <summary>Current TRL (<c>missing_eos_penalty</c>): the penalty is subtracted from the score.</summary>
    Subtract,
}

/// <summary>Per-token rewards from KL and scores, and the missing-stop-token penalty (TRL PPOv2 / RLOO / online DPO, OpenRLHF).</summary>
public static class Rewards
{
    /// <summary>
    /// Applies the missing-stop penalty. <see cref="MissingStopPenaltyMode.Replace"/>: <c>score = contains_stop ? score : penalty</c>
    /// (TRL v0.9.4, penalty −1); <see cref="MissingStopPenaltyMode.Subtract"/>: <c>score −= penalty</c> where the stop is missing
    /// (current TRL). scores [B], containsStop bool [B] → [B].
    /// </summary>
    public static Tensor MissingStopPenalty(Tensor scores, Tensor containsStop, double penalty, MissingStopPenaltyMode mode)
    {
        Guard.Rank(scores, 1, nameof(scores));
        Guard.Vector(containsStop, scores.Size(0), nameof(containsStop));
        using var scope = Torch.NewScope();
        var has = Guard.BoolMask(containsStop);
        var r = mode switch
        {
            MissingStopPenaltyMode.Replace => Torch.Where(has, scores, penalty),
            MissingStopPenaltyMode.Subtract => Torch.Where(has, scores, scores - penalty),
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
        return r.MoveToOuter();
    }

    /// <summary>
    /// Token-level rewards (TRL PPOv2, OpenRLHF <c>compute_reward</c>): <c>non_score = −kl_coef · kl</c>;
    /// <c>rewards = non_score</c> with the score added at <paramref name="endIndex"/>. Pass <see cref="Masking.EndIndex"/>
    /// (TRL: one past <c>seq_len</c> when it fits) or the sequence lengths themselves (OpenRLHF: the last response token).
    /// kl [B, T] (already 0 at padding), scores [B], endIndex int64 [B] → (rewards [B, T], non_score [B, T]).
    /// </summary>
    public static (Tensor Rewards, Tensor NonScore) TokenRewards(Tensor kl, Tensor scores, Tensor endIndex, double klCoef)
    {
        Guard.Rank(kl, 2, nameof(kl));
        Guard.Vector(scores, kl.Size(0), nameof(scores));
        Guard.Vector(endIndex, kl.Size(0), nameof(endIndex));
        using var scope = Torch.NewScope();
        var nonScore = kl * -klCoef;
        var atEnd = Functional.OneHot(endIndex.Long(), kl.Size(1)).To(kl.Dtype);   // [B, T], 1 at the end index
        var rewards = nonScore + atEnd * scores.To(kl.Dtype).Unsqueeze(1);
        return (rewards.MoveToOuter(), nonScore.MoveToOuter());
    }
}
