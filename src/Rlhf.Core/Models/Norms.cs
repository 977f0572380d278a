using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>The normalisation layers of the families.</summary>
public static class Norms
{
    /// <summary>
    /// RMSNorm as HF Llama computes it: in float32, x · rsqrt(mean(x²) + eps), cast back to the input dtype,
    /// then scaled by <paramref name="weight"/> [D]. x [.., D] → [.., D].
    /// </summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        using var scope = Torch.NewScope();
        var dtype = x.Dtype;
        var h = dtype == ScalarType.Float64 ? x : x.To(ScalarType.Float32);
        var variance = h.Square().Mean(-1, keepDim: true);                 // [.., 1]
        var normed = (h * (variance + eps).Rsqrt()).To(dtype);
        return (weight * normed).MoveToOuter();
    }

    /// <summary>LayerNorm over the last dim with weight and bias [D]. x [.., D] → [.., D].</summary>
    public static Tensor LayerNorm(Tensor x, Tensor weight, Tensor bias, double eps) =>
        Functional.LayerNorm(x, [x.Size(-1)], weight, bias, eps);
}
