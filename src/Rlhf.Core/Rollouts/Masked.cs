using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Masked statistics (TRL <c>masked_mean</c>, <c>masked_var</c>, <c>masked_whiten</c>). A mask is bool or numeric (non-zero = active)
/// and broadcastable to the values. Masked entries are selected out with <c>where</c> rather than multiplied, so nothing
/// (not even NaN or ±∞ at a padded position) leaks from a masked position into a result.
/// </summary>
public static class Masked
{
    /// <summary>The whitening epsilon (TRL <c>masked_whiten</c>, trl/trainer/utils.py): <c>rsqrt(var + 1e-8)</c>.</summary>
    public const double WhitenEpsilon = 1e-8;

    /// <summary>x where mask, else 0. x [..], mask [..] → [..].</summary>
    public static Tensor Select(Tensor x, Tensor mask)
    {
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask);
        if (!m.Shape.SequenceEqual(x.Shape)) m = m.Expand(x.Shape);
        return Torch.Where(m, x, 0.0).MoveToOuter();
    }

    /// <summary>Σ mask·x over all entries. x [..], mask [..] → scalar.</summary>
    public static Tensor Sum(Tensor x, Tensor mask)
    {
        using var scope = Torch.NewScope();
        return Select(x, mask).Sum().MoveToOuter();
    }

    /// <summary>Σ mask·x along <paramref name="dim"/>. x [B, T], mask [B, T] → [B].</summary>
    public static Tensor Sum(Tensor x, Tensor mask, long dim)
    {
        using var scope = Torch.NewScope();
        return Select(x, mask).Sum(dim).MoveToOuter();
    }

    /// <summary>Number of active entries, in x's dtype. → scalar.</summary>
    public static Tensor Count(Tensor x, Tensor mask)
    {
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask);
        if (!m.Shape.SequenceEqual(x.Shape)) m = m.Expand(x.Shape);
        return m.To(x.Dtype).Sum().MoveToOuter();
    }

    /// <summary>
    /// <c>Σ mask·x / Σ mask</c> over all entries (TRL <c>masked_mean(values, mask)</c>). x [..], mask [..] → scalar.
    /// NaN when no entry is active, as in TRL.
    /// </summary>
    public static Tensor Mean(Tensor x, Tensor mask)
    {
        using var scope = Torch.NewScope();
        return (Sum(x, mask) / Count(x, mask)).MoveToOuter();
    }

    /// <summary><c>Σ_dim mask·x / Σ_dim mask</c> (TRL <c>masked_mean(values, mask, axis)</c>). x [B, T], mask [B, T] → [B].</summary>
    public static Tensor Mean(Tensor x, Tensor mask, long dim)
    {
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask);
        if (!m.Shape.SequenceEqual(x.Shape)) m = m.Expand(x.Shape);
        return (Select(x, m).Sum(dim) / m.To(x.Dtype).Sum(dim)).MoveToOuter();
    }

    /// <summary>
    /// Masked variance <c>mean_m((x − mean_m x)²)</c>, times <c>n/(n − 1)</c> when <paramref name="unbiased"/> (Bessel, TRL
    /// <c>masked_var</c>; TRL raises when n = 0 and returns ∞/NaN when n = 1 — here n &lt; 2 throws). x [..], mask [..] → scalar.
    /// </summary>
    public static Tensor Var(Tensor x, Tensor mask, bool unbiased = true)
    {
        using var scope = Torch.NewScope();
        var n = Count(x, mask).Item();
        if (n == 0) throw new ArgumentException("masked variance needs at least one active entry (the mask is empty)");
        if (unbiased && n < 2) throw new ArgumentException("masked variance with Bessel's correction needs at least two active entries");
        var centered = x - Mean(x, mask);
        var v = Mean(centered.Square(), mask);
        if (unbiased) v = v * (n / (n - 1));
        return v.MoveToOuter();
    }

    /// <summary>
    /// Whitening over active entries (TRL <c>masked_whiten</c>): <c>(x − μ)·rsqrt(σ² + 1e-8)</c> with Bessel's σ²; with
    /// <paramref name="shiftMean"/> false the mean is added back: <c>(x − μ)·rsqrt(σ² + 1e-8) + μ</c>.
    /// Masked positions of the result are 0 (TRL leaves them as computed; the callers then fill them with 0).
    /// x [..], mask [..] → [..].
    /// </summary>
    public static Tensor Whiten(Tensor x, Tensor mask, bool shiftMean = true)
    {
        using var scope = Torch.NewScope();
        var mean = Mean(x, mask);
        var v = Var(x, mask);
        var w = (x - mean) * (v + WhitenEpsilon).Rsqrt();
        if (!shiftMean) w = w + mean;
        return Select(w, mask).MoveToOuter();
    }
}
