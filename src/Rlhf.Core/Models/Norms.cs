using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>The normalisation layers of the families.</summary>
public static class Norms
{
    /// <summary>
    /// RMSNorm as HF Llama computes it: in float32, x · rsqrt(mean(x²) + eps), cast back to the input dtype,
    /// then scaled by <paramref name="weight"/> [D]. x [.., D] → [.., D]. Float32/float64 on the CPU run the fused kernel
    /// (<see cref="Functional.RmsNorm"/>, see <see cref="FusedLayers"/>); other dtypes and devices the eager ops.
    /// </summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        if (FusedLayers.Fit(x, weight)) return Functional.RmsNorm(x, weight, eps);
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

/// <summary>
/// Whether RMSNorm, rotary and SwiGLU's product run their fused CPU kernels (<see cref="Functional.RmsNorm"/>,
/// <see cref="Functional.Rotary"/>, <see cref="Functional.SiluMul"/>):
/// on unless <c>RLHF_FUSED_KERNELS=0</c>, which keeps the eager ops (for comparisons). The kernels take float32 and float64
/// CPU tensors; anything else runs the eager ops.
/// </summary>
public static class FusedLayers
{
    /// <summary>False when <c>RLHF_FUSED_KERNELS=0</c>.</summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("RLHF_FUSED_KERNELS") != "0";

    /// <summary>Enabled, and <paramref name="x"/> and <paramref name="table"/> are CPU tensors of one float32/float64 dtype.</summary>
    public static bool Fit(Tensor x, Tensor table) =>
        Enabled && x.Dtype is ScalarType.Float32 or ScalarType.Float64 && table.Dtype == x.Dtype
        && x.Device == Device.Cpu && table.Device == Device.Cpu;
}
