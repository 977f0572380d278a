using System.Text.Json.Nodes;
using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>
/// A model family as one recipe: its Hugging Face names (<c>model_type</c>, architecture class, tensor names), the
/// weights it expects, its block structure, and the config.json keys it reads and writes. <see cref="Transformer"/>,
/// <see cref="SelfAttention"/>, <see cref="Mlp"/>, <see cref="ModelWeights"/>, <see cref="WeightNames"/> and Shell's
/// <c>HfConfig</c> ask the config's recipe instead of switching on the family, so adding a family is one new recipe
/// file (plus its <see cref="ModelFamily"/> member and its line in <see cref="ModelRecipes.All"/>).
/// Weights are read by name from a <see cref="ModelWeights"/>; nothing here owns or mutates a parameter.
/// </summary>
public abstract class ModelRecipe
{
    /// <summary>The family this recipe builds.</summary>
    public abstract ModelFamily Family { get; }
    /// <summary>HF <c>model_type</c>.</summary>
    public abstract string ModelType { get; }
    /// <summary>The stem of HF's class names (<c>Llama</c> → <c>LlamaForCausalLM</c>, <c>LlamaForSequenceClassification</c>).</summary>
    public abstract string ArchitectureStem { get; }
    /// <summary>The suffix of HF's language-model class (<c>ForCausalLM</c>; GPT-2's is <c>LMHeadModel</c>).</summary>
    public virtual string CausalLmSuffix => "ForCausalLM";

    // ---- tensor names ------------------------------------------------------------------------------------------

    /// <summary>The prefix of the base model's tensors, ending in a dot (<c>model.</c>); base-model checkpoints omit it.</summary>
    public abstract string BasePrefix { get; }
    /// <summary>The token embedding [V, D].</summary>
    public abstract string Embedding { get; }
    /// <summary>The untied LM head [V, D].</summary>
    public virtual string LmHead => "lm_head.weight";
    /// <summary>The prefix of layer <paramref name="i"/>'s tensors, ending in a dot.</summary>
    public abstract string Layer(int i);
    /// <summary>Stored tensors transformers does not load into this family's model (buffers), beside a TRL value head.</summary>
    public virtual bool IsBuffer(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    // ---- expected weights --------------------------------------------------------------------------------------

    /// <summary>The weights before the first block: the token embedding (and a learned position table where there is one).</summary>
    public virtual IEnumerable<WeightSpec> EmbeddingWeights(ModelConfig c) => [new(Embedding, [c.VocabSize, c.HiddenSize], WeightInit.Normal)];
    /// <summary>The weights of one block under prefix <paramref name="p"/> (<see cref="Layer"/>), in module order.</summary>
    public abstract IEnumerable<WeightSpec> LayerWeights(ModelConfig c, string p);
    /// <summary>The final norm's weights.</summary>
    public abstract IEnumerable<WeightSpec> FinalNormWeights(ModelConfig c);

    // ---- architecture ------------------------------------------------------------------------------------------

    /// <summary>Rotated dims per head (0 without rotary).</summary>
    public virtual long RotaryDim(ModelConfig c) => c.HeadDim;
    /// <summary>Family-specific inconsistencies of <paramref name="c"/> (beside the ones every family shares).</summary>
    public virtual IEnumerable<string> Problems(ModelConfig c) => [];

    // ---- math (shapes as in Transformer) -----------------------------------------------------------------------

    /// <summary>Input embeddings: ids [B, T] at positions [B, T] → [B, T, D].</summary>
    public virtual Tensor Embed(ModelWeights w, Tensor ids, Tensor positions) => Functional.Embedding(w[Embedding], ids);
    /// <summary>Block <paramref name="layer"/> (prefix <paramref name="p"/>): hidden [B, T, D] → [B, T, D], written as its residual lines.</summary>
    public abstract Tensor Block(ModelWeights w, int layer, string p, Tensor x, Tensor positions, IAttention attention);
    /// <summary>The final norm: [B, T, D] → [B, T, D].</summary>
    public abstract Tensor FinalNorm(ModelWeights w, Tensor hidden);
    /// <summary>The attention projections of normalised x [B, T, D]: q [B, H, T, hd], k and v [B, KV, T, hd] (before rotary).</summary>
    public abstract (Tensor Q, Tensor K, Tensor V) QueryKeyValue(ModelWeights w, string p, Tensor x);
    /// <summary>The attention output projection: y [B, T, H·hd] → [B, T, D].</summary>
    public abstract Tensor AttentionOutput(ModelWeights w, string p, Tensor y);
    /// <summary>The feed-forward sub-layer on normalised x [B, T, D] → [B, T, D].</summary>
    public abstract Tensor Mlp(ModelWeights w, string p, Tensor x);

    // ---- config.json -------------------------------------------------------------------------------------------

    /// <summary>The architecture from this family's config.json keys, with transformers' defaults for absent ones; problems go to the reader.</summary>
    public abstract ModelConfig ReadHf(HfConfigReader r);
    /// <summary>Writes this family's architecture keys of <paramref name="c"/> into <paramref name="o"/>.</summary>
    public abstract void WriteHf(ModelConfig c, JsonObject o);

    /// <summary>A key whose value this family fixes: a contradicting value in the config is a problem naming the key.</summary>
    protected void Fixed(HfConfigReader r, string key, bool value, string what)
    {
        if (r.Optional<bool>(key) is { } v && v != value)
            r.Problems.Add($"'{key}': {v.ToString().ToLowerInvariant()} is not supported: {ModelType} {what}");
    }
}

/// <summary>The recipes of the families Rlhf implements.</summary>
public static class ModelRecipes
{
    /// <summary>Every recipe, one per <see cref="ModelFamily"/>.</summary>
    public static readonly IReadOnlyList<ModelRecipe> All = [new LlamaRecipe(), new Qwen2Recipe(), new GptNeoxRecipe(), new Gpt2Recipe()];

    private static readonly Dictionary<ModelFamily, ModelRecipe> ByFamily = All.ToDictionary(r => r.Family);

    /// <summary>The recipe of <paramref name="family"/>.</summary>
    public static ModelRecipe Of(ModelFamily family) =>
        ByFamily.TryGetValue(family, out var r) ? r : throw new ArgumentOutOfRangeException(nameof(family), family, "unknown model family");

    /// <summary>The recipe whose <c>model_type</c> is <paramref name="modelType"/>, or null.</summary>
    public static ModelRecipe? OfModelType(string modelType) => All.FirstOrDefault(r => r.ModelType == modelType);
}
