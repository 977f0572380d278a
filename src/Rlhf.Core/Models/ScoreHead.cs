using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The scalar head of reward and value models: HF <c>*ForSequenceClassification</c> with one label,
/// <c>score.weight [1, D]</c>, no bias, applied to the final-normed hidden states.
/// </summary>
public static class ScoreHead
{
    /// <summary>Per-token scores: hidden [B, T, D] → [B, T] (value models read these).</summary>
    public static Tensor PerToken(ModelWeights w, Tensor hidden)
    {
        using var scope = Torch.NewScope();
        var s = w[WeightNames.Score];
        if (s.Dim != 2 || s.Size(0) != 1) throw new ArgumentException($"score.weight must be [1, D] for a scalar head; got [{string.Join(", ", s.Shape)}]");
        return Functional.Linear(hidden, s).Squeeze(-1).MoveToOuter();
    }

    /// <summary>
    /// Index of the last real token per row of mask [B, T] (1 = real) → int64 [B]: the largest t with mask[b, t] = 1,
    /// which is right for left and right padding alike; 0 for an all-padding row.
    /// </summary>
    public static Tensor LastTokenIndex(Tensor attentionMask)
    {
        using var scope = Torch.NewScope();
        var t = attentionMask.Size(1);
        var idx = Torch.Arange(t, device: attentionMask.Device).Unsqueeze(0);               // [1, T]
        var masked = Torch.Where(attentionMask.Ne(0), idx.Expand(attentionMask.Size(0), t), Torch.Zeros([1], ScalarType.Int64, attentionMask.Device));
        return masked.Max(1).Values.MoveToOuter();                                        // [B]
    }

    /// <summary>Sequence scores at the last non-pad token: hidden [B, T, D], mask [B, T] → [B] (reward-model score).</summary>
    public static Tensor AtLastToken(ModelWeights w, Tensor hidden, Tensor attentionMask)
    {
        using var scope = Torch.NewScope();
        var perToken = PerToken(w, hidden);                                               // [B, T]
        var last = LastTokenIndex(attentionMask).Unsqueeze(1);                            // [B, 1]
        return perToken.Gather(1, last).Squeeze(1).MoveToOuter();                         // [B]
    }
}
