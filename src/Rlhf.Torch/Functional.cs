using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary>How a loss reduces over elements (libtorch's <c>at::Reduction</c>).</summary>
public enum Reduction { None = 0, Mean = 1, Sum = 2 }

/// <summary>Neural-network functions (<c>torch.nn.functional</c>).</summary>
public static class Functional
{
    /// <summary>
    /// x @ wᵀ + b. x [.., in], w [out, in], b [out] or null. Float32 CPU training products (autograd recording, 2+
    /// intra-op threads, 48+ rows per thread) run on native/src/linear.cpp's kernel where <see cref="LinearKernelAvailable"/>:
    /// the forward split by rows and the backward's dx beside dw, each part one single-threaded BLAS call, instead of
    /// one BLAS call whose threads wait for one another; the same products, bits independent of the thread count.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor w, Tensor? b = null) => Tensor.Wrap(N.rt_linear(x.H, w.H, Tensor.Opt(b)));

    /// <summary>
    /// Whether <see cref="Linear"/> uses its split kernel for training products: the shim built with OpenMP (Debian's
    /// libtorch), the loaded BLAS OpenBLAS's OpenMP build, and not turned off with <c>RLHF_LINEAR_KERNEL=0</c>.
    /// </summary>
    public static bool LinearKernelAvailable => N.rt_linear_kernel_available() != 0;

    /// <summary>Rows of weight [V, D] picked by int64 ids [..] → [.., D].</summary>
    public static Tensor Embedding(Tensor weight, Tensor ids) => Tensor.Wrap(N.rt_embedding(weight.H, ids.H));

    /// <summary>Layer normalisation over the trailing <paramref name="normalizedShape"/> dims.</summary>
    public static unsafe Tensor LayerNorm(Tensor x, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps = 1e-5)
    {
        fixed (long* p = normalizedShape) return Tensor.Wrap(N.rt_layer_norm(x.H, p, normalizedShape.Length, Tensor.Opt(weight), Tensor.Opt(bias), eps));
    }

    /// <summary>Cross-entropy of logits [N, C] against int64 targets [N]; targets equal to ignoreIndex are skipped.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, long ignoreIndex = -100, Reduction reduction = Reduction.Mean, double labelSmoothing = 0) =>
        Tensor.Wrap(N.rt_cross_entropy(logits.H, target.H, ignoreIndex, (int)reduction, labelSmoothing));

    /// <summary>Negative log-likelihood of log-probabilities [N, C] at int64 targets [N].</summary>
    public static Tensor NllLoss(Tensor logProbs, Tensor target, long ignoreIndex = -100, Reduction reduction = Reduction.Mean) =>
        Tensor.Wrap(N.rt_nll_loss(logProbs.H, target.H, ignoreIndex, (int)reduction));

    /// <summary>Mean squared error.</summary>
    public static Tensor MseLoss(Tensor a, Tensor b, Reduction reduction = Reduction.Mean) => Tensor.Wrap(N.rt_mse_loss(a.H, b.H, (int)reduction));

    /// <summary>Draws <paramref name="samples"/> indices per row of non-negative weights [.., C].</summary>
    public static Tensor Multinomial(Tensor probs, long samples, bool replacement = false, Generator? generator = null) =>
        Tensor.Wrap(N.rt_multinomial(probs.H, samples, replacement ? 1 : 0, Generator.H(generator)));

    /// <summary>Inverted dropout with an explicit generator; identity when not training.</summary>
    public static Tensor Dropout(Tensor x, double p, bool training, Generator? generator = null) =>
        Tensor.Wrap(N.rt_dropout(x.H, p, training ? 1 : 0, Generator.H(generator)));

    /// <summary>One-hot encoding of int64 ids → int64 [.., classes].</summary>
    public static Tensor OneHot(Tensor ids, long classes) => Tensor.Wrap(N.rt_one_hot(ids.H, classes));

    /// <summary>
    /// Fused paged decode attention (vLLM's paged attention on the CPU; native/src/attention.cpp): for each sequence b,
    /// key/value head j and query row m, softmax(scale · q·kᵀ) · v over the sequence's cached positions, keys and values
    /// read straight from the cache rows, with no gather and no per-sequence matmul. Float32 CPU tensors, no autograd.
    /// </summary>
    /// <param name="q">[B, KV, M, hd] contiguous.</param>
    /// <param name="kRows">[R, hd]: the key cache's rows (slot · KV + head).</param>
    /// <param name="vRows">[R, hd]: the value cache's rows.</param>
    /// <param name="rows">[B, KV, C] int64: the cache row of each key position.</param>
    /// <param name="blocked">[B, Q, C] bool, Q dividing M: query row m uses blocked[b, m % Q]; true = not attended.</param>
    /// <param name="scale">Score scale (1/√hd).</param>
    /// <returns>[B, KV, M, hd].</returns>
    public static Tensor PagedDecodeAttention(Tensor q, Tensor kRows, Tensor vRows, Tensor rows, Tensor blocked, double scale) =>
        Tensor.Wrap(N.rt_paged_decode_attention(q.H, kRows.H, vRows.H, rows.H, blocked.H, scale));

    /// <summary>
    /// Fused causal self-attention with autograd, for training on the CPU (native/src/attention.cpp): the eager sequence
    /// softmax(masked(scale · q·kᵀ)) · v run per (batch, head) on one thread each, in row blocks that stop at the diagonal,
    /// so about half of the scores and products are never computed; backward likewise. Query t attends keys s ≤ t that
    /// <paramref name="keyAllowed"/> allows; a query with no allowed key gets a uniform row over all T keys and no
    /// gradient to q or k, as eager <c>masked_fill(lowest)</c> + softmax gives. Float32 CPU tensors.
    /// </summary>
    /// <param name="q">[B, H, T, hd].</param>
    /// <param name="k">[B, H, T, hd] (grouped key/value heads repeated to H).</param>
    /// <param name="v">[B, H, T, hd].</param>
    /// <param name="keyAllowed">[B, T], nonzero = a real key (a padding mask), or null for none.</param>
    /// <param name="scale">Score scale (1/√hd).</param>
    /// <returns>[B, H, T, hd].</returns>
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v, Tensor? keyAllowed, double scale) =>
        Tensor.Wrap(N.rt_causal_attention(q.H, k.H, v.H, Tensor.Opt(keyAllowed), scale));

    /// <summary>
    /// Fused RMSNorm with autograd (native/src/fused.cpp): w · (x · r) with r = 1/√(mean(x²) + eps) over the last dim,
    /// HF Llama's order of rounding, in one pass per row (backward one more) instead of eager's chain of whole-tensor ops.
    /// The weight's gradient sums fixed chunks of rows in order, so results do not depend on the thread count.
    /// Float32 or float64 CPU tensors of one dtype.
    /// </summary>
    /// <param name="x">[.., D].</param>
    /// <param name="weight">[D].</param>
    /// <param name="eps">Added to the mean square.</param>
    /// <returns>[.., D], contiguous.</returns>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps) => Tensor.Wrap(N.rt_rms_norm(x.H, weight.H, eps));

    /// <summary>
    /// Fused rotary position embedding with autograd (native/src/fused.cpp): x ⊙ cos + rotate_half(x) ⊙ sin over the
    /// whole head, rotate_half([a, b]) = [−b, a] — eager's rounding, in one pass per row. x may be a transposed view
    /// (unit stride in hd); the result is contiguous. The tables get no gradient and must not require one.
    /// Float32 or float64 CPU tensors of one dtype.
    /// </summary>
    /// <param name="x">[B, H, T, hd], hd even.</param>
    /// <param name="cos">[B|1, 1, T, hd].</param>
    /// <param name="sin">[B|1, 1, T, hd].</param>
    /// <returns>[B, H, T, hd], contiguous.</returns>
    public static Tensor Rotary(Tensor x, Tensor cos, Tensor sin) => Tensor.Wrap(N.rt_rotary(x.H, cos.H, sin.H));

    /// <summary>
    /// Fused SwiGLU product with autograd (native/src/fused.cpp): silu(gate) · up with silu(g) = g / (1 + exp(−g)), one
    /// pass forward and one backward instead of eager's silu, mul and their three backward ops. Float32 uses an AVX2 exp
    /// (within 2 ulp of expf) where the CPU has it. Float32 or float64 CPU tensors of one dtype and shape.
    /// </summary>
    public static Tensor SiluMul(Tensor gate, Tensor up) => Tensor.Wrap(N.rt_silu_mul(gate.H, up.H));
}
