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
    public static readonly IReadOnlyList<string> SupportedModelTypes = [.. ModelRecipes.All.Select(r => r.ModelType)];

    /// <summary>Reads <paramref name="path"/> (a config.json); keys ignored as transformers ignores them go to <paramref name="warn"/> as one message.</summary>
    public static ModelConfig Read(string path, Action<string>? warn = null)
    {
        if (!File.Exists(path)) throw new HfFormatException(path, "config.json not found");
        return Parse(InputLimits.ReadText(path, InputLimits.ConfigJsonBytes, "config.json"), path, warn);
    }

    /// <summary>Parses config.json text; <paramref name="path"/> only names the source in errors and warnings.</summary>
    public static ModelConfig Parse(string json, string path = "config.json", Action<string>? warn = null)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = InputLimits.JsonDepth, AllowDuplicateProperties = false }) as JsonObject
                ?? throw new HfFormatException(path, "expected a JSON object");
            _ = o.Count;     // materialises the properties: a duplicate key throws here
        }
        catch (JsonException e) { throw new HfFormatException(path, $"invalid JSON: {e.Message}", e); }
        catch (ArgumentException e) { throw new HfFormatException(path, $"invalid JSON (a key appears twice?): {e.Message}", e); }
        var r = new HfConfigReader(o);
        var modelType = r.Str("model_type") ?? throw new HfFormatException(path, r.Problems.Count > 0 ? r.Problems[0] : "missing 'model_type'");
        var head = ModelHead.LanguageModel;
        var architectures = o["architectures"];
        if (architectures is not null && (architectures is not JsonArray list || list.Any(a => a is not JsonValue v || !v.TryGetValue<string>(out _))))
            r.Problems.Add($"'architectures' should be a list of strings, got {Clip(architectures.ToJsonString())}");
        else if (architectures is JsonArray arch && arch.Any(a => a!.GetValue<string>().EndsWith("ForSequenceClassification", StringComparison.Ordinal)))
        {
            head = ModelHead.Score;
            var labels = o["id2label"] is JsonObject id2 ? id2.Count : r.Get("num_labels", 1);
            if (labels != 1) r.Problems.Add($"sequence-classification head with {labels} labels; only a scalar head (1 label) is supported");
        }
        var recipe = ModelRecipes.OfModelType(modelType)
                     ?? throw new HfFormatException(path, $"unknown model_type '{modelType}' (supported: {string.Join(", ", SupportedModelTypes)})");
        var c = recipe.ReadHf(r);
        if (c.NumHiddenLayers > InputLimits.Layers)
            r.Problems.Add($"{c.NumHiddenLayers} layers ('num_hidden_layers', GPT-2 'n_layer') exceed the limit of {InputLimits.Layers} (InputLimits.Layers)");
        var dtype = r.OneOfString("dtype", "torch_dtype");
        if (dtype is not null && ScalarTypeOf(dtype) is null)
            r.Problems.Add($"'{(r.Has("dtype") ? "dtype" : "torch_dtype")}' \"{dtype}\" is not a floating-point dtype (float32, bfloat16, float16, float64)");
        c = c with
        {
            Head = head,
            BosTokenId = Id(r, "bos_token_id") ?? c.BosTokenId,                // absent: the family's default, from its recipe
            EosTokenId = Id(r, "eos_token_id") ?? c.EosTokenId,
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

    private static long? Id(HfConfigReader r, string key)
    {
        if (r.Node(key) is not JsonArray a) return r.Optional<long>(key);
        // e.g. Llama-3.1 lists several eos ids; the first is kept
        if (a.Any(x => x is not JsonValue v || !v.TryGetValue<long>(out _)))
        {
            r.Problems.Add($"'{key}' should be an integer or a list of integers, got {Clip(a.ToJsonString())}");
            return null;
        }
        return a.Count == 0 ? null : a[0]!.GetValue<long>();
    }

    private static string Clip(string s) => s.Length <= 80 ? s : s[..80] + "…";

    /// <summary>The config.json text for <paramref name="c"/> under its family's key names (indented, deterministic).</summary>
    public static string ToJson(ModelConfig c)
    {
        var o = new JsonObject();
        var recipe = c.Recipe;
        var suffix = c.Head == ModelHead.Score ? "ForSequenceClassification" : recipe.CausalLmSuffix;
        o["architectures"] = new JsonArray(recipe.ArchitectureStem + suffix);
        o["model_type"] = c.ModelType;
        if (c.Head == ModelHead.Score) o["num_labels"] = 1;
        recipe.WriteHf(c, o);
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
