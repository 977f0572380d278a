using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Rotary position embeddings (RoFormer; HF's "rotate_half" convention, used by Llama, Qwen2 and GPT-NeoX):
/// frequencies f_j = θ^(-2j/r), j &lt; r/2, angles p·f_j duplicated to [r], and
/// x_rot = x·cos + rotate_half(x)·sin with rotate_half([a, b]) = [-b, a]; only the first r dims of each head rotate.
/// Scaled variants (<see cref="RopeScaling"/>) change the frequencies and may multiply cos and sin by an attention factor.
/// </summary>
public static class Rotary
{
    /// <summary>
    /// The unscaled inverse frequencies [r/2] for rotary width r and base θ. HF computes
    /// <c>1 / base ** (arange(0, r, 2).float() / r)</c> in float32; the float32 rounding is kept.
    /// </summary>
    public static double[] DefaultInverseFrequencies(long rotaryDim, double theta)
    {
        var inv = new double[rotaryDim / 2];
        for (var j = 0; j < inv.Length; j++)
        {
            var exponent = (float)(2 * j) / (float)rotaryDim;
            inv[j] = (float)(1.0 / Math.Pow(theta, exponent));
        }
        return inv;
    }

    /// <summary>
    /// Inverse frequencies [r/2] and the cos/sin attention factor for rotary width r, base θ and optional scaling, as
    /// transformers 5.x <c>modeling_rope_utils.py</c> computes them (<c>_compute_{linear_scaling,dynamic_ntk,yarn,llama3}_parameters</c>).
    /// <paramref name="maxPositionEmbeddings"/> is the config's <c>max_position_embeddings</c> (dynamic only) and
    /// <paramref name="sequenceLength"/> the longest position of the call + 1 (dynamic only; shorter than
    /// max_position_embeddings means unscaled).
    /// </summary>
    public static (double[] InverseFrequencies, double AttentionFactor) Frequencies(
        long rotaryDim, double theta, RopeScaling? scaling, long maxPositionEmbeddings = 0, long sequenceLength = 0)
    {
        switch (scaling)
        {
            case null:
                return (DefaultInverseFrequencies(rotaryDim, theta), 1.0);
            case LinearRopeScaling s:
                // "applying scaling to the inverse frequencies is equivalent" to dividing positions (HF comment).
                return (DefaultInverseFrequencies(rotaryDim, theta).Select(f => (double)(float)(f / s.Factor)).ToArray(), 1.0);
            case DynamicRopeScaling s:
            {
                if (maxPositionEmbeddings <= 0) throw new ArgumentException("dynamic rope scaling needs max_position_embeddings", nameof(maxPositionEmbeddings));
                var len = Math.Max(sequenceLength, maxPositionEmbeddings);
                var r = (double)rotaryDim;
                var grown = theta * Math.Pow(s.Factor * len / maxPositionEmbeddings - (s.Factor - 1), r / (r - 2));
                return (DefaultInverseFrequencies(rotaryDim, grown), 1.0);
            }
            case YarnRopeScaling s:
                return (YarnInverseFrequencies(rotaryDim, theta, s), s.EffectiveAttentionFactor);
            case Llama3RopeScaling s:
                return (Llama3InverseFrequencies(rotaryDim, theta, s), 1.0);
            default:
                throw new ArgumentException($"unsupported rope scaling {scaling.RopeType}", nameof(scaling));
        }
    }

    private static double[] Llama3InverseFrequencies(long rotaryDim, double theta, Llama3RopeScaling s)
    {
        var inv = DefaultInverseFrequencies(rotaryDim, theta);
        var lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        var highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (var j = 0; j < inv.Length; j++)
        {
            var wavelen = 2 * Math.PI / inv[j];
            if (wavelen < highWavelen) continue;                                   // high frequency: unchanged
            if (wavelen > lowWavelen) { inv[j] /= s.Factor; continue; }            // low frequency: divided
            var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
            inv[j] = (1 - smooth) * inv[j] / s.Factor + smooth * inv[j];
        }
        return inv;
    }

    private static double[] YarnInverseFrequencies(long rotaryDim, double theta, YarnRopeScaling s)
    {
        var dim = (double)rotaryDim;
        // Dim index that completes `rotations` turns over the original context (YaRN eq. 17; HF find_correction_dim).
        double CorrectionDim(double rotations) => dim * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = CorrectionDim(s.BetaFast), high = CorrectionDim(s.BetaSlow);
        if (s.Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high) high += 0.001;                                            // HF: "prevent singularity"
        var inv = new double[rotaryDim / 2];
        for (var j = 0; j < inv.Length; j++)
        {
            var posFreq = (float)Math.Pow(theta, (float)(2 * j) / (float)rotaryDim);
            var extrapolated = (float)(1.0 / posFreq);
            var interpolated = (float)(1.0 / (float)(s.Factor * posFreq));
            var ramp = (float)Math.Clamp((j - low) / (high - low), 0, 1);          // 0 → keep (extrapolate), 1 → interpolate
            var keep = 1 - ramp;
            inv[j] = (float)(interpolated * (1 - keep) + extrapolated * keep);
        }
        return inv;
    }

    /// <summary>
    /// cos and sin tables for int64 positions [B, T] under <paramref name="config"/>'s rotary settings: each [B, 1, T, r]
    /// in <paramref name="dtype"/>, ready to broadcast over heads. Dynamic scaling reads the longest position of this call
    /// (one host read), as HF's <c>dynamic_rope_update</c> reads <c>max(position_ids) + 1</c>.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, ModelConfig config, ScalarType dtype)
    {
        var seqLen = config.RopeScaling is DynamicRopeScaling && positions.NumEl > 0 ? positions.Max().ItemLong() + 1 : 0;
        var (inv, attentionFactor) = Frequencies(config.RotaryDim, config.RopeTheta, config.RopeScaling, config.MaxPositionEmbeddings, seqLen);
        return Tables(positions, inv, attentionFactor, dtype);
    }

    /// <summary>The settings a rotary table depends on besides the positions: frequencies, attention factor, dtype, device.</summary>
    private sealed record TableKey(double[] InverseFrequencies, double AttentionFactor, ScalarType Dtype, Device Device) : IEquatable<TableKey>
    {
        public bool Equals(TableKey? other) => other is not null && AttentionFactor == other.AttentionFactor && Dtype == other.Dtype &&
                                               Device == other.Device && InverseFrequencies.AsSpan().SequenceEqual(other.InverseFrequencies);

        public override int GetHashCode() => HashCode.Combine(InverseFrequencies.Length, AttentionFactor, Dtype, Device);
    }

    [ThreadStatic] private static InputMemo<TableKey>? tableMemo;

    /// <summary>Frees this thread's memoised tables.</summary>
    internal static void ReleaseThreadMemo() => tableMemo?.Clear();

    /// <summary>
    /// <see cref="Tables(Tensor, ModelConfig, ScalarType)"/> built once for all layers of a forward and kept across forwards
    /// while the positions (by contents on CPU), frequencies, dtype and device stay the same, inside a
    /// <see cref="Transformer.KeepForwardInputs"/> scope: each [B, 1, T, r]. Inside a scope the tables belong to a per-thread
    /// memo (use them, do not dispose them); outside one they are built afresh in the caller's tensor scope.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) CachedTables(Tensor positions, ModelConfig config, ScalarType dtype)
    {
        var seqLen = config.RopeScaling is DynamicRopeScaling && positions.NumEl > 0 ? positions.Max().ItemLong() + 1 : 0;
        var (inv, attentionFactor) = Frequencies(config.RotaryDim, config.RopeTheta, config.RopeScaling, config.MaxPositionEmbeddings, seqLen);
        if (!Transformer.MemosActive) return Tables(positions, inv, attentionFactor, dtype);   // no scope: this layer's own
        tableMemo ??= new InputMemo<TableKey>();
        var t = tableMemo.GetOrBuild(new TableKey(inv, attentionFactor, dtype, positions.Device), positions, () =>
        {
            var (cos, sin) = Tables(positions, inv, attentionFactor, dtype);
            return [cos, sin];
        });
        return (t[0], t[1]);
    }

    /// <summary>
    /// cos and sin tables for int64 positions [B, T] from inverse frequencies [r/2]: each [B, 1, T, r] in <paramref name="dtype"/>,
    /// multiplied by <paramref name="attentionFactor"/> (YaRN). Angles are computed in float32 (float64 when dtype is float64), as HF does.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, double[] inverseFrequencies, double attentionFactor, ScalarType dtype)
    {
        using var scope = Torch.NewScope();
        var work = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var inv = Torch.From<double>(inverseFrequencies, null, positions.Device).To(work);   // [r/2], where the positions are
        var freqs = positions.To(work).Unsqueeze(-1) * inv;                              // [B, T, r/2]
        var emb = Torch.Cat([freqs, freqs], -1).Unsqueeze(1);                            // [B, 1, T, r]
        Tensor cos = emb.Cos(), sin = emb.Sin();
        if (attentionFactor != 1.0) { cos = cos * attentionFactor; sin = sin * attentionFactor; }
        return (cos.To(dtype).MoveToOuter(), sin.To(dtype).MoveToOuter());
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
    /// Rotates the first r = cos.Size(-1) dims of x [B, H, T, hd] by the tables from <see cref="Tables(Tensor, ModelConfig, ScalarType)"/>; the
    /// remaining hd - r dims pass through (GPT-NeoX partial rotary). Returns [B, H, T, hd]. A whole-head rotation of
    /// float32/float64 CPU tensors runs the fused kernel (<see cref="Functional.Rotary"/>, see <see cref="FusedLayers"/>).
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var r = cos.Size(-1);
        var hd = x.Size(-1);
        if (r == hd && x.Dim == 4 && cos.Dim == 4 && FusedLayers.Fit(x, cos) && sin.Dtype == cos.Dtype && !cos.RequiresGrad && !sin.RequiresGrad)
            return Functional.Rotary(x, cos, sin);                                                 // the whole head: one fused pass
        using var scope = Torch.NewScope();
        var rot = r == hd ? x : x.Narrow(-1, 0, r);
        var rotated = rot * cos + RotateHalf(rot) * sin;
        var result = r == hd ? rotated : Torch.Cat([rotated, x.Narrow(-1, r, hd - r)], -1);
        return result.MoveToOuter();
    }
}
