using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>The attention sub-layer of every family: the recipe's projections, rotary, <see cref="IAttention"/>, the recipe's output projection.</summary>
public static class SelfAttention
{
    /// <summary>
    /// Attention of layer <paramref name="layer"/> on normalised input x [B, T, D] at int64 positions [B, T] → [B, T, D].
    /// llama/qwen2: separate q/k/v projections (biases for qwen2), grouped-query heads, full rotary.
    /// gpt_neox: one fused projection laid out per head as [q | k | v] (hd each), rotary on the first rotary_pct·hd dims.
    /// gpt2: Conv1D c_attn (x @ W + b, W [D, 3D]) split as [q | k | v] of width D each, no rotary (learned positions).
    /// </summary>
    public static Tensor Forward(ModelWeights w, int layer, Tensor x, Tensor positions, IAttention attention)
    {
        using var scope = Torch.NewScope();
        var c = w.Config;
        var recipe = c.Recipe;
        var p = recipe.Layer(layer);
        long b = x.Size(0), t = x.Size(1), h = c.NumAttentionHeads, hd = c.HeadDim;
        var (q, k, v) = recipe.QueryKeyValue(w, p, x);                                                  // [B, H, T, hd], [B, KV, T, hd] ×2
        if (c.RotaryDim > 0)
        {
            var (cos, sin) = Rotary.CachedTables(positions, c, q.Dtype);                                // [B, 1, T, r], once per forward
            q = Rotary.Apply(q, cos, sin);
            k = Rotary.Apply(k, cos, sin);
        }
        var y = attention.Attend(layer, q, k, v, 1.0 / Math.Sqrt(hd));                                  // [B, H, T, hd]
        y = y.Transpose(1, 2).Reshape(b, t, h * hd);                                                    // [B, T, H·hd]
        return recipe.AttentionOutput(w, p, y).MoveToOuter();                                           // [B, T, D]
    }
}
