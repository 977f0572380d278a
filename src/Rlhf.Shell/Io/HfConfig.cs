using System.Text.Json;
using System.Text.Json.Nodes;
using Rlhf.Core.Models;

namespace Rlhf.Shell.Io;

/// <summary>
/// Reads and writes Hugging Face <c>config.json</c> for the supported families, with each family's HF defaults for
/// absent keys and its own key names (GPT-2's <c>n_embd</c>, <c>n_layer</c>, …). Keys Rlhf does not model are
/// not preserved on write.
/// </summary>
public static class HfConfig
{
    /// <summary>The <c>model_type</c> values Rlhf can load.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "qwen2", "gpt_neox", "gpt2"];

    /// <summary>Reads <paramref name="path"/> (a config.json).</summary>
    public static ModelConfig Read(string path)
    {
        if (!File.Exists(path)) throw new HfFormatException(path, "config.json not found");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses config.json text; <paramref name="path"/> only names the source in errors.</summary>
    public static ModelConfig Parse(string json, string path = "config.json")
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new HfFormatException(path, "config must be a JSON object"); }
        catch (JsonException e) { throw new HfFormatException(path, $"invalid JSON: {e.Message}", e); }
        var modelType = Str(o, "model_type") ?? throw new HfFormatException(path, "missing 'model_type'");
        var problems = new List<string>();
        T Get<T>(string key, T fallback)
        {
            if (!o.TryGetPropertyValue(key, out var n) || n is null) return fallback;
            try { return n.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                problems.Add($"'{key}' should be {typeof(T).Name}, got {n.ToJsonString()}");
                return fallback;
            }
        }
        long? Id(string key)
        {
            if (!o.TryGetPropertyValue(key, out var n) || n is null) return null;
            if (n is JsonArray a) return a.Count == 0 ? null : a[0]!.GetValue<long>();   // e.g. Llama-3.1 lists several eos ids; the first is kept
            return n.GetValue<long>();
        }
        var head = ModelHead.LanguageModel;
        if (o["architectures"] is JsonArray arch && arch.Any(a => a?.GetValue<string>().EndsWith("ForSequenceClassification", StringComparison.Ordinal) == true))
        {
            head = ModelHead.Score;
            var labels = o["id2label"] is JsonObject id2 ? id2.Count : Get("num_labels", 1);
            if (labels != 1) problems.Add($"sequence-classification head with {labels} labels; only a scalar head (1 label) is supported");
        }
        ModelConfig c;
        switch (modelType)
        {
            case "llama":
            case "qwen2":
            {
                var qwen = modelType == "qwen2";
                var heads = Get("num_attention_heads", 32);
                c = new ModelConfig
                {
                    Family = qwen ? ModelFamily.Qwen2 : ModelFamily.Llama,
                    VocabSize = Get("vocab_size", qwen ? 151936L : 32000L),
                    HiddenSize = Get("hidden_size", 4096L),
                    IntermediateSize = Get("intermediate_size", qwen ? 22016L : 11008L),
                    NumHiddenLayers = Get("num_hidden_layers", 32),
                    NumAttentionHeads = heads,
                    NumKeyValueHeadsOverride = Get<int?>("num_key_value_heads", null),
                    HeadDimOverride = Get<long?>("head_dim", null),
                    MaxPositionEmbeddings = Get("max_position_embeddings", qwen ? 32768L : 2048L),
                    RmsNormEps = Get("rms_norm_eps", 1e-6),
                    RopeTheta = Get("rope_theta", 10000.0),
                    RopeScaling = RopeScaling(o, path, problems),
                    TieWordEmbeddings = Get("tie_word_embeddings", false),
                    AttentionBias = qwen || Get("attention_bias", false),
                    MlpBias = !qwen && Get("mlp_bias", false),
                    HiddenAct = Get("hidden_act", "silu"),
                };
                // Explicit values equal to the defaults are stored as "default", so equal architectures compare equal.
                if (c.NumKeyValueHeadsOverride == heads) c = c with { NumKeyValueHeadsOverride = null };
                if (heads > 0 && c.HeadDimOverride == c.HiddenSize / heads && c.HiddenSize % heads == 0) c = c with { HeadDimOverride = null };
                break;
            }
            case "gpt_neox":
                c = new ModelConfig
                {
                    Family = ModelFamily.GptNeox,
                    VocabSize = Get("vocab_size", 50432L),
                    HiddenSize = Get("hidden_size", 6144L),
                    IntermediateSize = Get("intermediate_size", 24576L),
                    NumHiddenLayers = Get("num_hidden_layers", 44),
                    NumAttentionHeads = Get("num_attention_heads", 64),
                    MaxPositionEmbeddings = Get("max_position_embeddings", 2048L),
                    LayerNormEps = Get("layer_norm_eps", 1e-5),
                    RotaryPct = Get("rotary_pct", 0.25),
                    RopeTheta = Get("rope_theta", Get("rotary_emb_base", 10000.0)),
                    UseParallelResidual = Get("use_parallel_residual", true),
                    TieWordEmbeddings = Get("tie_word_embeddings", false),
                    AttentionBias = Get("attention_bias", true),
                    MlpBias = true,
                    HiddenAct = Get("hidden_act", "gelu"),
                };
                break;
            case "gpt2":
            {
                var d = Get("n_embd", 768L);
                c = new ModelConfig
                {
                    Family = ModelFamily.Gpt2,
                    VocabSize = Get("vocab_size", 50257L),
                    HiddenSize = d,
                    IntermediateSize = Get<long?>("n_inner", null) ?? 4 * d,
                    NumHiddenLayers = Get("n_layer", 12),
                    NumAttentionHeads = Get("n_head", 12),
                    MaxPositionEmbeddings = Get("n_positions", 1024L),
                    LayerNormEps = Get("layer_norm_epsilon", 1e-5),
                    TieWordEmbeddings = Get("tie_word_embeddings", true),
                    AttentionBias = true, MlpBias = true, RotaryPct = 0,
                    HiddenAct = Get("activation_function", "gelu_new"),
                };
                if (!Get("scale_attn_weights", true)) problems.Add("scale_attn_weights = false is not supported");
                if (Get("scale_attn_by_inverse_layer_idx", false)) problems.Add("scale_attn_by_inverse_layer_idx = true is not supported");
                break;
            }
            default:
                throw new HfFormatException(path, $"unknown model_type '{modelType}' (supported: {string.Join(", ", SupportedModelTypes)})");
        }
        c = c with
        {
            Head = head,
            // GPT2Config defaults both ids to 50256, which only exists in a vocabulary of more than 50256 tokens.
            BosTokenId = Id("bos_token_id") ?? (modelType == "gpt2" && c.VocabSize > 50256 ? 50256 : null),
            EosTokenId = Id("eos_token_id") ?? (modelType == "gpt2" && c.VocabSize > 50256 ? 50256 : null),
            PadTokenId = Id("pad_token_id"),
            TorchDtype = Str(o, "torch_dtype") ?? Str(o, "dtype"),
        };
        problems.AddRange(c.Problems());
        if (problems.Count > 0) throw new HfFormatException(path, $"invalid {modelType} config:\n  " + string.Join("\n  ", problems));
        return c;
    }

    private static string? Str(JsonObject o, string key) => o.TryGetPropertyValue(key, out var n) && n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static Llama3RopeScaling? RopeScaling(JsonObject o, string path, List<string> problems)
    {
        if (!o.TryGetPropertyValue("rope_scaling", out var n) || n is null) return null;
        if (n is not JsonObject s) { problems.Add("rope_scaling must be an object"); return null; }
        var type = Str(s, "rope_type") ?? Str(s, "type");
        if (type == "default") return null;
        if (type != "llama3") { problems.Add($"unsupported rope_scaling type '{type}' (supported: llama3)"); return null; }
        try
        {
            return new Llama3RopeScaling(s["factor"]!.GetValue<double>(), s["low_freq_factor"]!.GetValue<double>(),
                s["high_freq_factor"]!.GetValue<double>(), s["original_max_position_embeddings"]!.GetValue<long>());
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            problems.Add("rope_scaling llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings");
            return null;
        }
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
                o["rope_theta"] = c.RopeTheta;
                o["rope_scaling"] = c.RopeScaling is { } s
                    ? new JsonObject
                    {
                        ["rope_type"] = "llama3", ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFreqFactor,
                        ["high_freq_factor"] = s.HighFreqFactor, ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings,
                    }
                    : null;
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
        if (c.TorchDtype is { } dt) o["torch_dtype"] = dt;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Writes <paramref name="c"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, ModelConfig c) => File.WriteAllText(path, ToJson(c));
}
