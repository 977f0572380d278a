namespace Rlhf.Core.Models;

/// <summary>
/// Rotary frequency scaling: a Hugging Face <c>rope_type</c> other than <c>"default"</c>, with its parameters
/// (transformers 5.x <c>modeling_rope_utils.py</c>, <c>_compute_*_parameters</c>). <see cref="Rotary.Frequencies"/>
/// turns one into inverse frequencies and an attention factor.
/// </summary>
public abstract record RopeScaling
{
    /// <summary>The <c>rope_type</c> values Rlhf implements (<c>default</c> is no scaling).</summary>
    public static readonly IReadOnlyList<string> SupportedTypes = ["default", "linear", "dynamic", "yarn", "llama3"];

    /// <summary>The HF <c>rope_type</c> string of this scaling.</summary>
    public abstract string RopeType { get; }

    /// <summary>The scaling factor (every type has one).</summary>
    public abstract double ScalingFactor { get; }
}

/// <summary>
/// <c>rope_type: "linear"</c> (position interpolation, kaiokendev): every inverse frequency divided by <paramref name="Factor"/>,
/// i.e. positions divided by it (HF <c>_compute_linear_scaling_rope_parameters</c>).
/// </summary>
/// <param name="Factor">Positions are divided by this.</param>
public sealed record LinearRopeScaling(double Factor) : RopeScaling
{
    /// <inheritdoc />
    public override string RopeType => "linear";
    /// <inheritdoc />
    public override double ScalingFactor => Factor;
}

/// <summary>
/// <c>rope_type: "dynamic"</c> (dynamic NTK, bloc97/emozilla): for a call whose longest position is L − 1, with
/// L' = max(L, max_position_embeddings), the base grows to θ·(factor·L'/max_position_embeddings − (factor − 1))^(r/(r−2)),
/// so nothing changes up to max_position_embeddings (HF <c>_compute_dynamic_ntk_parameters</c> with <c>dynamic_rope_update</c>).
/// </summary>
/// <param name="Factor">The NTK factor.</param>
public sealed record DynamicRopeScaling(double Factor) : RopeScaling
{
    /// <inheritdoc />
    public override string RopeType => "dynamic";
    /// <inheritdoc />
    public override double ScalingFactor => Factor;
}

/// <summary>
/// <c>rope_type: "yarn"</c> (YaRN, arXiv 2309.00071; HF <c>_compute_yarn_parameters</c>): inverse frequencies blend the
/// extrapolated θ^(−2j/r) and the interpolated θ^(−2j/r)/factor by a linear ramp between the dims that complete
/// <paramref name="BetaFast"/> and <paramref name="BetaSlow"/> rotations over the original context, and cos/sin are
/// multiplied by an attention factor.
/// </summary>
/// <param name="Factor">Context extension factor.</param>
/// <param name="OriginalMaxPositionEmbeddings">Pretraining context length the ramp is measured against.</param>
/// <param name="AttentionFactor">cos/sin multiplier; null means HF's default from factor, mscale and mscale_all_dim.</param>
/// <param name="BetaFast">Rotations bounding extrapolation (HF: 32 when absent or 0).</param>
/// <param name="BetaSlow">Rotations bounding interpolation (HF: 1 when absent or 0).</param>
/// <param name="Mscale">DeepSeek-style numerator scale of the default attention factor (used only with <paramref name="MscaleAllDim"/>).</param>
/// <param name="MscaleAllDim">DeepSeek-style denominator scale of the default attention factor.</param>
/// <param name="Truncate">Whether the ramp bounds are floored/ceiled to whole dims (HF default true; gpt-oss sets false).</param>
public sealed record YarnRopeScaling(
    double Factor, long OriginalMaxPositionEmbeddings, double? AttentionFactor = null, double BetaFast = 32, double BetaSlow = 1,
    double? Mscale = null, double? MscaleAllDim = null, bool Truncate = true) : RopeScaling
{
    /// <inheritdoc />
    public override string RopeType => "yarn";
    /// <inheritdoc />
    public override double ScalingFactor => Factor;

    /// <summary>
    /// The cos/sin multiplier: <see cref="AttentionFactor"/> when given, else mscale(factor, Mscale) / mscale(factor, MscaleAllDim)
    /// when both are non-zero, else mscale(factor, 1), with mscale(s, m) = 0.1·m·ln s + 1 for s &gt; 1 and 1 otherwise.
    /// </summary>
    public double EffectiveAttentionFactor
    {
        get
        {
            if (AttentionFactor is { } a) return a;
            static double M(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
            return Mscale is { } ms && ms != 0 && MscaleAllDim is { } md && md != 0 ? M(Factor, ms) / M(Factor, md) : M(Factor, 1);
        }
    }
}

/// <summary>
/// <c>rope_type: "llama3"</c> (Llama 3.1; HF <c>_compute_llama3_parameters</c>): wavelengths longer than
/// original/low_freq_factor are divided by factor, shorter than original/high_freq_factor kept, smooth in between.
/// </summary>
/// <param name="Factor">Wavelengths longer than the low-frequency cut are divided by this (8 in Llama 3.1).</param>
/// <param name="LowFreqFactor">Low-frequency cut = original context / this (1 in Llama 3.1).</param>
/// <param name="HighFreqFactor">High-frequency cut = original context / this (4 in Llama 3.1).</param>
/// <param name="OriginalMaxPositionEmbeddings">Context length the model was pretrained with (8192 in Llama 3.1).</param>
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, long OriginalMaxPositionEmbeddings) : RopeScaling
{
    /// <inheritdoc />
    public override string RopeType => "llama3";
    /// <inheritdoc />
    public override double ScalingFactor => Factor;
}
