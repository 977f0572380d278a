using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>How <see cref="ModelInit.Random"/> initialises a weight (HF <c>_init_weights</c>).</summary>
public enum WeightInit
{
    /// <summary>Normal(0, initializer_range): linear and embedding matrices.</summary>
    Normal,
    /// <summary>Ones: norm scales.</summary>
    Ones,
    /// <summary>Zeros: biases.</summary>
    Zeros,
}

/// <summary>One named weight a family expects: its Hugging Face name, shape and initialisation.</summary>
public sealed record WeightSpec(string Name, long[] Shape, WeightInit Init);

/// <summary>
/// A model's parameters: an immutable map from Hugging Face checkpoint names
/// (<c>model.layers.0.self_attn.q_proj.weight</c>, <c>gpt_neox.layers.0.attention.query_key_value.weight</c>,
/// <c>transformer.h.0.attn.c_attn.weight</c>, <c>lm_head.weight</c>, <c>score.weight</c>, …) to tensors, with the
/// config that gives them meaning. The model functions read it and never mutate it, so the engine can hand
/// them full, gathered, or sharded-then-gathered tensors under the same names.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly SortedDictionary<string, Tensor> tensors;

    /// <summary>Wraps <paramref name="tensors"/> (copied into a new map; the tensors themselves are shared, not cloned).</summary>
    public ModelWeights(ModelConfig config, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        Config = config;
        this.tensors = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in tensors)
            if (!this.tensors.TryAdd(k, v)) throw new ArgumentException($"duplicate weight name '{k}'", nameof(tensors));
    }

    /// <summary>The architecture these weights belong to.</summary>
    public ModelConfig Config { get; }

    /// <summary>Every tensor by HF name, in ordinal name order.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => tensors;

    /// <summary>The tensor named <paramref name="name"/>; throws naming it and the family when absent.</summary>
    public Tensor this[string name] => tensors.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"{Config.ModelType} weights have no tensor '{name}'");

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public Tensor? TryGet(string name) => tensors.TryGetValue(name, out var t) ? t : null;

    /// <summary>A new record with <paramref name="name"/> set to <paramref name="tensor"/> (other tensors shared).</summary>
    public ModelWeights With(string name, Tensor tensor)
    {
        var d = new Dictionary<string, Tensor>(tensors) { [name] = tensor };
        return new ModelWeights(Config, d);
    }

    /// <summary>A new record whose tensors are <paramref name="map"/>(name, tensor) — e.g. a dtype conversion or a device move.</summary>
    public ModelWeights Map(Func<string, Tensor, Tensor> map) => new(Config, tensors.Select(kv => KeyValuePair.Create(kv.Key, map(kv.Key, kv.Value))));

    /// <summary>Total number of elements over all tensors.</summary>
    public long ParameterCount => tensors.Values.Sum(t => t.NumEl);

    /// <summary>The weight spec of <paramref name="name"/> under <see cref="Config"/>, or null when the family does not expect it.</summary>
    public static WeightSpec? SpecOf(ModelConfig config, string name) => ExpectedShapes(config).FirstOrDefault(s => s.Name == name);

    /// <summary>
    /// Every weight the family expects under <paramref name="config"/>, in a fixed order (embedding, layers, final
    /// norm, head): the loader's validation and <see cref="ModelInit.Random"/> both use it.
    /// </summary>
    public static IReadOnlyList<WeightSpec> ExpectedShapes(ModelConfig config)
    {
        var recipe = config.Recipe;
        var s = new List<WeightSpec>(recipe.EmbeddingWeights(config));
        for (var i = 0; i < config.NumHiddenLayers; i++) s.AddRange(recipe.LayerWeights(config, recipe.Layer(i)));
        s.AddRange(recipe.FinalNormWeights(config));
        if (config.Head == ModelHead.Score) s.Add(new(WeightNames.Score, [1, config.HiddenSize], WeightInit.Normal));
        else if (!config.TieWordEmbeddings) s.Add(new(recipe.LmHead, [config.VocabSize, config.HiddenSize], WeightInit.Normal));
        return s;
    }

    /// <summary>
    /// Missing tensors, unexpected tensors and shape mismatches against <see cref="ExpectedShapes"/>, all at once
    /// (empty when the weights fit the config).
    /// </summary>
    public static IReadOnlyList<string> Problems(ModelConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        var expected = ExpectedShapes(config);
        var names = expected.Select(e => e.Name).ToHashSet();
        var p = new List<string>();
        var missing = expected.Where(e => !shapes.ContainsKey(e.Name)).Select(e => e.Name).ToList();
        var unexpected = shapes.Keys.Where(k => !names.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0) p.Add($"missing tensors ({missing.Count}): {string.Join(", ", missing)}");
        if (unexpected.Count > 0) p.Add($"unexpected tensors ({unexpected.Count}): {string.Join(", ", unexpected)}");
        foreach (var e in expected)
            if (shapes.TryGetValue(e.Name, out var got) && !got.SequenceEqual(e.Shape))
                p.Add($"tensor '{e.Name}' has shape [{string.Join(", ", got)}], expected [{string.Join(", ", e.Shape)}]");
        return p;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem when the tensors do not fit the config.</summary>
    public ModelWeights Validated()
    {
        var p = Problems(Config, tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Shape));
        if (p.Count > 0) throw new ArgumentException($"{Config.ModelType} weights do not match the config:\n  " + string.Join("\n  ", p));
        return this;
    }

    /// <summary>Disposes every tensor. Records made by <see cref="With"/> or <see cref="Map"/> may share tensors: dispose one owner only.</summary>
    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

/// <summary>Hugging Face tensor names of the families (each family's own come from its <see cref="ModelRecipe"/>).</summary>
public static class WeightNames
{
    /// <summary>The scalar head of a sequence-classification model: <c>score.weight [1, D]</c>.</summary>
    public const string Score = "score.weight";

    /// <summary>The prefix of a TRL value head (<c>AutoModelForCausalLMWithValueHead</c> saves <c>v_head.summary.weight</c> and <c>.bias</c>).</summary>
    public const string ValueHeadPrefix = "v_head.";

    /// <summary>The prefix of the base model's tensors: <c>model.</c>, <c>gpt_neox.</c> or <c>transformer.</c>.</summary>
    public static string BasePrefix(ModelConfig c) => c.Recipe.BasePrefix;

    /// <summary>Token embedding [V, D].</summary>
    public static string Embedding(ModelConfig c) => c.Recipe.Embedding;

    /// <summary>The untied LM head [V, D]: <c>lm_head.weight</c>, or <c>embed_out.weight</c> for gpt_neox.</summary>
    public static string LmHead(ModelConfig c) => c.Recipe.LmHead;

    /// <summary>The prefix of layer <paramref name="i"/>'s tensors, ending in a dot.</summary>
    public static string Layer(ModelConfig c, int i) => c.Recipe.Layer(i);

    /// <summary>The tensors of the embedding stage (layer 0 of a layer-wise engine): the token embedding and, for gpt2, the position table.</summary>
    public static IReadOnlyList<string> EmbeddingStage(ModelConfig c) => c.Recipe.EmbeddingWeights(c).Select(s => s.Name).ToList();

    /// <summary>
    /// Tensors HF checkpoints may carry that transformers does not load into the family's model: causal-mask and rotary
    /// buffers (<c>attn.bias</c>, <c>attn.masked_bias</c>, <c>attention.bias</c>, <c>attention.masked_bias</c>,
    /// <c>rotary_emb.inv_freq</c>) and a TRL value head (<c>v_head.*</c>, trl <c>modeling_value_head.py</c>).
    /// </summary>
    public static bool IsIgnoredOnLoad(ModelConfig c, string name) => name.StartsWith(ValueHeadPrefix, StringComparison.Ordinal) || c.Recipe.IsBuffer(name);
}
