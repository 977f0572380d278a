using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Advantages;

using Torch = Rlhf.Torch.Torch;

/// <summary>How GRPO scales the group-centred rewards (TRL <c>scale_rewards</c>).</summary>
public enum GroupScaling
{
    /// <summary>Divide by the group's standard deviation (TRL "group", the default; "true" in older versions).</summary>
    Group,
    /// <summary>Divide by the whole batch's standard deviation (TRL "batch").</summary>
    Batch,
    /// <summary>No scaling: only centre on the group mean (TRL "none"/"false", Dr. GRPO).</summary>
    None,
}

/// <summary>Group-relative baselines: GRPO's normalised advantages and RLOO's leave-one-out baseline.</summary>
public static class GroupAdvantages
{
    /// <summary>GRPO's std epsilon: <c>(r − mean) / (std + 1e-4)</c> (TRL).</summary>
    public const double GrpoEpsilon = 1e-4;

    /// <summary>
    /// GRPO advantages (Shao et al. 2024, arXiv 2402.03300; TRL <c>GRPOTrainer._generate_and_score_completions</c>):
    /// <c>A = (r − mean_group(r)) / (s + 1e-4)</c> with s the group std (Bessel), the batch std, or 1.
    /// rewards [B], groupIds int[B] (every group ≥ 2 rows) → [B].
    /// </summary>
    public static Tensor Grpo(Tensor rewards, IReadOnlyList<int> groupIds, GroupScaling scaling, double epsilon = GrpoEpsilon)
    {
        Guard.Vector(rewards, groupIds.Count, nameof(rewards));
        RequireGroupsOfAtLeastTwo(groupIds);
        using var scope = Torch.NewScope();
        var centered = rewards - Groups.Mean(rewards, groupIds);
        var a = scaling switch
        {
            GroupScaling.Group => centered / (Groups.Std(rewards, groupIds) + epsilon),
            GroupScaling.Batch => centered / (rewards.Std() + epsilon),
            GroupScaling.None => centered,
            _ => throw new ArgumentOutOfRangeException(nameof(scaling)),
        };
        return a.MoveToOuter();
    }

    /// <summary>
    /// RLOO advantages (Ahmadian et al. 2024, arXiv 2402.14740; async_rlhf / TRL RLOO):
    /// <c>A_i = R_i − (Σ_{j∈g(i)} R_j − R_i)/(k − 1)</c> — each sample's baseline is the mean of the other samples of its prompt.
    /// rewards [B], groupIds int[B] (every group ≥ 2 rows) → [B]. Sums to zero within each group.
    /// </summary>
    public static Tensor LeaveOneOut(Tensor rewards, IReadOnlyList<int> groupIds)
    {
        Guard.Vector(rewards, groupIds.Count, nameof(rewards));
        RequireGroupsOfAtLeastTwo(groupIds);
        using var scope = Torch.NewScope();
        var (sum, count) = Groups.Broadcast(rewards, groupIds);
        var baseline = (sum - rewards) / (count - 1);
        return (rewards - baseline).MoveToOuter();
    }

    private static void RequireGroupsOfAtLeastTwo(IReadOnlyList<int> groupIds)
    {
        foreach (var g in Groups.Members(groupIds))
            if (g.Length < 2)
                throw new ArgumentException($"group-relative advantages need at least 2 samples per prompt; the group of row {g[0]} has {g.Length}");
    }
}
