using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Rotary position embeddings (RoFormer; HF's "rotate_half" convention, used by Llama, Qwen2 and GPT-NeoX):
/// frequencies f_j = θ^(-2j/r), j &lt; r/2, angles p·f_j duplicated to [r], and
/// x_rot = x·cos + rotate_half(x)·sin with rotate_half([a, b]) = [-b, a]; only the first r dims of each head rotate.
/// </summary>
public static class Rotary
{
    /// <summary>
    /// The inverse frequencies [r/2] for rotary width r and base θ, with optional Llama-3 scaling
    /// (HF <c>_compute_llama3_parameters</c>: long wavelengths divided by factor, short ones kept, smooth in between).
    /// </summary>
    public static double[] InverseFrequencies(long rotaryDim, double theta, Llama3RopeScaling? scaling = null)
    {
        var n = rotaryDim / 2;
        var inv = new double[n];
        for (var j = 0; j < n; j++)
        {
            // HF computes (arange(0, r, 2).float() / r) and base ** that in float32; the float32 rounding is kept.
            var exponent = (float)(2 * j) / (float)rotaryDim;
            inv[j] = (float)(1.0 / Math.Pow(theta, exponent));
        }
        if (scaling is null) return inv;
        var lowWavelen = scaling.OriginalMaxPositionEmbeddings / scaling.LowFreqFactor;
        var highWavelen = scaling.OriginalMaxPositionEmbeddings / scaling.HighFreqFactor;
        for (var j = 0; j < n; j++)
        {
            var wavelen = 2 * Math.PI / inv[j];
            if (wavelen < highWavelen) continue;                                   // high frequency: unchanged
            if (wavelen > lowWavelen) { inv[j] /= scaling.Factor; continue; }       // low frequency: divided
            var smooth = (scaling.OriginalMaxPositionEmbeddings / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
            inv[j] = (1 - smooth) * inv[j] / scaling.Factor + smooth * inv[j];
        }
        return inv;
    }

    /// <summary>
    /// cos and sin tables for int64 positions [B, T]: each [B, 1, T, r] in <paramref name="dtype"/>, ready to broadcast over heads.
    /// Angles are computed in float32 (float64 when dtype is float64), as HF does.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, long rotaryDim, double theta, Llama3RopeScaling? scaling, ScalarType dtype)
    {
        using var scope = Torch.NewScope();
        var work = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var inv = Torch.From(InverseFrequencies(rotaryDim, theta, scaling)).To(work);    // [r/2]
        var freqs = positions.To(work).Unsqueeze(-1) * inv;                              // [B, T, r/2]
        var emb = Torch.Cat([freqs, freqs], -1).Unsqueeze(1);                            // [B, 1, T, r]
        return (emb.Cos().To(dtype).MoveToOuter(), emb.Sin().To(dtype).MoveToOuter());
    }

    /// <summary>rotate_half([a, b]) = [-b, a] over the last dim.</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        using var scope = Torch.NewScope();
        var half = x.Size(-1) / 2;
        var a = x.Narrow(-1, 0, half);
        var b = x.Narrow(-1, half, half);
        return Torch.Cat([b.Neg(), a], -1).MoveToOuter();
    }

    /// <summary>
    /// Rotates the first r = cos.Size(-1) dims of x [B, H, T, hd] by the tables from <see cref="Tables"/>; the
    /// remaining hd - r dims pass through (GPT-NeoX partial rotary). Returns [B, H, T, hd].
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = Torch.NewScope();
        var r = cos.Size(-1);
        var hd = x.Size(-1);
        var rot = r == hd ? x : x.Narrow(-1, 0, r);
        var rotated = rot * cos + RotateHalf(rot) * sin;
        var result = r == hd ? rotated : Torch.Cat([rotated, x.Narrow(-1, r, hd - r)], -1);
        return result.MoveToOuter();
    }
}
