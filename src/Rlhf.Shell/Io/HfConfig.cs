using System.Text.Json;
using System.Text.Json.Nodes;
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Shell.Io;

/// <summary>
/// Reads and writes Hugging Face <c>config.json</c> for the supported families, with each family's HF defaults for
/// absent keys and its own key names (GPT-2's <c>n_embd</c>, <c>n_layer</c>, …). Reads the transformers 5.x layout
/// (<c>rope_parameters</c>, <c>dtype</c>) and the older one (<c>rope_theta</c>/<c>rope_scaling</c>/<c>rotary_pct</c>,
/// <c>torch_dtype</c>); writes both, consistently, so either transformers generation reads the same model. A key that
/// would change the computation and that Rlhf does not implement is an error naming it, never ignored. Keys Rlhf does
/// not model are not preserved on write.
/// </summary>
public static class HfConfig
{
    /// <summary>The <c>model_type</c> values Rlhf can load.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "qwen2", "gpt_neox", "gpt2"];

    /// <summary>Reads <paramref name="path"/> (a config.json); keys ignored as transformers ignores them go to <paramref name="warn"/> as one message.</summary>
    public static ModelConfig Read(string path, Action<string>? warn = null)
    {
        if (!File.Exists(path)) throw new HfFormatException(path, "config.json not found");
        return Parse(File.ReadAllText(path), path, warn);
    }

    /// <summary>Parses config.json text; <paramref name="path"/> only names the source in errors and warnings.</summary>
    public static ModelConfig Parse(string json, string path = "config.json", Action<string>? warn = null)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new HfFormatException(path, "config must be a JSON object"); }
        catch (JsonException e) { throw new HfFormatException(path, $"invalid JSON: {e.Message}", e); }
        var r = new HfConfigReader(o);
        var modelType = r.Str("model_type") ?? throw new HfFormatException(path, "missing 'model_type'");
        var head = ModelHead.LanguageModel;
        if (o["architectures"] is JsonArray arch && arch.Any(a => a is JsonValue v && v.TryGetValue<string>(out var s) && s.EndsWith("ForSequenceClassification", StringComparison.Ordinal)))
        {
            head = ModelHead.Score;
            var labels = o["id2label"] is JsonObject id2 ? id2.Count : r.Get("num_labels", 1);
            if (labels != 1) r.Problems.Add($"sequence-classification head with {labels} labels; only a scalar head (1 label) is supported");
        }
        var c = modelType switch
        {
            "llama" or "qwen2" => LlamaOrQwen2(r, modelType == "qwen2"),
            "gpt_neox" => GptNeox(r),
            "gpt2" => Gpt2(r),
            _ => throw new HfFormatException(path, $"unknown model_type '{modelType}' (supported: {string.Join(", ", SupportedModelTypes)})"),
        };
        var dtype = r.OneOfString("dtype", "torch_dtype");
        if (dtype is not null && ScalarTypeOf(dtype) is null)
            r.Problems.Add($"'{(r.Has("dtype") ? "dtype" : "torch_dtype")}' \"{dtype}\" is not a floating-point dtype (float32, bfloat16, float16, float64)");
        c = c with
        {
            Head = head,
            // GPT2Config defaults both ids to 50256, which only exists in a vocabulary of more than 50256 tokens.
            BosTokenId = Id(r, "bos_token_id") ?? (modelType == "gpt2" && c.VocabSize > 50256 ? 50256 : null),
            EosTokenId = Id(r, "eos_token_id") ?? (modelType == "gpt2" && c.VocabSize > 50256 ? 50256 : null),
            PadTokenId = Id(r, "pad_token_id"),
            TorchDtype = dtype,
        };
        r.Problems.AddRange(c.Problems());
        if (r.Problems.Count > 0) throw new HfFormatException(path, $"invalid {modelType} config:\n  " + string.Join("\n  ", r.Problems));
        if (r.Ignored.Count > 0)
            warn?.Invoke($"{path}: ignoring keys transformers also ignores ({r.Ignored.Count}): {string.Join(", ", r.Ignored)}");
        return c;
    }

    /// <summary>The tensor dtype of an HF <c>dtype</c>/<c>torch_dtype</c> string ("bfloat16", "float32", "torch.float16", …), or null when not a floating-point dtype.</summary>
    public static ScalarType? ScalarTypeOf(string dtype) => (dtype.StartsWith("torch.", StringComparison.Ordinal) ? dtype[6..] : dtype) switch
    {
        "float32" or "float" => ScalarType.Float32,
        "bfloat16" => ScalarType.BFloat16,
        "float16" or "half" => ScalarType.Float16,
        "float64" or "double" => ScalarType.Float64,
        _ => null,
    };

    private static long? Id(HfConfigReader r, string key) =>
        r.Node(key) is JsonArray a ? (a.Count == 0 ? null : a[0]!.GetValue<long>())     // e.g. Llama-3.1 lists several eos ids; the first is kept
        : r.Optional<long>(key);

    /// <summary>A family-fixed structure the config may restate: a contradicting value is an error naming the key.</summary>
    private static void Fixed(HfConfigReader r, string family, string key, bool value, string what)
    {
        if (r.Optional<bool>(key) is { } v && v != value)
            r.Problems.Add($"'{key}': {v.ToString().ToLowerInvariant()} is not supported: {family} {what}");
    }

    private static ModelConfig LlamaOrQwen2(HfConfigReader r, bool qwen)
    {
        var family = qwen ? "qwen2" : "llama";
        var heads = r.Get("num_attention_heads", 32);
        var maxPositions = r.Get("max_position_embeddings", qwen ? 32768L : 2048L);
        var (theta, partial, scaling) = HfRope.Read(r, ["rope_theta"], ["partial_rotary_factor"], 1.0, maxPositions);
        var c = new ModelConfig
        {
            Family = qwen ? ModelFamily.Qwen2 : ModelFamily.Llama,
            VocabSize = r.Get("vocab_size", qwen ? 151936L : 32000L),
            HiddenSize = r.Get("hidden_size", 4096L),
            IntermediateSize = r.Get("intermediate_size", qwen ? 22016L : 11008L),
            NumHiddenLayers = r.Get("num_hidden_layers", 32),
            NumAttentionHeads = heads,
            NumKeyValueHeadsOverride = r.Get<int?>("num_key_value_heads", null),
            HeadDimOverride = r.Get<long?>("head_dim", null),
            MaxPositionEmbeddings = maxPositions,
            RmsNormEps = r.Get("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            RotaryPct = partial,
            RopeScaling = scaling,
            TieWordEmbeddings = r.Get("tie_word_embeddings", false),
            AttentionBias = qwen || r.Get("attention_bias", false),
            MlpBias = !qwen && r.Get("mlp_bias", false),
            HiddenAct = r.Get("hidden_act", "silu"),
        };
        if (qwen)
        {
            // Qwen2Attention hard-codes q/k/v biases and none on o_proj or the MLP (transformers modeling_qwen2.py).
            Fixed(r, family, "attention_bias", true, "always has q/k/v biases");
            Fixed(r, family, "mlp_bias", false, "has no MLP biases");
            // Qwen2Config: sliding_window applies only with use_sliding_window, to layers ≥ max_window_layers (or as layer_types says).
            var layers = c.NumHiddenLayers;
            if (r.Get("use_sliding_window", false) && r.Has("sliding_window") && r.Get("max_window_layers", 28) < layers)
                r.Problems.Add($"'use_sliding_window': true with 'sliding_window' {r.Node("sliding_window")!.ToJsonString()} from layer "
                               + $"{r.Get("max_window_layers", 28)} ('max_window_layers'): sliding-window attention is not implemented");
            if (r.Node("layer_types") is JsonArray types && types.Any(t => t?.ToString() != "full_attention"))
                r.Problems.Add($"'layer_types' {types.ToJsonString()}: only full_attention layers are implemented");
        }
        // Explicit values equal to the defaults are stored as "default", so equal architectures compare equal.
        if (c.NumKeyValueHeadsOverride == heads) c = c with { NumKeyValueHeadsOverride = null };
        if (heads > 0 && c.HeadDimOverride == c.HiddenSize / heads && c.HiddenSize % heads == 0) c = c with { HeadDimOverride = null };
        return c;
    }

    private static ModelConfig GptNeox(HfConfigReader r)
    {
        var maxPositions = r.Get("max_position_embeddings", 2048L);
        // GPTNeoXConfig.convert_rope_params_to_dict: θ from rotary_emb_base, the rotated fraction from rotary_pct (0.25).
        var (theta, partial, scaling) = HfRope.Read(r, ["rotary_emb_base", "rope_theta"], ["rotary_pct", "partial_rotary_factor"], 0.25, maxPositions);
        Fixed(r, "gpt_neox", "mlp_bias", true, "always has MLP biases");
        return new ModelConfig
        {
            Family = ModelFamily.GptNeox,
            VocabSize = r.Get("vocab_size", 50432L),
            HiddenSize = r.Get("hidden_size", 6144L),
            IntermediateSize = r.Get("intermediate_size", 24576L),
            NumHiddenLayers = r.Get("num_hidden_layers", 44),
            NumAttentionHeads = r.Get("num_attention_heads", 64),
            MaxPositionEmbeddings = maxPositions,
            LayerNormEps = r.Get("layer_norm_eps", 1e-5),
            RotaryPct = partial,
            RopeTheta = theta,
            RopeScaling = scaling,
            UseParallelResidual = r.Get("use_parallel_residual", true),
            TieWordEmbeddings = r.Get("tie_word_embeddings", false),
            AttentionBias = r.Get("attention_bias", true),
            MlpBias = true,
            HiddenAct = r.Get("hidden_act", "gelu"),
        };
    }

    private static ModelConfig Gpt2(HfConfigReader r)
    {
        var d = r.Get("n_embd", 768L);
        if (!r.Get("scale_attn_weights", true)) r.Problems.Add("'scale_attn_weights': false is not supported");
        if (r.Get("scale_attn_by_inverse_layer_idx", false)) r.Problems.Add("'scale_attn_by_inverse_layer_idx': true is not supported");
        if (r.Get("add_cross_attention", false)) r.Problems.Add("'add_cross_attention': true is not supported (decoder-only models)");
        Fixed(r, "gpt2", "attention_bias", true, "always has attention biases");
        Fixed(r, "gpt2", "mlp_bias", true, "always has MLP biases");
        return new ModelConfig
        {
            Family = ModelFamily.Gpt2,
            VocabSize = r.Get("vocab_size", 50257L),
            HiddenSize = d,
            IntermediateSize = r.Get<long?>("n_inner", null) ?? 4 * d,
            NumHiddenLayers = r.Get("n_layer", 12),
            NumAttentionHeads = r.Get("n_head", 12),
            MaxPositionEmbeddings = r.Get("n_positions", 1024L),
            LayerNormEps = r.Get("layer_norm_epsilon", 1e-5),
            TieWordEmbeddings = r.Get("tie_word_embeddings", true),
            AttentionBias = true, MlpBias = true, RotaryPct = 0,
            HiddenAct = r.Get("activation_function", "gelu_new"),
        };
    }

    /// <summary>The config.json text for <paramref name="c"/> under its family's key names (indented, deterministic).</summary>
    public static string ToJson(ModelConfig c)
    {
        var o = new JsonObject();
        var arch = c.Family switch
        {
            ModelFamily.Llama => "Llama", ModelFamily.Qwen2 => "Qwen2", ModelFamily.GptNeox => "GPTNeoX", _ => "GPT2",
        };
        var suffix = c.Head == ModelHead.Score ? "ForSequenceClassification" : c.Family == ModelFamily.Gpt2 ? "LMHeadModel" : "ForCausalLM";
        o["architectures"] = new JsonArray(arch + suffix);
        o["model_type"] = c.ModelType;
        if (c.Head == ModelHead.Score) o["num_labels"] = 1;
        switch (c.Family)
        {
            case ModelFamily.Llama:
            case ModelFamily.Qwen2:
                o["vocab_size"] = c.VocabSize;
                o["hidden_size"] = c.HiddenSize;
                o["intermediate_size"] = c.IntermediateSize;
                o["num_hidden_layers"] = c.NumHiddenLayers;
                o["num_attention_heads"] = c.NumAttentionHeads;
                o["num_key_value_heads"] = c.NumKeyValueHeads;
                if (c.HeadDimOverride is { } hd) o["head_dim"] = hd;
                o["max_position_embeddings"] = c.MaxPositionEmbeddings;
                o["rms_norm_eps"] = c.RmsNormEps;
                // Both layouts: transformers 4.x reads rope_theta/rope_scaling, 5.x rope_parameters (equal by construction).
                o["rope_theta"] = c.RopeTheta;
                o["rope_scaling"] = HfRope.ScalingObject(c.RopeScaling);
                o["rope_parameters"] = HfRope.Parameters(c);
                if (c.Family == ModelFamily.Llama)
                {
                    o["attention_bias"] = c.AttentionBias;
                    o["mlp_bias"] = c.MlpBias;
                }
                o["hidden_act"] = c.HiddenAct;
                break;
            case ModelFamily.GptNeox:
                o["vocab_size"] = c.VocabSize;
                o["hidden_size"] = c.HiddenSize;
                o["intermediate_size"] = c.IntermediateSize;
                o["num_hidden_layers"] = c.NumHiddenLayers;
                o["num_attention_heads"] = c.NumAttentionHeads;
                o["max_position_embeddings"] = c.MaxPositionEmbeddings;
                o["layer_norm_eps"] = c.LayerNormEps;
                o["rotary_pct"] = c.RotaryPct;
                o["rotary_emb_base"] = c.RopeTheta;
                if (c.RopeScaling is not null) o["rope_scaling"] = HfRope.ScalingObject(c.RopeScaling);
                o["rope_parameters"] = HfRope.Parameters(c);
                o["use_parallel_residual"] = c.UseParallelResidual;
                o["attention_bias"] = c.AttentionBias;
                o["hidden_act"] = c.HiddenAct;
                break;
            case ModelFamily.Gpt2:
                o["vocab_size"] = c.VocabSize;
                o["n_embd"] = c.HiddenSize;
                o["n_inner"] = c.IntermediateSize;
                o["n_layer"] = c.NumHiddenLayers;
                o["n_head"] = c.NumAttentionHeads;
                o["n_positions"] = c.MaxPositionEmbeddings;
                o["layer_norm_epsilon"] = c.LayerNormEps;
                o["activation_function"] = c.HiddenAct;
                break;
        }
        o["tie_word_embeddings"] = c.TieWordEmbeddings;
        if (c.BosTokenId is { } bos) o["bos_token_id"] = bos;
        if (c.EosTokenId is { } eos) o["eos_token_id"] = eos;
        if (c.PadTokenId is { } pad) o["pad_token_id"] = pad;
        if (c.TorchDtype is { } dt) { o["torch_dtype"] = dt; o["dtype"] = dt; }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Writes <paramref name="c"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, ModelConfig c) => File.WriteAllText(path, ToJson(c));
}
