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
        var s = new List<WeightSpec>();
        long D = config.HiddenSize, I = config.IntermediateSize, V = config.VocabSize;
        long H = config.NumAttentionHeads, KV = config.NumKeyValueHeads, hd = config.HeadDim;
        void W(string name, params long[] shape) => s.Add(new(name, shape, WeightInit.Normal));
        void One(string name, long n) => s.Add(new(name, [n], WeightInit.Ones));
        void Zero(string name, long n) => s.Add(new(name, [n], WeightInit.Zeros));
        switch (config.Family)
        {
            case ModelFamily.Llama:
            case ModelFamily.Qwen2:
            {
                var qkvBias = config.Family == ModelFamily.Qwen2 || config.AttentionBias;
                var oBias = config.Family == ModelFamily.Llama && config.AttentionBias;
                W(WeightNames.Embedding(config), V, D);
                for (var i = 0; i < config.NumHiddenLayers; i++)
                {
                    var p = WeightNames.Layer(config, i);
                    One(p + "input_layernorm.weight", D);
                    W(p + "self_attn.q_proj.weight", H * hd, D);
                    if (qkvBias) Zero(p + "self_attn.q_proj.bias", H * hd);
                    W(p + "self_attn.k_proj.weight", KV * hd, D);
                    if (qkvBias) Zero(p + "self_attn.k_proj.bias", KV * hd);
                    W(p + "self_attn.v_proj.weight", KV * hd, D);
                    if (qkvBias) Zero(p + "self_attn.v_proj.bias", KV * hd);
                    W(p + "self_attn.o_proj.weight", D, H * hd);
                    if (oBias) Zero(p + "self_attn.o_proj.bias", D);
                    One(p + "post_attention_layernorm.weight", D);
                    W(p + "mlp.gate_proj.weight", I, D);
                    if (config.MlpBias) Zero(p + "mlp.gate_proj.bias", I);
                    W(p + "mlp.up_proj.weight", I, D);
                    if (config.MlpBias) Zero(p + "mlp.up_proj.bias", I);
                    W(p + "mlp.down_proj.weight", D, I);
                    if (config.MlpBias) Zero(p + "mlp.down_proj.bias", D);
                }
                One("model.norm.weight", D);
                break;
            }
            case ModelFamily.GptNeox:
                W(WeightNames.Embedding(config), V, D);
                for (var i = 0; i < config.NumHiddenLayers; i++)
                {
                    var p = WeightNames.Layer(config, i);
                    One(p + "input_layernorm.weight", D); Zero(p + "input_layernorm.bias", D);
                    One(p + "post_attention_layernorm.weight", D); Zero(p + "post_attention_layernorm.bias", D);
                    W(p + "attention.query_key_value.weight", 3 * D, D);
                    if (config.AttentionBias) Zero(p + "attention.query_key_value.bias", 3 * D);
                    W(p + "attention.dense.weight", D, D);
                    if (config.AttentionBias) Zero(p + "attention.dense.bias", D);
                    W(p + "mlp.dense_h_to_4h.weight", I, D); Zero(p + "mlp.dense_h_to_4h.bias", I);
                    W(p + "mlp.dense_4h_to_h.weight", D, I); Zero(p + "mlp.dense_4h_to_h.bias", D);
                }
                One("gpt_neox.final_layer_norm.weight", D); Zero("gpt_neox.final_layer_norm.bias", D);
                break;
            case ModelFamily.Gpt2:
                W(WeightNames.Embedding(config), V, D);
                W("transformer.wpe.weight", config.MaxPositionEmbeddings, D);
                for (var i = 0; i < config.NumHiddenLayers; i++)
                {
                    var p = WeightNames.Layer(config, i);
                    One(p + "ln_1.weight", D); Zero(p + "ln_1.bias", D);
                    W(p + "attn.c_attn.weight", D, 3 * D); Zero(p + "attn.c_attn.bias", 3 * D);     // Conv1D: [in, out]
                    W(p + "attn.c_proj.weight", D, D); Zero(p + "attn.c_proj.bias", D);
                    One(p + "ln_2.weight", D); Zero(p + "ln_2.bias", D);
                    W(p + "mlp.c_fc.weight", D, I); Zero(p + "mlp.c_fc.bias", I);
                    W(p + "mlp.c_proj.weight", I, D); Zero(p + "mlp.c_proj.bias", D);
                }
                One("transformer.ln_f.weight", D); Zero("transformer.ln_f.bias", D);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(config), config.Family, "unknown model family");
        }
        if (config.Head == ModelHead.Score) W(WeightNames.Score, 1, D);
        else if (!config.TieWordEmbeddings) W(WeightNames.LmHead(config), V, D);
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

/// <summary>Hugging Face tensor names of the families.</summary>
public static class WeightNames
{
    /// <summary>The scalar head of a sequence-classification model: <c>score.weight [1, D]</c>.</summary>
    public const string Score = "score.weight";

    /// <summary>The prefix of the base model's tensors: <c>model.</c>, <c>gpt_neox.</c> or <c>transformer.</c>.</summary>
    public static string BasePrefix(ModelConfig c) => c.Family switch
    {
        ModelFamily.Llama or ModelFamily.Qwen2 => "model.",
        ModelFamily.GptNeox => "gpt_neox.",
        ModelFamily.Gpt2 => "transformer.",
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    /// <summary>Token embedding [V, D].</summary>
    public static string Embedding(ModelConfig c) => c.Family switch
    {
        ModelFamily.Llama or ModelFamily.Qwen2 => "model.embed_tokens.weight",
        ModelFamily.GptNeox => "gpt_neox.embed_in.weight",
        ModelFamily.Gpt2 => "transformer.wte.weight",
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    /// <summary>The untied LM head [V, D]: <c>lm_head.weight</c>, or <c>embed_out.weight</c> for gpt_neox.</summary>
    public static string LmHead(ModelConfig c) => c.Family == ModelFamily.GptNeox ? "embed_out.weight" : "lm_head.weight";

    /// <summary>The prefix of layer <paramref name="i"/>'s tensors, ending in a dot.</summary>
    public static string Layer(ModelConfig c, int i) => c.Family switch
    {
        ModelFamily.Llama or ModelFamily.Qwen2 => $"model.layers.{i}.",
        ModelFamily.GptNeox => $"gpt_neox.layers.{i}.",
        ModelFamily.Gpt2 => $"transformer.h.{i}.",
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    /// <summary>The prefix of a TRL value head (<c>AutoModelForCausalLMWithValueHead</c> saves <c>v_head.summary.weight</c> and <c>.bias</c>).</summary>
    public const string ValueHeadPrefix = "v_head.";

    /// <summary>
    /// Tensors HF checkpoints may carry that transformers does not load into the family's model: causal-mask and rotary
    /// buffers (<c>attn.bias</c>, <c>attn.masked_bias</c>, <c>attention.bias</c>, <c>attention.masked_bias</c>,
    /// <c>rotary_emb.inv_freq</c>) and a TRL value head (<c>v_head.*</c>, trl <c>modeling_value_head.py</c>).
    /// </summary>
    public static bool IsIgnoredOnLoad(ModelConfig c, string name) => name.StartsWith(ValueHeadPrefix, StringComparison.Ordinal) || c.Family switch
    {
        ModelFamily.Gpt2 => name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal),
        ModelFamily.GptNeox => name.EndsWith(".attention.bias", StringComparison.Ordinal) || name.EndsWith(".attention.masked_bias", StringComparison.Ordinal)
                               || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal),
        _ => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal),
    };
}
