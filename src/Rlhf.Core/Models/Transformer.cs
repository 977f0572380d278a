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
    /// Positions for a (left- or right-) padded batch, as TRL computes them: cumsum(mask) − mask, so each row's first
    /// real token is at 0 and padding sits at 0. mask [B, T] (1 = real) → int64 [B, T].
    /// </summary>
    public static Tensor PositionsFromMask(Tensor attentionMask)
    {
        using var scope = Torch.NewScope();
        // In float64 (exact for any realistic T): the binding's integer subtraction passes a floating alpha, which libtorch rejects.
        var m = attentionMask.To(ScalarType.Float64);
        return (m.Cumsum(1) - m).To(ScalarType.Int64).MoveToOuter();
    }

    /// <summary>Input embeddings for int64 ids [B, T] at positions [B, T] → [B, T, D] (gpt2 adds its learned position table).</summary>
    public static Tensor Embed(ModelWeights w, Tensor ids, Tensor positions)
    {
        using var scope = Torch.NewScope();
        var x = Functional.Embedding(w[WeightNames.Embedding(w.Config)], ids);                        // [B, T, D]
        if (w.Config.Family == ModelFamily.Gpt2)
        {
            var maxPos = w.Config.MaxPositionEmbeddings;
            if (positions.NumEl > 0 && positions.Max().ItemLong() >= maxPos)
                throw new ArgumentException($"gpt2 positions must be < n_positions {maxPos}; got {positions.Max().ItemLong()}", nameof(positions));
            x = x + Functional.Embedding(w["transformer.wpe.weight"], positions);                      // [B, T, D]
        }
        return x.MoveToOuter();
    }

    /// <summary>
    /// Transformer block <paramref name="layer"/>: hidden [B, T, D] at positions [B, T] → [B, T, D].
    /// Sequential families (llama, qwen2, gpt2, gpt_neox without parallel residual):
    /// x = x + attn(norm1(x)); x = x + mlp(norm2(x)). gpt_neox with use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)).
    /// </summary>
    public static Tensor Block(ModelWeights w, int layer, Tensor hidden, Tensor positions, IAttention attention)
    {
        using var scope = Torch.NewScope();
        var c = w.Config;
        if (layer < 0 || layer >= c.NumHiddenLayers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"model has {c.NumHiddenLayers} layers");
        var p = WeightNames.Layer(c, layer);
        var x = hidden;
        Tensor result;
        switch (c.Family)
        {
            case ModelFamily.Llama:
            case ModelFamily.Qwen2:
                x = x + SelfAttention.Forward(w, layer, Norms.RmsNorm(x, w[p + "input_layernorm.weight"], c.RmsNormEps), positions, attention);
                result = x + Mlp.Forward(w, layer, Norms.RmsNorm(x, w[p + "post_attention_layernorm.weight"], c.RmsNormEps));
                break;
            case ModelFamily.GptNeox:
            {
                var ln1 = Norms.LayerNorm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], c.LayerNormEps);
                var attn = SelfAttention.Forward(w, layer, ln1, positions, attention);
                if (c.UseParallelResidual)
                    result = x + attn + Mlp.Forward(w, layer, Norms.LayerNorm(x, w[p + "post_attention_layernorm.weight"], w[p + "post_attention_layernorm.bias"], c.LayerNormEps));
                else
                {
                    x = x + attn;
                    result = x + Mlp.Forward(w, layer, Norms.LayerNorm(x, w[p + "post_attention_layernorm.weight"], w[p + "post_attention_layernorm.bias"], c.LayerNormEps));
                }
                break;
            }
            case ModelFamily.Gpt2:
                x = x + SelfAttention.Forward(w, layer, Norms.LayerNorm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], c.LayerNormEps), positions, attention);
                result = x + Mlp.Forward(w, layer, Norms.LayerNorm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], c.LayerNormEps));
                break;
            default: throw new ArgumentOutOfRangeException(nameof(w), c.Family, "unknown model family");
        }
        return result.MoveToOuter();
    }

    /// <summary>The final norm: hidden [B, T, D] → [B, T, D] (RMSNorm model.norm, or LayerNorm final_layer_norm / ln_f).</summary>
    public static Tensor FinalNorm(ModelWeights w, Tensor hidden)
    {
        var c = w.Config;
        return c.Family switch
        {
            ModelFamily.Llama or ModelFamily.Qwen2 => Norms.RmsNorm(hidden, w["model.norm.weight"], c.RmsNormEps),
            ModelFamily.GptNeox => Norms.LayerNorm(hidden, w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"], c.LayerNormEps),
            ModelFamily.Gpt2 => Norms.LayerNorm(hidden, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c.LayerNormEps),
            _ => throw new ArgumentOutOfRangeException(nameof(w), c.Family, "unknown model family"),
        };
    }

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
