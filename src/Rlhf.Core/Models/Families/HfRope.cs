using System.Text.Json.Nodes;

namespace Rlhf.Core.Models;

/// <summary>
/// Rotary settings of a config.json in either layout. transformers 5.x keeps <c>rope_theta</c>, <c>rope_type</c> with its
/// scaling parameters, and <c>partial_rotary_factor</c> inside <c>rope_parameters</c>; older files keep <c>rope_theta</c>
/// and <c>rope_scaling</c> at the top level (gpt_neox: <c>rotary_emb_base</c>, <c>rotary_pct</c>). Both are read; a value
/// given in both places must agree (transformers 5.x <c>RotaryEmbeddingConfigMixin.convert_rope_params_to_dict</c> and
/// <c>standardize_rope_params</c> merge them silently, so a disagreement is refused here rather than guessed).
/// </summary>
public static class HfRope
{
    private static readonly string[] Common = ["rope_type", "type", "rope_theta", "partial_rotary_factor"];
    // The keys transformers 5.x validates per rope_type (`_validate_*_rope_parameters`); others are ignored there with a warning.
    private static readonly Dictionary<string, string[]> Known = new()
    {
        ["default"] = [],
        ["linear"] = ["factor"],
        ["dynamic"] = ["factor"],
        ["yarn"] = ["factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"],
        ["llama3"] = ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
    };

    /// <summary>
    /// θ, the rotated fraction of each head and the scaling, from <c>rope_parameters</c>, <c>rope_scaling</c> and the
    /// family's top-level keys (<paramref name="thetaKeys"/>, <paramref name="partialKeys"/>, in the order tried).
    /// </summary>
    public static (double Theta, double PartialRotaryFactor, RopeScaling? Scaling) Read(
        HfConfigReader r, string[] thetaKeys, string[] partialKeys, double defaultPartial, long maxPositionEmbeddings)
    {
        foreach (var key in new[] { "rope_parameters", "rope_scaling" })
            if (r.Node(key) is { } n && n is not JsonObject)
                r.Problems.Add($"'{key}' must be an object, got {n.ToJsonString()}");
        var theta = r.OneOf<double>(["rope_parameters.rope_theta", "rope_scaling.rope_theta", .. thetaKeys]) ?? 10000.0;
        var partial = r.OneOf<double>(["rope_parameters.partial_rotary_factor", "rope_scaling.partial_rotary_factor", .. partialKeys]) ?? defaultPartial;
        var fromParameters = Scaling(r, "rope_parameters", maxPositionEmbeddings);
        var fromScaling = Scaling(r, "rope_scaling", maxPositionEmbeddings);
        if (fromParameters is { } a && fromScaling is { } b && a.Scaling != b.Scaling)
            r.Problems.Add($"'rope_parameters' ({r.Node("rope_parameters")!.ToJsonString()}) and 'rope_scaling' ({r.Node("rope_scaling")!.ToJsonString()}) describe different rope scaling");
        return (theta, partial, (fromScaling ?? fromParameters)?.Scaling);
    }

    private sealed record Found(RopeScaling? Scaling);

    private static Found? Scaling(HfConfigReader r, string key, long maxPositionEmbeddings)
    {
        if (r.Node(key) is not JsonObject o) return null;
        var type = r.Str(key + ".rope_type") ?? r.Str(key + ".type") ?? "default";
        if (r.Str(key + ".rope_type") is { } rt && r.Str(key + ".type") is { } t && rt != t)
            r.Problems.Add($"'{key}.rope_type' = \"{rt}\" and '{key}.type' = \"{t}\" disagree");
        if (!Known.TryGetValue(type, out var known))
        {
            r.Problems.Add($"unsupported '{key}' rope_type \"{type}\" (supported: {string.Join(", ", RopeScaling.SupportedTypes)})");
            return new Found(null);
        }
        foreach (var (k, v) in o)
            if (v is JsonObject)          // transformers 5.x per-layer-type dicts ({"full_attention": {…}, "sliding_attention": {…}})
                r.Problems.Add($"'{key}.{k}': per-layer-type rope parameters are not supported");
            else if (!Common.Contains(k) && !known.Contains(k)) r.Ignored.Add($"{key}.{k}");
        double Factor()
        {
            var f = r.Optional<double>(key + ".factor");
            if (f is null) r.Problems.Add($"'{key}' of rope_type \"{type}\" needs 'factor'");
            return f ?? 1.0;
        }
        // HF standardize_rope_params: llama3/yarn take original_max_position_embeddings from a top-level key first (the Phi-3
        // convention), then from the dict, then max_position_embeddings.
        long Original() => r.OneOf<long>("original_max_position_embeddings", key + ".original_max_position_embeddings") ?? maxPositionEmbeddings;
        RopeScaling? s = type switch
        {
            "linear" => new LinearRopeScaling(Factor()),
            "dynamic" => new DynamicRopeScaling(Factor()),
            "llama3" => new Llama3RopeScaling(Factor(), Required(r, key, type, "low_freq_factor"), Required(r, key, type, "high_freq_factor"), Original()),
            "yarn" => Yarn(r, key, maxPositionEmbeddings, Original()),
            _ => null,
        };
        return new Found(s);
    }

    private static double Required(HfConfigReader r, string key, string type, string name)
    {
        var v = r.Optional<double>($"{key}.{name}");
        if (v is null) r.Problems.Add($"'{key}' of rope_type \"{type}\" needs '{name}'");
        return v ?? 1.0;
    }

    private static YarnRopeScaling Yarn(HfConfigReader r, string key, long maxPositionEmbeddings, long original)
    {
        // HF _compute_yarn_parameters: a null factor means max_position_embeddings / original (DeepSeek-V3); a missing or zero
        // beta means the paper's 32 / 1 (`get("beta_fast") or 32`).
        var o = (JsonObject)r.Node(key)!;
        if (!o.ContainsKey("factor")) r.Problems.Add($"'{key}' of rope_type \"yarn\" needs 'factor'");
        var factor = r.Optional<double>(key + ".factor") ?? (double)maxPositionEmbeddings / original;
        var betaFast = r.Optional<double>(key + ".beta_fast") is { } bf && bf != 0 ? bf : 32;
        var betaSlow = r.Optional<double>(key + ".beta_slow") is { } bs && bs != 0 ? bs : 1;
        return new YarnRopeScaling(factor, original, r.Optional<double>(key + ".attention_factor"), betaFast, betaSlow,
            r.Optional<double>(key + ".mscale"), r.Optional<double>(key + ".mscale_all_dim"), r.Get(key + ".truncate", true));
    }

    /// <summary>The scaling as a <c>rope_scaling</c>/<c>rope_parameters</c> object (without θ), or null for none.</summary>
    public static JsonObject? ScalingObject(RopeScaling? scaling)
    {
        if (scaling is null) return null;
        var o = new JsonObject { ["rope_type"] = scaling.RopeType, ["factor"] = scaling.ScalingFactor };
        switch (scaling)
        {
            case Llama3RopeScaling s:
                o["low_freq_factor"] = s.LowFreqFactor;
                o["high_freq_factor"] = s.HighFreqFactor;
                o["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings;
                break;
            case YarnRopeScaling s:
                o["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings;
                if (s.AttentionFactor is { } af) o["attention_factor"] = af;
                o["beta_fast"] = s.BetaFast;
                o["beta_slow"] = s.BetaSlow;
                if (s.Mscale is { } m) o["mscale"] = m;
                if (s.MscaleAllDim is { } md) o["mscale_all_dim"] = md;
                o["truncate"] = s.Truncate;
                break;
        }
        return o;
    }

    /// <summary>The transformers 5.x <c>rope_parameters</c> object: θ, type, scaling and (when not 1) the rotated fraction.</summary>
    public static JsonObject Parameters(ModelConfig c)
    {
        var o = ScalingObject(c.RopeScaling) ?? new JsonObject { ["rope_type"] = "default" };
        o["rope_theta"] = c.RopeTheta;
        if (c.RotaryPct != 1.0) o["partial_rotary_factor"] = c.RotaryPct;
        return o;
    }
}
