using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>Log-probabilities and entropies of responses from model logits (TRL <c>forward</c> + <c>logprobs_from_logits</c>).</summary>
public static class Logprobs
{
    /// <summary>Added to the temperature before dividing the logits (TRL: <c>logits / (temperature + 1e-7)</c>).</summary>
    public const double TemperatureEpsilon = 1e-7;

    /// <summary>
    /// The logits that predict the response tokens: <c>logits[:, ctx − 1 : −1]</c>.
    /// logits [B, ctx + T, V] → [B, T, V] (a view).
    /// </summary>
    public static Tensor ResponseLogits(Tensor logits, long contextLength)
    {
        Guard.Rank(logits, 3, nameof(logits));
        Guard.That(contextLength >= 1 && contextLength < logits.Size(1), $"context length {contextLength} must be in [1, {logits.Size(1) - 1}]");
        return logits.Slice(1, contextLength - 1, -1);
    }

    /// <summary>
    /// <c>log_softmax(logits / (temperature + 1e-7))</c> gathered at the tokens — the same temperature that sampled them, for
    /// rollout, policy and reference (TRL PPOv2 / RLOO / online DPO). logits [B, T, V], tokens int64 [B, T] → [B, T].
    /// </summary>
    public static Tensor FromLogits(Tensor logits, Tensor tokens, double temperature = 1.0)
    {
        Guard.Rank(logits, 3, nameof(logits));
        Guard.Rank(tokens, 2, nameof(tokens));
        Guard.That(logits.Size(0) == tokens.Size(0) && logits.Size(1) == tokens.Size(1),
            $"logits [{string.Join(", ", logits.Shape)}] and tokens [{string.Join(", ", tokens.Shape)}] disagree on [B, T]");
        Guard.That(temperature >= 0, $"temperature must be ≥ 0; got {temperature}");
        using var scope = Torch.NewScope();
        var lsm = (logits / (temperature + TemperatureEpsilon)).LogSoftmax(-1);
        return lsm.Gather(-1, tokens.Long().Unsqueeze(-1)).Squeeze(-1).MoveToOuter();
    }

    /// <summary>
    /// Entropy of the softmax of the logits: <c>logsumexp(l) − Σ softmax(l)·l</c> (TRL PPOv2 <c>policy/entropy_avg</c>).
    /// logits [.., V] → [..].
    /// </summary>
    public static Tensor EntropyFromLogits(Tensor logits)
    {
        using var scope = Torch.NewScope();
        var p = logits.Softmax(-1);
        return (logits.LogSumExp(-1) - (p * logits).Sum(-1)).MoveToOuter();
    }
}
