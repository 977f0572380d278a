using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>The DPO loss family (TRL <c>loss_type</c>).</summary>
public enum DpoLossType
{
    /// <summary><c>−(1 − s) logσ(βz) − s logσ(−βz)</c> (Rafailov et al. 2023; label smoothing s from cDPO).</summary>
    Sigmoid,
    /// <summary><c>(z − 1/(2β))²</c> (Azar et al. 2023, IPO).</summary>
    Ipo,
    /// <summary><c>relu(1 − βz)</c> (SLiC-style hinge).</summary>
    Hinge,
}

/// <summary>Which rows of a batch form each (chosen, rejected) preference pair.</summary>
/// <param name="Chosen">Row of the chosen response of each pair.</param>
/// <param name="Rejected">Row of the rejected response of each pair.</param>
public sealed record PreferencePairs(long[] Chosen, long[] Rejected)
{
    /// <summary>Number of pairs.</summary>
    public int Count => Chosen.Length;
}

/// <summary>Stats of one DPO step, under TRL's DPO / OnlineDPO names.</summary>
/// <param name="Loss"><c>loss</c>.</param>
/// <param name="RewardsChosen"><c>rewards/chosen</c>: mean β(L_c − R_c).</param>
/// <param name="RewardsRejected"><c>rewards/rejected</c>: mean β(L_r − R_r).</param>
/// <param name="Accuracies"><c>rewards/accuracies</c>: fraction of pairs whose chosen reward exceeds the rejected one.</param>
/// <param name="Margins"><c>rewards/margins</c>: mean chosen − rejected reward.</param>
/// <param name="LogpsChosen"><c>logps/chosen</c>: mean policy logp of the chosen responses.</param>
/// <param name="LogpsRejected"><c>logps/rejected</c>: mean policy logp of the rejected responses.</param>
public sealed record DpoStats(double Loss, double RewardsChosen, double RewardsRejected, double Accuracies, double Margins, double LogpsChosen, double LogpsRejected) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["loss"] = Loss,
        ["rewards/chosen"] = RewardsChosen,
        ["rewards/rejected"] = RewardsRejected,
        ["rewards/accuracies"] = Accuracies,
        ["rewards/margins"] = Margins,
        ["logps/chosen"] = LogpsChosen,
        ["logps/rejected"] = LogpsRejected,
    };
}

/// <summary>
/// Direct preference optimisation (Rafailov et al. 2023, arXiv 2305.18290), offline (TRL DPOTrainer) and online
/// (Guo et al. 2024; async_rlhf / TRL OnlineDPOTrainer: pairs sampled from the policy and ranked by a reward model).
/// </summary>
public static class Dpo
{
    /// <summary>
    /// Online pair selection from the samples of each prompt (async_rlhf). k = 2: chosen = the higher score (the first on a tie),
    /// rejected = the other. k &gt; 2: chosen = argmax, rejected = argmin; ties go to the earliest row, and the rejected row is
    /// never the chosen one. scores [B], groupIds int[B] (every group ≥ 2 rows) → one pair per group, in order of first appearance.
    /// </summary>
    public static PreferencePairs SelectPairs(Tensor scores, IReadOnlyList<int> groupIds)
    {
        Guard.Vector(scores, groupIds.Count, nameof(scores));
        double[] s;
        using (Torch.NewScope()) s = scores.Detach().To(ScalarType.Float64).Cpu().ToArray<double>();
        var groups = Groups.Members(groupIds);
        var chosen = new long[groups.Length];
        var rejected = new long[groups.Length];
        for (var g = 0; g < groups.Length; g++)
        {
            var rows = groups[g];
            if (rows.Length < 2) throw new ArgumentException($"a preference pair needs ≥ 2 samples per prompt; the group of row {rows[0]} has {rows.Length}");
            var best = rows[0];
            foreach (var r in rows) if (s[r] > s[best]) best = r;
            var worst = -1;
            foreach (var r in rows) if (r != best && (worst < 0 || s[r] < s[worst])) worst = r;
            chosen[g] = best;
            rejected[g] = worst;
        }
        return new PreferencePairs(chosen, rejected);
    }

    /// <summary>Mean score margin of the pairs, <c>objective/scores_margin</c>, as a tensor. scores [B] → scalar.</summary>
    public static Tensor ScoresMargin(Tensor scores, PreferencePairs pairs)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var s = scores.To(ScalarType.Float64);
        return (s.IndexSelect(0, Idx(pairs.Chosen, s)) - s.IndexSelect(0, Idx(pairs.Rejected, s))).Mean().MoveToOuter();
    }

    /// <summary>
    /// Per-sequence logp: <c>Σ_t m lp</c>, or the mean <c>Σ_t m lp / Σ_t m</c> when <paramref name="average"/> (length-normalised).
    /// logprobs [B, T], mask [B, T] → [B].
    /// </summary>
    public static Tensor SequenceLogps(Tensor logprobs, Tensor mask, bool average = false)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        return average ? Masked.Mean(logprobs, mask, 1) : Masked.Sum(logprobs, mask, 1);
    }

    /// <summary>The DPO logit <c>z = (L_c − L_r) − (R_c − R_r)</c>. All [P] → [P].</summary>
    public static Tensor Logits(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected)
    {
        Guard.Rank(policyChosen, 1, nameof(policyChosen));
        Guard.SameShape(policyChosen, nameof(policyChosen), policyRejected, nameof(policyRejected));
        Guard.SameShape(policyChosen, nameof(policyChosen), refChosen, nameof(refChosen));
        Guard.SameShape(policyChosen, nameof(policyChosen), refRejected, nameof(refRejected));
        using var scope = Torch.NewScope();
        return ((policyChosen - policyRejected) - (refChosen - refRejected)).MoveToOuter();
    }

    /// <summary>
    /// Per-pair loss of the logit z with inverse temperature β (TRL <c>dpo_loss</c>): sigmoid <c>−(1 − s) logσ(βz) − s logσ(−βz)</c>
    /// (label smoothing s from cDPO); ipo <c>(z − 1/(2β))²</c>; hinge <c>relu(1 − βz)</c>. z [P] → [P].
    /// </summary>
    public static Tensor PairLoss(Tensor z, double beta, DpoLossType lossType, double labelSmoothing)
    {
        Guard.That(beta > 0, $"β must be > 0; got {beta}");
        Guard.That(labelSmoothing is >= 0 and < 0.5, $"label smoothing must be in [0, 0.5); got {labelSmoothing}");
        using var scope = Torch.NewScope();
        var bz = z * beta;
        var loss = lossType switch
        {
            // log(1 − σ(x)) = logσ(−x): both terms stay finite for large |x|.
            DpoLossType.Sigmoid => labelSmoothing == 0
                ? -bz.LogSigmoid()
                : -bz.LogSigmoid() * (1 - labelSmoothing) - (-bz).LogSigmoid() * labelSmoothing,
            DpoLossType.Ipo => (z - 1 / (2 * beta)).Square(),
            DpoLossType.Hinge => (1 - bz).Relu(),
            _ => throw new ArgumentOutOfRangeException(nameof(lossType)),
        };
        return loss.MoveToOuter();
    }

    /// <summary>
    /// Per-pair DPO terms from per-sequence logps, one unit per pair, with TRL's reward stats as tensors (<c>rewards/chosen</c>
    /// = mean β(L_c − R_c), <c>rewards/rejected</c>, <c>rewards/accuracies</c>, <c>rewards/margins</c>, <c>logps/chosen</c>,
    /// <c>logps/rejected</c>). policyChosen, policyRejected [P] (with grad), refChosen, refRejected [P] → (terms [P, 1], stats).
    /// </summary>
    public static (Tensor Terms, TensorStats Stats) PairTerms(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta, DpoLossType lossType, double labelSmoothing)
    {
        using var scope = Torch.NewScope();
        var z = Logits(policyChosen, policyRejected, refChosen, refRejected);
        var terms = PairLoss(z, beta, lossType, labelSmoothing).Unsqueeze(1);
        var stats = new TensorStats();
        using (Torch.NoGrad())
        {
            var rc = (policyChosen - refChosen) * beta;
            var rr = (policyRejected - refRejected) * beta;
            stats.Add("rewards/chosen", rc.Mean())
                .Add("rewards/rejected", rr.Mean())
                .Add("rewards/accuracies", rc.Gt(rr).To(rc.Dtype).Mean())
                .Add("rewards/margins", (rc - rr).Mean())
                .Add("logps/chosen", policyChosen.Mean())
                .Add("logps/rejected", policyRejected.Mean());
        }
        return (terms.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// DPO loss from per-sequence logps: <c>mean(PairLoss(z))</c> with TRL's reward stats, read to the host once.
    /// policyChosen, policyRejected [P] (with grad), refChosen, refRejected [P] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) Loss(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta, DpoLossType lossType, double labelSmoothing)
    {
        using var scope = Torch.NewScope();
        var (terms, t) = PairTerms(policyChosen, policyRejected, refChosen, refRejected, beta, lossType, labelSmoothing);
        var loss = terms.Mean();
        var v = StatsMath.Read(loss, t["rewards/chosen"], t["rewards/rejected"], t["rewards/accuracies"], t["rewards/margins"],
            t["logps/chosen"], t["logps/rejected"]);
        return (loss.MoveToOuter(), new DpoStats(v[0], v[1], v[2], v[3], v[4], v[5], v[6]));
    }

    /// <summary>
    /// Online DPO terms (async_rlhf / TRL OnlineDPOTrainer): <c>L = Σ_t m lp_π</c>, <c>R = Σ_t m lp_ref</c> of the chosen and
    /// rejected rows of each pair, then <see cref="PairTerms"/>. logprobs [B, T] (with grad), refLogprobs [B, T], mask [B, T],
    /// pairs → (terms [P, 1], stats).
    /// </summary>
    public static (Tensor Terms, TensorStats Stats) OnlineTerms(Tensor logprobs, Tensor refLogprobs, Tensor mask, PreferencePairs pairs,
        double beta, DpoLossType lossType)
    {
        Guard.SameShape(logprobs, nameof(logprobs), refLogprobs, nameof(refLogprobs));
        using var scope = Torch.NewScope();
        var l = SequenceLogps(logprobs, mask);
        var r = SequenceLogps(refLogprobs, mask);
        var c = Idx(pairs.Chosen, l);
        var j = Idx(pairs.Rejected, l);
        var (terms, stats) = PairTerms(l.IndexSelect(0, c), l.IndexSelect(0, j), r.IndexSelect(0, c), r.IndexSelect(0, j), beta, lossType, 0.0);
        return (terms.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Online DPO loss: the mean of <see cref="OnlineTerms"/>, with TRL's reward stats read once.
    /// logprobs [B, T] (with grad), refLogprobs [B, T], mask [B, T], pairs → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) OnlineLoss(Tensor logprobs, Tensor refLogprobs, Tensor mask, PreferencePairs pairs,
        double beta, DpoLossType lossType)
    {
        Guard.SameShape(logprobs, nameof(logprobs), refLogprobs, nameof(refLogprobs));
        using var scope = Torch.NewScope();
        var l = SequenceLogps(logprobs, mask);
        var r = SequenceLogps(refLogprobs, mask);
        var c = Idx(pairs.Chosen, l);
        var j = Idx(pairs.Rejected, l);
        var (loss, stats) = Loss(l.IndexSelect(0, c), l.IndexSelect(0, j), r.IndexSelect(0, c), r.IndexSelect(0, j), beta, lossType, 0.0);
        return (loss.MoveToOuter(), stats);
    }

    /// <summary>
    /// Offline DPO terms on a preference data set (TRL DPOTrainer): per-sequence logp sums — per-token means for IPO, which TRL
    /// length-normalises — then <see cref="PairTerms"/>. chosen* [P, Tc], rejected* [P, Tr] → (terms [P, 1], stats).
    /// </summary>
    public static (Tensor Terms, TensorStats Stats) OfflineTerms(Tensor chosenLogprobs, Tensor chosenRefLogprobs, Tensor chosenMask,
        Tensor rejectedLogprobs, Tensor rejectedRefLogprobs, Tensor rejectedMask, double beta, DpoLossType lossType, double labelSmoothing)
    {
        using var scope = Torch.NewScope();
        var avg = lossType == DpoLossType.Ipo;
        var (terms, stats) = PairTerms(SequenceLogps(chosenLogprobs, chosenMask, avg), SequenceLogps(rejectedLogprobs, rejectedMask, avg),
            SequenceLogps(chosenRefLogprobs, chosenMask, avg), SequenceLogps(rejectedRefLogprobs, rejectedMask, avg), beta, lossType, labelSmoothing);
        return (terms.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Offline DPO loss (TRL DPOTrainer): the mean of <see cref="OfflineTerms"/>, with TRL's reward stats read once.
    /// chosen* [P, Tc], rejected* [P, Tr] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) OfflineLoss(Tensor chosenLogprobs, Tensor chosenRefLogprobs, Tensor chosenMask,
        Tensor rejectedLogprobs, Tensor rejectedRefLogprobs, Tensor rejectedMask, double beta, DpoLossType lossType, double labelSmoothing)
    {
        using var scope = Torch.NewScope();
        var avg = lossType == DpoLossType.Ipo;
        var (loss, stats) = Loss(SequenceLogps(chosenLogprobs, chosenMask, avg), SequenceLogps(rejectedLogprobs, rejectedMask, avg),
            SequenceLogps(chosenRefLogprobs, chosenMask, avg), SequenceLogps(rejectedRefLogprobs, rejectedMask, avg), beta, lossType, labelSmoothing);
        return (loss.MoveToOuter(), stats);
    }

    private static Tensor Idx(long[] rows, Tensor like) => Torch.From(rows).To(like.Device);
}
