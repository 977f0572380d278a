using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Where a block's attention gets its keys and values, and which of them each query may see.
/// <para>
/// Every family's block projects its input to q [B, H, T, hd] and the current tokens' k, v [B, KV, T, hd]
/// (KV ≤ H for grouped-query attention), applies rotary embeddings to q and k at the tokens' positions, and
/// then calls <see cref="Attend"/>. The block knows nothing else about the cache or the mask: the
/// implementation decides.
/// </para>
/// <list type="bullet">
/// <item><see cref="CausalAttention"/> (the default, training and scoring): keys are exactly the current
/// tokens; query t sees keys s ≤ t that are not padding.</item>
/// <item>A paged KV cache (the generator): <see cref="Attend"/> writes k and v for that layer into
/// the cache slots of the current tokens (<c>index_copy_</c> at <c>slot = block·bs + offset</c>), gathers each
/// sequence's cached keys and values through its block table into [B, KV, Tk, hd], builds the mask
/// "key position ≤ query position and &lt; context length", and calls <see cref="Attention.ScaledDotProduct"/>.</item>
/// </list>
/// Implementations may hold state across layers of one forward (the cache) but must not change the weights.
/// </summary>
public interface IAttention
{
    /// <summary>
    /// Attention output for layer <paramref name="layer"/>. q [B, H, T, hd] and k, v [B, KV, T, hd] are the current
    /// tokens' (rotary already applied to q and k); <paramref name="scale"/> multiplies q·kᵀ (1/√hd for every family
    /// here). Returns [B, H, T, hd] in q's dtype.
    /// </summary>
    Tensor Attend(int layer, Tensor q, Tensor k, Tensor v, double scale);
}

/// <summary>
/// Plain causal self-attention over the current tokens, optionally with a padding mask [B, T] (1 = real token,
/// 0 = padding; int64, int32 or bool): query t attends to keys s ≤ t with mask[b, s] = 1. Padding queries
/// (which see no real key under left padding) get a uniform row instead of NaN, as HF's min-value masking gives;
/// their outputs are meaningless and callers mask them out.
/// </summary>
public sealed class CausalAttention(Tensor? paddingMask = null) : IAttention
{
    /// <summary>The padding mask [B, T], or null for none.</summary>
    public Tensor? PaddingMask { get; } = paddingMask;

    /// <summary>The settings a blocked mask depends on besides the padding mask: length and device.</summary>
    private readonly record struct MaskKey(long Length, Device Device);

    [ThreadStatic] private static InputMemo<MaskKey>? maskMemo;

    /// <summary>Frees this thread's memoised mask.</summary>
    internal static void ReleaseThreadMemo() => maskMemo?.Clear();

    /// <summary>
    /// Whether float32 CPU attention runs the fused causal kernel (<see cref="Functional.CausalAttention"/>): on unless
    /// <c>RLHF_CAUSAL_KERNEL=0</c>, which keeps the eager sequence (for comparisons).
    /// </summary>
    public static bool FusedEnabled { get; } = Environment.GetEnvironmentVariable("RLHF_CAUSAL_KERNEL") != "0";

    /// <summary>
    /// The kernel runs for sequences of at least this many tokens. Since its blocks became direct BLAS calls it beats eager at
    /// every length (fwd+bwd on 2 threads, kernel vs eager: T 8, 64 × 4 heads, hd 16: 0.24 vs 1.45 ms; T 24: 0.58 vs 2.25 ms;
    /// T 64, 4 × 4, hd 64: 0.35 vs 0.98 ms), but taking it below 65 tokens changes the quickstart's float rounding, and with
    /// it the one-seed trajectories its tests check: RLOO's --quick gold gain fell to +0.0305 against the test's +0.03 bar.
    /// Re-measured with the split linear kernel (round 7): without the threshold the quickstart ran in 22 s instead of 27 and
    /// every --quick gold gain cleared the tests' +0.03, but best-of-K's was only +0.037 (+0.064 with the threshold). The threshold stays until those
    /// tests are made robust across seeds (as GRPO's were).
    /// </summary>
    public const long FusedMinLength = 65;

    /// <summary>
    /// Whether <see cref="Attend"/> runs the fused kernel for these inputs: enabled, float32 on the CPU, keys of the
    /// queries' length, and at least <see cref="FusedMinLength"/> tokens.
    /// </summary>
    public static bool UsesKernel(Tensor q, Tensor k) =>
        FusedEnabled && q.Size(2) >= FusedMinLength && k.Size(2) == q.Size(2)
        && q.Dtype == ScalarType.Float32 && k.Dtype == ScalarType.Float32 && q.Device == Device.Cpu;

    /// <inheritdoc />
    public Tensor Attend(int layer, Tensor q, Tensor k, Tensor v, double scale)
    {
        using var scope = Torch.NewScope();
        long t = q.Size(2);
        if (UsesKernel(q, k))
        {
            // The fused kernel (about half the work: nothing above the diagonal), the padding mask as [B, T] keys.
            var allowed = PaddingMask is null ? null : PaddingMask.Device == Device.Cpu ? PaddingMask : PaddingMask.To(Device.Cpu);
            return Functional.CausalAttention(q, Attention.RepeatKv(k, q.Size(1)), Attention.RepeatKv(v, q.Size(1)), allowed, scale).MoveToOuter();
        }
        // The "not allowed" mask, built once for all layers of a forward (and kept while the padding mask stays equal).
        Tensor Build()
        {
            using var s = Torch.NewScope();
            return Attention.CausalMask(t, PaddingMask, q.Device).LogicalNot().MoveToOuter();        // [B|1, 1, T, T]
        }
        Tensor blocked;
        if (!Transformer.MemosActive) blocked = Build();                                              // no scope: this layer's own
        else
        {
            maskMemo ??= new InputMemo<MaskKey>();
            blocked = maskMemo.GetOrBuild(new MaskKey(t, q.Device), PaddingMask, () => [Build()])[0];
        }
        return Attention.ScaledDotProductBlocked(q, k, v, blocked, scale).MoveToOuter();
    }
}

/// <summary>Attention building blocks shared by <see cref="CausalAttention"/> and paged implementations.</summary>
public static class Attention
{
    /// <summary>
    /// Boolean "may attend" mask: [1, 1, T, T] lower-triangular, and with a padding mask [B, T] also
    /// requiring the key to be a real token: [B, 1, T, T].
    /// </summary>
    public static Tensor CausalMask(long t, Tensor? paddingMask, Device? device = null)
    {
        using var scope = Torch.NewScope();
        var causal = Torch.Ones([t, t], ScalarType.Bool, device).Tril().View(1, 1, t, t);     // [1, 1, T, T]
        if (paddingMask is null) return causal.MoveToOuter();
        if (paddingMask.Dim != 2 || paddingMask.Size(1) != t)
            throw new ArgumentException($"padding mask must be [B, {t}]; got [{string.Join(", ", paddingMask.Shape)}]", nameof(paddingMask));
        var keys = paddingMask.Ne(0).View(paddingMask.Size(0), 1, 1, t);                       // [B, 1, 1, T]
        return causal.LogicalAnd(keys).MoveToOuter();                                           // [B, 1, T, T]
    }

    /// <summary>
    /// softmax(q·kᵀ·scale, masked) · v with grouped-query heads: q [B, H, Tq, hd], k, v [B, KV, Tk, hd] with H a
    /// multiple of KV (key/value head j serves query heads j·H/KV … (j+1)·H/KV − 1, HF <c>repeat_kv</c>);
    /// <paramref name="allowed"/> a bool mask broadcastable to [B, H, Tq, Tk] or null. Softmax runs in float32
    /// (float64 for float64 inputs); masked scores are set to the float minimum, so a fully masked row is uniform.
    /// Returns [B, H, Tq, hd] in q's dtype.
    /// </summary>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? allowed, double scale)
    {
        using var scope = Torch.NewScope();
        return ScaledDotProductBlocked(q, k, v, allowed?.LogicalNot(), scale).MoveToOuter();
    }

    /// <summary>
    /// Grouped-query keys or values [B, KV, T, hd] repeated to <paramref name="heads"/> query heads [B, H, T, hd] (key/value
    /// head j serves query heads j·H/KV … (j+1)·H/KV − 1); the input itself when KV = H.
    /// </summary>
    public static Tensor RepeatKv(Tensor kv, long heads)
    {
        long n = kv.Size(1);
        if (heads % n != 0) throw new ArgumentException($"query heads {heads} are not a multiple of key/value heads {n}");
        if (n == heads) return kv;
        // HF repeat_kv: expand a new head axis and flatten it (one copy), not repeat_interleave, whose int-repeats form
        // builds an index tensor and gathers through it (measured several times slower in libtorch 1.13).
        long b = kv.Size(0), t = kv.Size(2), hd = kv.Size(3), rep = heads / n;
        return kv.Unsqueeze(2).Expand(b, n, rep, t, hd).Reshape(b, heads, t, hd);   // [B, H, T, hd]
    }

    /// <summary>
    /// <see cref="ScaledDotProduct"/> with the complement mask: <paramref name="blocked"/> true where attention is NOT allowed
    /// (broadcastable to [B, H, Tq, Tk]), or null. The scores are scaled and masked in place: the matmul's output is not
    /// saved for backward, so autograd allows it, and it saves two [B, H, Tq, Tk] allocations per layer.
    /// </summary>
    internal static Tensor ScaledDotProductBlocked(Tensor q, Tensor k, Tensor v, Tensor? blocked, double scale)
    {
        using var scope = Torch.NewScope();
        k = RepeatKv(k, q.Size(1));
        v = RepeatKv(v, q.Size(1));
        var work = q.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var scores = q.Matmul(k.Transpose(-2, -1)).Mul_(scale);                  // [B, H, Tq, Tk]
        if (scores.Dtype != work) scores = scores.To(work);
        if (blocked is not null) scores.MaskedFill_(blocked, work == ScalarType.Float64 ? double.MinValue : float.MinValue);
        var probs = scores.Softmax(-1);
        if (probs.Dtype != q.Dtype) probs = probs.To(q.Dtype);
        return probs.Matmul(v).MoveToOuter();                                    // [B, H, Tq, hd]
    }
}
