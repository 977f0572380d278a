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

/// <summary>DPO hyperparameters; defaults from async_rlhf / TRL (REFERENCE.md).</summary>
/// <param name="Beta">β, the inverse temperature of the implicit reward.</param>
/// <param name="LossType">Which loss.</param>
/// <param name="LabelSmoothing">s ∈ [0, 0.5): the assumed probability that a preference label is flipped (sigmoid only).</param>
/// <param name="IpoLengthNormalize">Offline IPO uses per-token mean logps instead of sums (TRL DPOTrainer).</param>
public sealed record DpoSettings(double Beta = 0.1, DpoLossType LossType = DpoLossType.Sigmoid, double LabelSmoothing = 0.0, bool IpoLengthNormalize = true);

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

    /// <summary>Mean score margin of the pairs, <c>objective/scores_margin</c>. scores [B] → double.</summary>
    public static double ScoresMargin(Tensor scores, PreferencePairs pairs)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var s = scores.To(ScalarType.Float64);
        return StatsMath.D((s.IndexSelect(0, Idx(pairs.Chosen, s)) - s.IndexSelect(0, Idx(pairs.Rejected, s))).Mean());
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
    /// Per-pair loss of the logit z: sigmoid <c>−(1 − s) logσ(βz) − s logσ(−βz)</c>; ipo <c>(z − 1/(2β))²</c>;
    /// hinge <c>relu(1 − βz)</c> (TRL <c>dpo_loss</c>). z [P] → [P].
    /// </summary>
    public static Tensor PairLoss(Tensor z, DpoSettings settings)
    {
        Guard.That(settings.Beta > 0, $"β must be > 0; got {settings.Beta}");
        Guard.That(settings.LabelSmoothing is >= 0 and < 0.5, $"label smoothing must be in [0, 0.5); got {settings.LabelSmoothing}");
        using var scope = Torch.NewScope();
        var bz = z * settings.Beta;
        var loss = settings.LossType switch
        {
            // log(1 − σ(x)) = logσ(−x): both terms stay finite for large |x|.
            DpoLossType.Sigmoid => settings.LabelSmoothing == 0
                ? -bz.LogSigmoid()
                : -bz.LogSigmoid() * (1 - settings.LabelSmoothing) - (-bz).LogSigmoid() * settings.LabelSmoothing,
            DpoLossType.Ipo => (z - 1 / (2 * settings.Beta)).Square(),
            DpoLossType.Hinge => (1 - bz).Relu(),
            _ => throw new ArgumentOutOfRangeException(nameof(settings)),
        };
        return loss.MoveToOuter();
    }

    /// <summary>
    /// DPO loss from per-sequence logps: <c>mean(PairLoss(z))</c> with TRL's reward stats.
    /// policyChosen, policyRejected [P] (with grad), refChosen, refRejected [P] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) Loss(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected, DpoSettings settings)
    {
        using var scope = Torch.NewScope();
        var z = Logits(policyChosen, policyRejected, refChosen, refRejected);
        var loss = PairLoss(z, settings).Mean();
        DpoStats stats;
        using (Torch.NoGrad())
        {
            var rc = (policyChosen - refChosen) * settings.Beta;
            var rr = (policyRejected - refRejected) * settings.Beta;
            stats = new DpoStats(StatsMath.D(loss), StatsMath.D(rc.Mean()), StatsMath.D(rr.Mean()), StatsMath.D(rc.Gt(rr).To(rc.Dtype).Mean()),
                StatsMath.D((rc - rr).Mean()), StatsMath.D(policyChosen.Mean()), StatsMath.D(policyRejected.Mean()));
        }
        return (loss.MoveToOuter(), stats);
    }

    /// <summary>
    /// Online DPO (async_rlhf / TRL OnlineDPOTrainer): <c>L = Σ_t m lp_π</c>, <c>R = Σ_t m lp_ref</c> of the chosen and rejected rows of
    /// each pair, then <see cref="Loss"/>. logprobs [B, T] (with grad), refLogprobs [B, T], mask [B, T], pairs → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) OnlineLoss(Tensor logprobs, Tensor refLogprobs, Tensor mask, PreferencePairs pairs, DpoSettings settings)
    {
        Guard.SameShape(logprobs, nameof(logprobs), refLogprobs, nameof(refLogprobs));
        using var scope = Torch.NewScope();
        var l = SequenceLogps(logprobs, mask);
        var r = SequenceLogps(refLogprobs, mask);
        var c = Idx(pairs.Chosen, l);
        var j = Idx(pairs.Rejected, l);
        var (loss, stats) = Loss(l.IndexSelect(0, c), l.IndexSelect(0, j), r.IndexSelect(0, c), r.IndexSelect(0, j), settings);
        return (loss.MoveToOuter(), stats);
    }

    /// <summary>
    /// Offline DPO on a preference data set (TRL DPOTrainer): per-sequence logp sums (per-token means for IPO when
    /// <see cref="DpoSettings.IpoLengthNormalize"/>), then <see cref="Loss"/>. chosen* [P, Tc], rejected* [P, Tr] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, DpoStats Stats) OfflineLoss(Tensor chosenLogprobs, Tensor chosenRefLogprobs, Tensor chosenMask,
        Tensor rejectedLogprobs, Tensor rejectedRefLogprobs, Tensor rejectedMask, DpoSettings settings)
    {
        using var scope = Torch.NewScope();
        var avg = settings.LossType == DpoLossType.Ipo && settings.IpoLengthNormalize;
        var (loss, stats) = Loss(SequenceLogps(chosenLogprobs, chosenMask, avg), SequenceLogps(rejectedLogprobs, rejectedMask, avg),
            SequenceLogps(chosenRefLogprobs, chosenMask, avg), SequenceLogps(rejectedRefLogprobs, rejectedMask, avg), settings);
        return (loss.MoveToOuter(), stats);
    }

    private static Tensor Idx(long[] rows, Tensor like) => Torch.From(rows).To(like.Device);
}
