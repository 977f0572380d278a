using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>The feed-forward sub-layer of each family.</summary>
public static class Mlp
{
    /// <summary>
    /// MLP of layer <paramref name="layer"/> on normalised x [B, T, D] → [B, T, D].
    /// llama/qwen2 (SwiGLU): down(act(gate(x)) · up(x)); gpt_neox: dense_4h_to_h(act(dense_h_to_4h(x)));
    /// gpt2 (Conv1D, weights [in, out]): c_proj(act(x @ c_fc + b)).
    /// </summary>
    public static Tensor Forward(ModelWeights w, int layer, Tensor x)
    {
        using var scope = Torch.NewScope();
        var c = w.Config;
        var p = WeightNames.Layer(c, layer);
        Tensor y;
        switch (c.Family)
        {
            case ModelFamily.Llama:
            case ModelFamily.Qwen2:
            {
                var gate = Activations.Apply(c.HiddenAct, Functional.Linear(x, w[p + "mlp.gate_proj.weight"], w.TryGet(p + "mlp.gate_proj.bias")));  // [B, T, I]
                var up = Functional.Linear(x, w[p + "mlp.up_proj.weight"], w.TryGet(p + "mlp.up_proj.bias"));                                       // [B, T, I]
                y = Functional.Linear(gate * up, w[p + "mlp.down_proj.weight"], w.TryGet(p + "mlp.down_proj.bias"));                              // [B, T, D]
                break;
            }
            case ModelFamily.GptNeox:
            {
                var hid = Activations.Apply(c.HiddenAct, Functional.Linear(x, w[p + "mlp.dense_h_to_4h.weight"], w[p + "mlp.dense_h_to_4h.bias"]));   // [B, T, I]
                y = Functional.Linear(hid, w[p + "mlp.dense_4h_to_h.weight"], w[p + "mlp.dense_4h_to_h.bias"]);                                       // [B, T, D]
                break;
            }
            case ModelFamily.Gpt2:
            {
                long b = x.Size(0), t = x.Size(1);
                var hid = Activations.Apply(c.HiddenAct, Torch.Addmm(w[p + "mlp.c_fc.bias"], x.Reshape(b * t, c.HiddenSize), w[p + "mlp.c_fc.weight"])); // [B·T, I]
                y = Torch.Addmm(w[p + "mlp.c_proj.bias"], hid, w[p + "mlp.c_proj.weight"]).View(b, t, c.HiddenSize);                                  // [B, T, D]
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(w), c.Family, "unknown model family");
        }
        return y.MoveToOuter();
    }
}
