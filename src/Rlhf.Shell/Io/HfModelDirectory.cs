using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Shell.Io;

/// <summary>
/// A Hugging Face model directory: <c>config.json</c> plus <c>model.safetensors</c>, or shards
/// <c>model-0000i-of-0000n.safetensors</c> listed by <c>model.safetensors.index.json</c>
/// (<c>{"metadata": {"total_size": …}, "weight_map": {name: file}}</c>).
/// </summary>
public static class HfModelDirectory
{
    /// <summary>The single-file weights name.</summary>
    public const string SingleFile = "model.safetensors";
    /// <summary>The shard index name.</summary>
    public const string IndexFile = "model.safetensors.index.json";
    /// <summary>The config name.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>Reads only the config of the model in <paramref name="dir"/> (ignored keys reported to <paramref name="warn"/>).</summary>
    public static ModelConfig LoadConfig(string dir, Action<string>? warn = null) => HfConfig.Read(Path.Combine(dir, ConfigFile), warn);

    /// <summary>
    /// Loads config and weights. Every floating-point tensor is cast to one model dtype, as transformers'
    /// <c>from_pretrained(dtype="auto")</c> does: <paramref name="dtype"/> when given, else the config's
    /// <c>dtype</c>/<c>torch_dtype</c>, else the dtype of the first floating-point tensor in name order; so a checkpoint
    /// with bf16 matrices and fp32 norm weights loads as one dtype (integer tensors are left alone). Checks the tensors
    /// against the family's expected names and shapes and reports every missing, unexpected and misshapen tensor at once.
    /// Base-model checkpoints without the family prefix (GPT-2's <c>h.0.attn…</c>) are accepted, and an
    /// <c>lm_head.weight</c> of a tied model is dropped, as transformers ties it. Tensors transformers does not load
    /// (causal-mask and rotary buffers, a TRL value head <c>v_head.*</c>) are skipped with one message to
    /// <paramref name="warn"/> listing them; with <paramref name="strict"/> they are unexpected tensors and refused.
    /// The caller owns (disposes) the result.
    /// </summary>
    public static ModelWeights Load(string dir, ScalarType? dtype = null, bool strict = false, Action<string>? warn = null)
    {
        if (!Directory.Exists(dir)) throw new HfFormatException(dir, "model directory not found");
        var config = LoadConfig(dir, warn);
        var sources = WeightSources(dir);     // tensor name → file
        var files = new Dictionary<string, SafetensorsFile>();
        try
        {
            foreach (var f in sources.Values.Distinct()) files[f] = SafetensorsFile.Open(Path.Combine(dir, f));
            foreach (var (name, file) in sources)
                if (!files[file].Contains(name))
                    throw new HfFormatException(Path.Combine(dir, IndexFile), $"weight_map puts tensor '{name}' in {file}, which does not contain it");

            var prefix = WeightNames.BasePrefix(config);
            CheckLayerCount(dir, config, sources.Keys, prefix);
            // Canonical name → (file, stored name)
            var expected = ModelWeights.ExpectedShapes(config).Select(s => s.Name).ToHashSet();
            var chosen = new Dictionary<string, (string File, string Stored)>();
            var ignored = new List<string>();
            foreach (var (stored, file) in sources.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var name = !expected.Contains(stored) && expected.Contains(prefix + stored) ? prefix + stored : stored;
                if (config.TieWordEmbeddings && config.Head == ModelHead.LanguageModel && name == WeightNames.LmHead(config)) continue;
                if (!strict && !expected.Contains(name) && WeightNames.IsIgnoredOnLoad(config, stored)) { ignored.Add(stored); continue; }
                if (!chosen.TryAdd(name, (file, stored)))
                    throw new HfFormatException(dir, $"tensor '{name}' appears twice (as '{chosen[name].Stored}' in {chosen[name].File} and '{stored}' in {file})");
            }
            var shapes = chosen.ToDictionary(kv => kv.Key, kv => files[kv.Value.File].Entry(kv.Value.Stored).Shape);
            var problems = ModelWeights.Problems(config, shapes)
                .Select(p => Regex.Replace(p, @"^tensor '([^']+)'", m => $"{m.Value} (in {chosen[m.Groups[1].Value].File})")).ToList();
            if (problems.Count > 0)
                throw new HfFormatException(dir, $"weights do not match the {config.ModelType} config{(strict ? " (strict)" : "")}:\n  " + string.Join("\n  ", problems));

            ScalarType? StoredType((string File, string Stored) at) => files[at.File].Entry(at.Stored).Dtype.ToScalarType();
            var target = dtype
                ?? (config.TorchDtype is { } name2 ? HfConfig.ScalarTypeOf(name2) : null)
                ?? chosen.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => StoredType(kv.Value)).FirstOrDefault(t => t is { } s && s.IsFloatingPoint());
            var tensors = new List<KeyValuePair<string, Tensor>>();
            try
            {
                foreach (var (name, (file, stored)) in chosen)
                {
                    var st = StoredType((file, stored));
                    var convert = target is { } d && st is { } s && s.IsFloatingPoint() && s != d ? d : (ScalarType?)null;
                    tensors.Add(KeyValuePair.Create(name, files[file].Load(stored, convert).DetachFromScope()));
                }
            }
            catch
            {
                foreach (var t in tensors) t.Value.Dispose();
                throw;
            }
            if (ignored.Count > 0)
                warn?.Invoke($"{dir}: ignoring {ignored.Count} tensors transformers does not load into {config.ModelType} (pass strict to refuse): {string.Join(", ", ignored)}");
            return new ModelWeights(config, tensors);
        }
        finally
        {
            foreach (var f in files.Values) f.Dispose();
        }
    }

    /// <summary>
    /// Compares the config's layer count with the layers the weights hold (read from the tensor names in the headers) before
    /// anything is planned per layer, so a config naming 10⁸ layers over a one-layer checkpoint is an error, not an out-of-memory.
    /// </summary>
    private static void CheckLayerCount(string dir, ModelConfig config, IEnumerable<string> names, string prefix)
    {
        var layer0 = config.Recipe.Layer(0);
        var stem = layer0[..^2];     // "model.layers." of "model.layers.0."
        var held = 0;
        foreach (var stored in names)
        {
            var name = stored.StartsWith(stem, StringComparison.Ordinal) ? stored : prefix + stored;
            if (!name.StartsWith(stem, StringComparison.Ordinal)) continue;
            var end = name.IndexOf('.', stem.Length);
            if (end > stem.Length && int.TryParse(name.AsSpan(stem.Length, end - stem.Length), System.Globalization.NumberStyles.None, null, out var i) && i < int.MaxValue)
                held = Math.Max(held, i + 1);
        }
        if (config.NumHiddenLayers > held)
            throw new HfFormatException(Path.Combine(dir, ConfigFile),
                $"{config.NumHiddenLayers} layers ('num_hidden_layers', GPT-2 'n_layer'), but the weights hold {held} ({stem}0 … {stem}{Math.Max(held - 1, 0)})");
    }

    private static Dictionary<string, string> WeightSources(string dir)
    {
        var index = Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            JsonObject? map;
            try
            {
                var root = JsonNode.Parse(InputLimits.ReadText(index, InputLimits.IndexJsonBytes, IndexFile), documentOptions: new JsonDocumentOptions { MaxDepth = InputLimits.JsonDepth, AllowDuplicateProperties = false });
                map = (root as JsonObject ?? throw new HfFormatException(index, "expected a JSON object"))["weight_map"] as JsonObject;
                _ = map?.Count;
            }
            catch (JsonException e) { throw new HfFormatException(index, $"invalid JSON: {e.Message}", e); }
            catch (ArgumentException e) { throw new HfFormatException(index, $"invalid JSON (a key appears twice?): {e.Message}", e); }
            if (map is null) throw new HfFormatException(index, "missing object 'weight_map'");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, file) in map)
            {
                var f = file is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new HfFormatException(index, $"weight_map entry '{name}' is not a file name");
                if (f.Contains('/') || f.Contains('\\') || f == "..") throw new HfFormatException(index, $"weight_map entry '{name}' points outside the directory: {f}");
                if (!File.Exists(Path.Combine(dir, f))) throw new HfFormatException(index, $"tensor '{name}' is in {f}, which does not exist");
                result[name] = f;
            }
            return result;
        }
        var single = Path.Combine(dir, SingleFile);
        if (File.Exists(single))
        {
            using var f = SafetensorsFile.Open(single);
            return f.Names.ToDictionary(n => n, _ => SingleFile, StringComparer.Ordinal);
        }
        if (File.Exists(Path.Combine(dir, "pytorch_model.bin")) || File.Exists(Path.Combine(dir, "pytorch_model.bin.index.json")))
            throw new HfFormatException(dir, "only pytorch_model.bin weights found; Rlhf reads safetensors (convert with transformers' save_pretrained(safe_serialization=True))");
        throw new HfFormatException(dir, $"no weights: neither {SingleFile} nor {IndexFile}");
    }

    /// <summary>
    /// Saves config and weights in HF layout: one <c>model.safetensors</c>, or, when the tensors exceed
    /// <paramref name="maxShardBytes"/>, shards <c>model-0000i-of-0000n.safetensors</c> filled in the family's
    /// module order plus the index. Written into a temporary sibling directory and swapped in, so a failed save
    /// leaves an earlier one intact; other files already in <paramref name="dir"/> (tokenizer, generation config) are kept.
    /// </summary>
    public static void Save(string dir, ModelWeights weights, long? maxShardBytes = null)
    {
        weights.Config.Validated();
        weights.Validated();
        dir = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        var parent = Path.GetDirectoryName(dir)!;
        Directory.CreateDirectory(parent);
        var tag = Guid.NewGuid().ToString("N")[..8];
        var tmp = $"{dir}.tmp-{tag}";
        var old = $"{dir}.old-{tag}";
        Directory.CreateDirectory(tmp);
        try
        {
            HfConfig.Write(Path.Combine(tmp, ConfigFile), weights.Config);
            var order = ModelWeights.ExpectedShapes(weights.Config).Select(s => s.Name).ToList();
            var shards = new List<List<string>> { new() };
            long current = 0, total = 0;
            foreach (var name in order)
            {
                var bytes = weights[name].NumBytes;
                if (maxShardBytes is { } max && current > 0 && current + bytes > max) { shards.Add(new()); current = 0; }
                shards[^1].Add(name);
                current += bytes;
                total += bytes;
            }
            var meta = new Dictionary<string, string> { ["format"] = "pt" };
            if (shards.Count == 1)
                Safetensors.Write(Path.Combine(tmp, SingleFile), order.Select(n => KeyValuePair.Create(n, weights[n])), meta);
            else
            {
                var map = new JsonObject();
                for (var i = 0; i < shards.Count; i++)
                {
                    var file = $"model-{i + 1:00000}-of-{shards.Count:00000}.safetensors";
                    Safetensors.Write(Path.Combine(tmp, file), shards[i].Select(n => KeyValuePair.Create(n, weights[n])), meta);
                    foreach (var n in shards[i]) map[n] = file;
                }
                var sorted = new JsonObject();
                foreach (var kv in map.OrderBy(kv => kv.Key, StringComparer.Ordinal)) sorted[kv.Key] = kv.Value!.GetValue<string>();
                var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = sorted };
                File.WriteAllText(Path.Combine(tmp, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            }
            if (Directory.Exists(dir))
            {
                foreach (var f in Directory.EnumerateFiles(dir))
                {
                    var name = Path.GetFileName(f);
                    if (name == ConfigFile || name == IndexFile || name.EndsWith(".safetensors", StringComparison.Ordinal)) continue;
                    File.Copy(f, Path.Combine(tmp, name));
                }
                Directory.Move(dir, old);
            }
            Directory.Move(tmp, dir);
        }
        catch
        {
            if (!Directory.Exists(dir) && Directory.Exists(old)) Directory.Move(old, dir);
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }
}
