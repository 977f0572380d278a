using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Advantages;

using Torch = Rlhf.Torch.Torch;

/// <summary>Advantages and value targets from one estimator.</summary>
/// <param name="Advantages">Advantages, [B, T].</param>
/// <param name="Returns">Value-function targets, [B, T].</param>
public sealed record AdvantageResult(Tensor Advantages, Tensor Returns);

/// <summary>Generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438; TRL PPOv2 loop).</summary>
public static class Gae
{
    /// <summary>
    /// GAE over the response, backwards in t: <c>δ_t = r_t + γ V_{t+1} − V_t</c> (V_T = 0), <c>A_t = δ_t + γλ A_{t+1}</c>,
    /// <c>returns = A + V</c> (TRL PPOv2). The recursion runs over all T positions: pass values already zeroed past
    /// <c>seq_len + 1</c> and rewards already 0 at padding, as <see cref="RolloutBatch"/> and <see cref="Rewards.TokenRewards"/> do.
    /// rewards [B, T], values [B, T] → (advantages [B, T], returns [B, T]), unwhitened.
    /// </summary>
    public static AdvantageResult Compute(Tensor rewards, Tensor values, double gamma, double lambda)
    {
        Guard.Rank(rewards, 2, nameof(rewards));
        Guard.SameShape(rewards, nameof(rewards), values, nameof(values));
        using var scope = Torch.NewScope();
        var t = rewards.Size(1);
        // V_{t+1}, with 0 after the last position.
        var next = Torch.Cat([values.Slice(1, 1, long.MaxValue), Torch.Zeros([rewards.Size(0), 1], values.Dtype, values.Device)], 1);
        var delta = rewards + next * gamma - values;                     // [B, T]
        var cols = delta.Unbind(1);
        var adv = new Tensor[t];
        Tensor? last = null;
        for (var i = (int)t - 1; i >= 0; i--)
        {
            last = last is null ? cols[i] : cols[i] + last * (gamma * lambda);
            adv[i] = last;
        }
        var advantages = Torch.Stack(adv, 1);
        var returns = advantages + values;
        return new AdvantageResult(advantages.MoveToOuter(), returns.MoveToOuter());
    }
}

/// <summary>Discounted reward-to-go (OpenRLHF <c>get_cumulative_returns</c>, used by REINFORCE++).</summary>
public static class DiscountedReturns
{
    /// <summary>
    /// <c>G_t = m_t r_t + γ G_{t+1}</c>, G_T = 0: the discounted sum of the (masked) rewards from t on.
    /// rewards [B, T], mask [B, T] or null → [B, T].
    /// </summary>
    public static Tensor Compute(Tensor rewards, Tensor? mask, double gamma)
    {
        Guard.Rank(rewards, 2, nameof(rewards));
        using var scope = Torch.NewScope();
        var r = mask is null ? rewards : Masked.Select(rewards, mask);
        var cols = r.Unbind(1);
        var g = new Tensor[cols.Length];
        Tensor? acc = null;
        for (var i = cols.Length - 1; i >= 0; i--)
        {
            acc = acc is null ? cols[i] : cols[i] + acc * gamma;
            g[i] = acc;
        }
        return Torch.Stack(g, 1).MoveToOuter();
    }
}
