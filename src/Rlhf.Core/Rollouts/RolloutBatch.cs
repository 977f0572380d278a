using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// One batch of rollouts: B rows, each a prompt (<c>[ctx]</c>, left-padded) and a sampled response (<c>[T]</c>) with everything
/// the losses need. Immutable and free of I/O; build it with <see cref="Create"/>, which truncates at the stop token and
/// derives the masks with TRL's conventions. Tensors are owned by the scope that was current when they were created.
/// </summary>
/// <param name="PromptIds">Prompt token ids, int64 [B, ctx].</param>
/// <param name="ResponseIds">Response token ids as sampled, int64 [B, T].</param>
/// <param name="Responses">Responses truncated after the first stop token (later positions = pad), int64 [B, T].</param>
/// <param name="SequenceLengths"><c>seq_len</c>: index of the last real response token (first pad − 1), int64 [B].</param>
/// <param name="PaddingMask">True at padding: <c>arange(T) &gt; seq_len</c>, bool [B, T].</param>
/// <param name="Logprobs">Rollout logprobs of the responses (from the generator), padding set to 1.0, [B, T].</param>
/// <param name="RefLogprobs">Reference-model logprobs, padding set to 1.0, [B, T].</param>
/// <param name="Values">Value-head outputs at <c>[ctx−1 : −1]</c>, 0 past <c>seq_len + 1</c>, [B, T]; null without a critic.</param>
/// <param name="Scores">Reward-model or rule scores (missing-stop penalty already applied), [B].</param>
/// <param name="GroupIds">Which rows are samples of the same prompt, int[B].</param>
/// <param name="PolicyVersion">The policy version that generated each row, long[B].</param>
/// <param name="StopTokenId">The stop (EOS) token id.</param>
/// <param name="PadTokenId">The padding token id.</param>
public sealed record RolloutBatch(
    Tensor PromptIds,
    Tensor ResponseIds,
    Tensor Responses,
    Tensor SequenceLengths,
    Tensor PaddingMask,
    Tensor Logprobs,
    Tensor RefLogprobs,
    Tensor? Values,
    Tensor Scores,
    int[] GroupIds,
    long[] PolicyVersion,
    long StopTokenId,
    long PadTokenId)
{
    /// <summary>
    /// The trainer's logprobs of the responses at the start of the step (π_prox of decoupled PPO, AReaL) when
    /// <see cref="Logprobs"/> are the generator's (μ, the behaviour policy) for an off-policy correction; padding set to 1.0,
    /// [B, T]; null when <see cref="Logprobs"/> are the trainer's own. Set it with <see cref="WithProximal"/>.
    /// </summary>
    public Tensor? ProximalLogprobs { get; init; }

    /// <summary>This batch with <paramref name="proximalLogprobs"/> [B, T] as <see cref="ProximalLogprobs"/> (padding masked like <see cref="Logprobs"/>).</summary>
    public RolloutBatch WithProximal(Tensor proximalLogprobs)
    {
        Guard.SameShape(proximalLogprobs, nameof(proximalLogprobs), Logprobs, "the batch's logprobs");
        using var scope = Torch.NewScope();
        return this with { ProximalLogprobs = Masking.MaskLogprobs(proximalLogprobs, PaddingMask).MoveToOuter() };
    }

    /// <summary>B, the number of rows.</summary>
    public long BatchSize => Responses.Size(0);

    /// <summary>T, the response length.</summary>
    public long ResponseLength => Responses.Size(1);

    /// <summary>ctx, the prompt length.</summary>
    public long ContextLength => PromptIds.Size(1);

    /// <summary>
    /// Builds a batch from sampled data: truncates the responses at the stop token, computes <c>seq_len</c> and the padding mask,
    /// sets padded logprobs to <see cref="Masking.InvalidLogprob"/> and zeroes values past <c>seq_len + 1</c> (TRL PPOv2).
    /// promptIds [B, ctx], responseIds [B, T], logprobs/refLogprobs/values [B, T], scores [B].
    /// </summary>
    public static RolloutBatch Create(Tensor promptIds, Tensor responseIds, Tensor logprobs, Tensor refLogprobs, Tensor? values, Tensor scores,
        int[] groupIds, long[] policyVersion, long stopTokenId, long padTokenId)
    {
        Guard.Rank(promptIds, 2, nameof(promptIds));
        Guard.Rank(responseIds, 2, nameof(responseIds));
        Guard.SameShape(logprobs, nameof(logprobs), responseIds, nameof(responseIds));
        Guard.SameShape(refLogprobs, nameof(refLogprobs), responseIds, nameof(responseIds));
        if (values is not null) Guard.SameShape(values, nameof(values), responseIds, nameof(responseIds));
        var b = responseIds.Size(0);
        var t = responseIds.Size(1);
        Guard.That(promptIds.Size(0) == b, $"promptIds has {promptIds.Size(0)} rows; responses have {b}");
        Guard.Vector(scores, b, nameof(scores));
        Guard.That(groupIds.Length == b, $"groupIds has {groupIds.Length} entries; the batch has {b} rows");
        Guard.That(policyVersion.Length == b, $"policyVersion has {policyVersion.Length} entries; the batch has {b} rows");

        using var scope = Torch.NewScope();
        var responses = Masking.Truncate(responseIds, stopTokenId, padTokenId);
        var seqLen = Masking.SequenceLengths(responses, padTokenId);
        var padding = Masking.PaddingMask(seqLen, t);
        var lp = Masking.MaskLogprobs(logprobs, padding);
        var refLp = Masking.MaskLogprobs(refLogprobs, padding);
        Tensor? v = values is null ? null : values.MaskedFill(Masking.PaddingMask(seqLen, t, offset: 1), 0.0).MoveToOuter();
        return new RolloutBatch(promptIds, responseIds, responses.MoveToOuter(), seqLen.MoveToOuter(), padding.MoveToOuter(),
            lp.MoveToOuter(), refLp.MoveToOuter(), v, scores, (int[])groupIds.Clone(), (long[])policyVersion.Clone(), stopTokenId, padTokenId);
    }

    /// <summary>True at response tokens (<c>¬padding_mask</c>), bool [B, T].</summary>
    public Tensor ResponseMask() => PaddingMask.LogicalNot();

    /// <summary>True where values are trained (<c>¬padding_mask_p1</c>: one token past <c>seq_len</c>), bool [B, T].</summary>
    public Tensor ValueMask() => Masking.ResponseMask(SequenceLengths, ResponseLength, offset: 1);

    /// <summary>Where the score enters the token rewards (<see cref="Masking.EndIndex"/>), int64 [B].</summary>
    public Tensor EndIndex() => Masking.EndIndex(SequenceLengths, ResponseLength);

    /// <summary>Whether each truncated response contains the stop token, bool [B].</summary>
    public Tensor ContainsStop() => Masking.ContainsStop(Responses, StopTokenId);

    /// <summary>Prompt and truncated response concatenated, int64 [B, ctx + T] — the input of the training forward pass.</summary>
    public Tensor QueryResponses() => Torch.Cat([PromptIds, Responses], 1);

    /// <summary>Per-token KL of the rollout policy from the reference, 0 at padding, [B, T].</summary>
    public Tensor Kl(KlEstimator estimator = KlEstimator.K1) => Rollouts.Kl.Estimate(Logprobs, RefLogprobs, estimator, ResponseMask());

    /// <summary>How many versions behind <paramref name="currentVersion"/> each row was generated, long[B].</summary>
    public long[] Staleness(long currentVersion) => PolicyVersion.Select(v => currentVersion - v).ToArray();

    /// <summary>The rows at <paramref name="rows"/> (a mini-batch), as a new batch; group ids and versions follow their rows.</summary>
    public RolloutBatch Rows(long[] rows)
    {
        using var scope = Torch.NewScope();
        var idx = Torch.From(rows).To(Responses.Device);
        Tensor Pick(Tensor t) => t.IndexSelect(0, idx.To(t.Device)).MoveToOuter();
        return this with
        {
            PromptIds = Pick(PromptIds),
            ResponseIds = Pick(ResponseIds),
            Responses = Pick(Responses),
            SequenceLengths = Pick(SequenceLengths),
            PaddingMask = Pick(PaddingMask),
            Logprobs = Pick(Logprobs),
            RefLogprobs = Pick(RefLogprobs),
            Values = Values is null ? null : Pick(Values),
            ProximalLogprobs = ProximalLogprobs is null ? null : Pick(ProximalLogprobs),
            Scores = Pick(Scores),
            GroupIds = rows.Select(r => GroupIds[r]).ToArray(),
            PolicyVersion = rows.Select(r => PolicyVersion[r]).ToArray(),
        };
    }
}
