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
    /// <summary>
    /// Frees the calling thread's memoised forward inputs (rotary tables, causal mask — kept across forwards over equal
    /// inputs). A thread that ran forwards calls this before it ends, else its last entry stays allocated.
    /// </summary>
    public static void ReleaseThreadMemos()
    {
        Rotary.ReleaseThreadMemo();
        CausalAttention.ReleaseThreadMemo();
    }

    /// <summary>Disposing it calls <see cref="ReleaseThreadMemos"/>: a training run holds one on its thread for its duration.</summary>
    public readonly struct ThreadMemoRelease : IDisposable
    {
        /// <summary>Frees the calling thread's memoised forward inputs.</summary>
        public void Dispose() => ReleaseThreadMemos();
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
