using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>The attention sub-layer of each family: projections, head split, rotary, <see cref="IAttention"/>, output projection.</summary>
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
        var p = WeightNames.Layer(c, layer);
        long b = x.Size(0), t = x.Size(1), h = c.NumAttentionHeads, kvh = c.NumKeyValueHeads, hd = c.HeadDim;
        Tensor q, k, v;
        switch (c.Family)
        {
            case ModelFamily.Llama:
            case ModelFamily.Qwen2:
                q = Functional.Linear(x, w[p + "self_attn.q_proj.weight"], w.TryGet(p + "self_attn.q_proj.bias")).View(b, t, h, hd).Transpose(1, 2);      // [B, H, T, hd]
                k = Functional.Linear(x, w[p + "self_attn.k_proj.weight"], w.TryGet(p + "self_attn.k_proj.bias")).View(b, t, kvh, hd).Transpose(1, 2);    // [B, KV, T, hd]
                v = Functional.Linear(x, w[p + "self_attn.v_proj.weight"], w.TryGet(p + "self_attn.v_proj.bias")).View(b, t, kvh, hd).Transpose(1, 2);    // [B, KV, T, hd]
                break;
            case ModelFamily.GptNeox:
            {
                var qkv = Functional.Linear(x, w[p + "attention.query_key_value.weight"], w.TryGet(p + "attention.query_key_value.bias"))
                    .View(b, t, h, 3 * hd).Transpose(1, 2);                                                                                            // [B, H, T, 3hd]
                q = qkv.Narrow(-1, 0, hd); k = qkv.Narrow(-1, hd, hd); v = qkv.Narrow(-1, 2 * hd, hd);                                             // [B, H, T, hd]
                break;
            }
            case ModelFamily.Gpt2:
            {
                var qkv = Torch.Addmm(w[p + "attn.c_attn.bias"], x.Reshape(b * t, c.HiddenSize), w[p + "attn.c_attn.weight"]).View(b, t, 3, h, hd);  // [B, T, 3, H, hd]
                q = qkv.Select(2, 0).Transpose(1, 2); k = qkv.Select(2, 1).Transpose(1, 2); v = qkv.Select(2, 2).Transpose(1, 2);                  // [B, H, T, hd]
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(w), c.Family, "unknown model family");
        }
        if (c.RotaryDim > 0)
        {
            var (cos, sin) = Rotary.Tables(positions, c, q.Dtype);                                             // [B, 1, T, r]
            q = Rotary.Apply(q, cos, sin);
            k = Rotary.Apply(k, cos, sin);
        }
        var y = attention.Attend(layer, q, k, v, 1.0 / Math.Sqrt(hd));                                                                                 // [B, H, T, hd]
        y = y.Transpose(1, 2).Reshape(b, t, h * hd);                                                                                                   // [B, T, H·hd]
        var o = c.Family switch
        {
            ModelFamily.Llama or ModelFamily.Qwen2 => Functional.Linear(y, w[p + "self_attn.o_proj.weight"], w.TryGet(p + "self_attn.o_proj.bias")),
            ModelFamily.GptNeox => Functional.Linear(y, w[p + "attention.dense.weight"], w.TryGet(p + "attention.dense.bias")),
            _ => Torch.Addmm(w[p + "attn.c_proj.bias"], y.Reshape(b * t, h * hd), w[p + "attn.c_proj.weight"]).View(b, t, c.HiddenSize),
        };
        return o.MoveToOuter();                                                                                                                          // [B, T, D]
    }
}
