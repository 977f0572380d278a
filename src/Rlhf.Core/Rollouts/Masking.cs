using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Stop-token truncation, sequence lengths and padding masks, with TRL's conventions
/// (<c>trl/trainer/utils.py</c>: <c>first_true_indices</c>, <c>truncate_response</c>; PPOv2 / RLOO / online DPO trainers).
/// All functions are pure: they return new tensors in the caller's scope.
/// </summary>
public static class Masking
{
    /// <summary>The value masked logprobs are set to (TRL's <c>INVALID_LOGPROB</c>): harmless, and always multiplied out.</summary>
    public const double InvalidLogprob = 1.0;

    /// <summary>
    /// Index of the first true element of each row, or the row length when none (TRL <c>first_true_indices</c>):
    /// <c>min(T·(¬b) + arange(T))</c>. bools [B, T] → int64 [B].
    /// </summary>
    public static Tensor FirstTrueIndices(Tensor bools)
    {
        Guard.Rank(bools, 2, nameof(bools));
        using var scope = Torch.NewScope();
        var b = Guard.BoolMask(bools);
        var t = b.Size(1);
        var idx = b.LogicalNot().Long() * t + Torch.Arange(t, ScalarType.Int64, b.Device);
        return idx.Min(1).Values.MoveToOuter();
    }

    /// <summary>
    /// Truncates responses after the first stop token: every later position becomes <paramref name="padTokenId"/>, the stop token
    /// itself stays (TRL <c>truncate_response</c>). responses int64 [B, T] → [B, T]. Idempotent.
    /// </summary>
    public static Tensor Truncate(Tensor responses, long stopTokenId, long padTokenId)
    {
        Guard.Rank(responses, 2, nameof(responses));
        using var scope = Torch.NewScope();
        var trunc = FirstTrueIndices(responses.Eq(stopTokenId)).Unsqueeze(1);        // [B, 1]
        var idxs = Torch.Arange(responses.Size(1), ScalarType.Int64, responses.Device).Unsqueeze(0); // [1, T]
        return responses.MaskedFill(idxs.Gt(trunc), padTokenId).MoveToOuter();
    }

    /// <summary>
    /// <c>seq_len = first_true_indices(responses == pad) − 1</c>: the index of the last real token (T − 1 when there is no pad,
    /// −1 for an empty response). responses int64 [B, T] → int64 [B].
    /// </summary>
    public static Tensor SequenceLengths(Tensor responses, long padTokenId)
    {
        Guard.Rank(responses, 2, nameof(responses));
        using var scope = Torch.NewScope();
        return Guard.IndexAdd(FirstTrueIndices(responses.Eq(padTokenId)), -1).MoveToOuter();
    }

    /// <summary>
    /// <c>padding_mask = arange(T) &gt; seq_len + offset</c> (true = padding). offset 0 masks the response's padding; offset 1 is
    /// TRL's <c>padding_mask_p1</c> for values, which keeps one token past <c>seq_len</c>. seqLen int64 [B] → bool [B, T].
    /// </summary>
    public static Tensor PaddingMask(Tensor sequenceLengths, long t, long offset = 0)
    {
        Guard.Rank(sequenceLengths, 1, nameof(sequenceLengths));
        using var scope = Torch.NewScope();
        var idxs = Torch.Arange(t, ScalarType.Int64, sequenceLengths.Device).Unsqueeze(0);
        return idxs.Gt(Guard.IndexAdd(sequenceLengths.Long(), offset).Unsqueeze(1)).MoveToOuter();
    }

    /// <summary>The complement of <see cref="PaddingMask"/>: true at response tokens. seqLen [B] → bool [B, T].</summary>
    public static Tensor ResponseMask(Tensor sequenceLengths, long t, long offset = 0)
    {
        using var scope = Torch.NewScope();
        return PaddingMask(sequenceLengths, t, offset).LogicalNot().MoveToOuter();
    }

    /// <summary>
    /// Where the score is added to the token rewards (TRL PPOv2 <c>actual_end</c>):
    /// <c>seq_len + 1 if seq_len + 1 &lt; T else seq_len</c>. seqLen int64 [B] → int64 [B].
    /// </summary>
    public static Tensor EndIndex(Tensor sequenceLengths, long t)
    {
        Guard.Rank(sequenceLengths, 1, nameof(sequenceLengths));
        using var scope = Torch.NewScope();
        var len = sequenceLengths.Long();
        var p1 = Guard.IndexAdd(len, 1);
        return Torch.Where(p1.Lt(t), p1, len).MoveToOuter();
    }

    /// <summary>Whether each (truncated) response contains the stop token. responses int64 [B, T] → bool [B].</summary>
    public static Tensor ContainsStop(Tensor responses, long stopTokenId)
    {
        Guard.Rank(responses, 2, nameof(responses));
        using var scope = Torch.NewScope();
        return responses.Eq(stopTokenId).Any(1).MoveToOuter();
    }

    /// <summary>Sets logprobs at padding to <see cref="InvalidLogprob"/> (TRL: <c>masked_fill(padding_mask, INVALID_LOGPROB)</c>). [B, T] → [B, T].</summary>
    public static Tensor MaskLogprobs(Tensor logprobs, Tensor paddingMask)
    {
        Guard.SameShape(logprobs, nameof(logprobs), paddingMask, nameof(paddingMask));
        using var scope = Torch.NewScope();
        return logprobs.MaskedFill(Guard.BoolMask(paddingMask), InvalidLogprob).MoveToOuter();
    }
}
