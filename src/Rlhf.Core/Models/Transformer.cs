using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The decoder-only transformer as pure functions of (weights, inputs). <see cref="Forward"/> runs the whole
/// model; the per-layer entry points (<see cref="Embed"/>, <see cref="Block"/>, <see cref="FinalNorm"/>,
/// <see cref="LmHead"/>) let an engine run it layer by layer (ZeRO-3 gathers, activation checkpointing) and
/// compose to exactly <see cref="Forward"/>. Nothing here owns or mutates a parameter.
/// </summary>
public static class Transformer
{
    [ThreadStatic] private static int memoDepth;

    /// <summary>True inside a <see cref="KeepForwardInputs"/> scope on this thread: rotary tables and masks are then memoised.</summary>
    internal static bool MemosActive => memoDepth > 0;

    /// <summary>
    /// A scope on the calling thread inside which the rotary tables and causal masks of forwards are built once and kept
    /// while their inputs stay equal (every layer of a forward, and consecutive forwards of a run, reuse them); when the
    /// outermost scope ends they are freed, so nothing outlives the work that made it. <see cref="ForwardHidden"/> opens one
    /// per forward; a training run or a generator step opens one around many. Outside any scope each layer builds its own.
    /// </summary>
    public static ForwardInputsScope KeepForwardInputs()
    {
        memoDepth++;
        return new ForwardInputsScope(Environment.CurrentManagedThreadId);
    }

    /// <summary>The scope <see cref="KeepForwardInputs"/> returns; dispose it on the thread that opened it.</summary>
    public readonly struct ForwardInputsScope : IDisposable
    {
        private readonly int thread;

        internal ForwardInputsScope(int thread) => this.thread = thread;

        /// <summary>Leaves the scope; the outermost one frees the thread's memoised tables and masks.</summary>
        public void Dispose()
        {
            if (thread == 0) return;   // default(ForwardInputsScope): never opened
            if (thread != Environment.CurrentManagedThreadId)
                throw new InvalidOperationException("a forward-inputs scope must end on the thread that opened it");
            if (--memoDepth > 0) return;
            Rotary.ReleaseThreadMemo();
            CausalAttention.ReleaseThreadMemo();
        }
    }

    /// <summary>
    /// Positions for a (left- or right-) padded batch, as TRL computes them: cumsum(mask) − mask, so each row's first
    /// real token is at 0 and padding sits at 0. mask [B, T] (1 = real) → int64 [B, T].
    /// </summary>
    public static Tensor PositionsFromMask(Tensor attentionMask)
    {
        using var scope = Torch.NewScope();
        var m = attentionMask.Long();
        return (m.Cumsum(1) - m).MoveToOuter();
    }

    /// <summary>Input embeddings for int64 ids [B, T] at positions [B, T] → [B, T, D] (gpt2 adds its learned position table).</summary>
    public static Tensor Embed(ModelWeights w, Tensor ids, Tensor positions)
    {
        using var scope = Torch.NewScope();
        return w.Config.Recipe.Embed(w, ids, positions).MoveToOuter();                             // [B, T, D]
    }

    /// <summary>
    /// Transformer block <paramref name="layer"/>: hidden [B, T, D] at positions [B, T] → [B, T, D], as the family's recipe
    /// writes it. Sequential families (llama, qwen2, gpt2, gpt_neox without parallel residual):
    /// x = x + attn(norm1(x)); x = x + mlp(norm2(x)). gpt_neox with use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)).
    /// </summary>
    public static Tensor Block(ModelWeights w, int layer, Tensor hidden, Tensor positions, IAttention attention)
    {
        using var scope = Torch.NewScope();
        var c = w.Config;
        if (layer < 0 || layer >= c.NumHiddenLayers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"model has {c.NumHiddenLayers} layers");
        return c.Recipe.Block(w, layer, c.Recipe.Layer(layer), hidden, positions, attention).MoveToOuter();
    }

    /// <summary>The final norm: hidden [B, T, D] → [B, T, D] (RMSNorm model.norm, or LayerNorm final_layer_norm / ln_f).</summary>
    public static Tensor FinalNorm(ModelWeights w, Tensor hidden) => w.Config.Recipe.FinalNorm(w, hidden);

    /// <summary>The LM head [V, D] (the token embedding when tied). Throws for a score-head model.</summary>
    public static Tensor LmHeadWeight(ModelWeights w) =>
        w.Config.Head == ModelHead.Score ? throw new InvalidOperationException($"{w.Config.ModelType} model has a score head, not an LM head; use ScoreHead")
        : w.Config.TieWordEmbeddings ? w[WeightNames.Embedding(w.Config)] : w[WeightNames.LmHead(w.Config)];

    /// <summary>Logits of final-normed hidden states: [B, T, D] → [B, T, V] = hidden · W_headᵀ.</summary>
    public static Tensor LmHead(ModelWeights w, Tensor hidden) => Functional.Linear(hidden, LmHeadWeight(w));

    /// <summary>
    /// Final-normed hidden states [B, T, D] of int64 ids [B, T]. Positions default to <see cref="PositionsFromMask"/> of the
    /// mask (or 0…T−1 without one); attention defaults to <see cref="CausalAttention"/> over the mask [B, T] (1 = real).
    /// Pass an <see cref="IAttention"/> to attend through a KV cache instead (then give positions explicitly).
    /// </summary>
    public static Tensor ForwardHidden(ModelWeights w, Tensor ids, Tensor? positions = null, Tensor? attentionMask = null, IAttention? attention = null)
    {
        using var memos = KeepForwardInputs();                                    // rotary tables and mask once per forward
        using var scope = Torch.NewScope();
        if (ids.Dim != 2) throw new ArgumentException($"ids must be [B, T]; got [{string.Join(", ", ids.Shape)}]", nameof(ids));
        positions ??= attentionMask is not null ? PositionsFromMask(attentionMask) : Torch.Arange(ids.Size(1), device: ids.Device).Unsqueeze(0).Expand(ids.Size(0), ids.Size(1));
        attention ??= new CausalAttention(attentionMask);
        var x = Embed(w, ids, positions);                                          // [B, T, D]
        for (var i = 0; i < w.Config.NumHiddenLayers; i++) x = Block(w, i, x, positions, attention);
        return FinalNorm(w, x).MoveToOuter();                                      // [B, T, D]
    }

    /// <summary>Logits [B, T, V] of int64 ids [B, T]: <see cref="LmHead"/> of <see cref="ForwardHidden"/> (same optional arguments).</summary>
    public static Tensor Forward(ModelWeights w, Tensor ids, Tensor? positions = null, Tensor? attentionMask = null, IAttention? attention = null)
    {
        using var scope = Torch.NewScope();
        var hidden = ForwardHidden(w, ids, positions, attentionMask, attention);
        return LmHead(w, hidden).MoveToOuter();
    }
}
