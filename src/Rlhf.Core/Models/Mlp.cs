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
        var recipe = w.Config.Recipe;
        return recipe.Mlp(w, recipe.Layer(layer), x).MoveToOuter();                                     // [B, T, D]
    }
}
