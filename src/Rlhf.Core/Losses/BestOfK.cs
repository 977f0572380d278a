using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Stats of one best-of-K step.</summary>
/// <param name="Loss"><c>loss</c>: the NLL of the winners.</param>
/// <param name="LogpsChosen"><c>logps/chosen</c>: mean Σ_t lp of the winners.</param>
public sealed record BestOfKStats(double Loss, double LogpsChosen) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["loss"] = Loss,
        ["logps/chosen"] = LogpsChosen,
    };
}

/// <summary>
/// Online best-of-K (async_rlhf OnlineBoKTrainer): sample K per prompt, score them (with the missing-stop penalty), keep the best,
/// and train on it with supervised NLL. The reference model only feeds the logged KL.
/// </summary>
public static class BestOfK
{
    /// <summary>The row of the highest score in each group (the earliest on a tie), groups in order of first appearance. scores [B] → long[G].</summary>
    public static long[] Select(Tensor scores, IReadOnlyList<int> groupIds)
    {
        Guard.Vector(scores, groupIds.Count, nameof(scores));
        double[] s;
        using (Torch.NewScope()) s = scores.Detach().To(ScalarType.Float64).Cpu().ToArray<double>();
        return Groups.Members(groupIds).Select(rows =>
        {
            var best = rows[0];
            foreach (var r in rows) if (s[r] > s[best]) best = r;
            return (long)best;
        }).ToArray();
    }

    /// <summary>
    /// <c>loss = −mean_b(Σ_t m lp)</c>: the negative log-likelihood of the selected responses, summed over tokens.
    /// logprobs [N, T] of the selected rows (with grad), mask [N, T] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, BestOfKStats Stats) Loss(Tensor logprobs, Tensor mask)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var seq = Masked.Sum(logprobs, mask, 1);
        var loss = -seq.Mean();
        var v = StatsMath.Read(loss, seq.Mean());
        return (loss.MoveToOuter(), new BestOfKStats(v[0], v[1]));
    }
}
