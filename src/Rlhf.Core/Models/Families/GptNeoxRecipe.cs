using System.Text.Json.Nodes;
using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>
/// GPT-NeoX / Pythia (transformers <c>modeling_gpt_neox.py</c>): LayerNorm, one fused q/k/v projection laid out per head
/// as [q | k | v], rotary on the first <c>partial_rotary_factor</c>·hd dims, GeLU MLP with biases, and the parallel
/// residual x + attn(ln1 x) + mlp(ln2 x) (sequential with <c>use_parallel_residual: false</c>); head <c>embed_out</c>.
/// </summary>
public sealed class GptNeoxRecipe : ModelRecipe
{
    /// <inheritdoc />
    public override ModelFamily Family => ModelFamily.GptNeox;
    /// <inheritdoc />
    public override string ModelType => "gpt_neox";
    /// <inheritdoc />
    public override string ArchitectureStem => "GPTNeoX";
    /// <inheritdoc />
    public override string BasePrefix => "gpt_neox.";
    /// <inheritdoc />
    public override string Embedding => "gpt_neox.embed_in.weight";
    /// <inheritdoc />
    public override string LmHead => "embed_out.weight";
    /// <inheritdoc />
    public override string Layer(int i) => $"gpt_neox.layers.{i}.";

    /// <inheritdoc />
    public override bool IsBuffer(string name) =>
        name.EndsWith(".attention.bias", StringComparison.Ordinal) || name.EndsWith(".attention.masked_bias", StringComparison.Ordinal) || base.IsBuffer(name);

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> LayerWeights(ModelConfig c, string p)
    {
        long D = c.HiddenSize, I = c.IntermediateSize;
        yield return new(p + "input_layernorm.weight", [D], WeightInit.Ones);
        yield return new(p + "input_layernorm.bias", [D], WeightInit.Zeros);
        yield return new(p + "post_attention_layernorm.weight", [D], WeightInit.Ones);
        yield return new(p + "post_attention_layernorm.bias", [D], WeightInit.Zeros);
        yield return new(p + "attention.query_key_value.weight", [3 * D, D], WeightInit.Normal);
        if (c.AttentionBias) yield return new(p + "attention.query_key_value.bias", [3 * D], WeightInit.Zeros);
        yield return new(p + "attention.dense.weight", [D, D], WeightInit.Normal);
        if (c.AttentionBias) yield return new(p + "attention.dense.bias", [D], WeightInit.Zeros);
        yield return new(p + "mlp.dense_h_to_4h.weight", [I, D], WeightInit.Normal);
        yield return new(p + "mlp.dense_h_to_4h.bias", [I], WeightInit.Zeros);
        yield return new(p + "mlp.dense_4h_to_h.weight", [D, I], WeightInit.Normal);
        yield return new(p + "mlp.dense_4h_to_h.bias", [D], WeightInit.Zeros);
    }

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> FinalNormWeights(ModelConfig c) =>
        [new("gpt_neox.final_layer_norm.weight", [c.HiddenSize], WeightInit.Ones), new("gpt_neox.final_layer_norm.bias", [c.HiddenSize], WeightInit.Zeros)];

    /// <inheritdoc />
    public override long RotaryDim(ModelConfig c) => (long)(c.HeadDim * c.RotaryPct);

    /// <inheritdoc />
    public override IEnumerable<string> Problems(ModelConfig c)
    {
        if (c.NumAttentionHeads > 0 && c.HeadDim * c.NumAttentionHeads != c.HiddenSize)
            yield return $"{ModelType} needs head_dim × heads = hidden_size ({c.HeadDim} × {c.NumAttentionHeads} ≠ {c.HiddenSize})";
        if (c.NumKeyValueHeadsOverride is { } kv && kv != c.NumAttentionHeads)
            yield return $"{ModelType} has no grouped-query attention (num_key_value_heads {kv} ≠ heads {c.NumAttentionHeads})";
    }

    private static Tensor Ln(ModelWeights w, string name, Tensor x) => Norms.LayerNorm(x, w[name + ".weight"], w[name + ".bias"], w.Config.LayerNormEps);

    /// <inheritdoc />
    public override Tensor Block(ModelWeights w, int layer, string p, Tensor x, Tensor positions, IAttention attention)
    {
        var attn = SelfAttention.Forward(w, layer, Ln(w, p + "input_layernorm", x), positions, attention);
        if (w.Config.UseParallelResidual)
            return x + attn + Models.Mlp.Forward(w, layer, Ln(w, p + "post_attention_layernorm", x));
        x = x + attn;
        return x + Models.Mlp.Forward(w, layer, Ln(w, p + "post_attention_layernorm", x));
    }

    /// <inheritdoc />
    public override Tensor FinalNorm(ModelWeights w, Tensor hidden) => Ln(w, "gpt_neox.final_layer_norm", hidden);

    /// <inheritdoc />
    public override (Tensor Q, Tensor K, Tensor V) QueryKeyValue(ModelWeights w, string p, Tensor x)
    {
        var c = w.Config;
        long b = x.Size(0), t = x.Size(1), h = c.NumAttentionHeads, hd = c.HeadDim;
        var qkv = Functional.Linear(x, w[p + "attention.query_key_value.weight"], w.TryGet(p + "attention.query_key_value.bias"))
            .View(b, t, h, 3 * hd).Transpose(1, 2);                                                                          // [B, H, T, 3hd]
        return (qkv.Narrow(-1, 0, hd), qkv.Narrow(-1, hd, hd), qkv.Narrow(-1, 2 * hd, hd));                              // [B, H, T, hd]
    }

    /// <inheritdoc />
    public override Tensor AttentionOutput(ModelWeights w, string p, Tensor y) =>
        Functional.Linear(y, w[p + "attention.dense.weight"], w.TryGet(p + "attention.dense.bias"));                      // [B, T, D]

    /// <inheritdoc />
    public override Tensor Mlp(ModelWeights w, string p, Tensor x)
    {
        var hid = Activations.Apply(w.Config.HiddenAct, Functional.Linear(x, w[p + "mlp.dense_h_to_4h.weight"], w[p + "mlp.dense_h_to_4h.bias"]));   // [B, T, I]
        return Functional.Linear(hid, w[p + "mlp.dense_4h_to_h.weight"], w[p + "mlp.dense_4h_to_h.bias"]);                                           // [B, T, D]
    }

    /// <inheritdoc />
    public override ModelConfig ReadHf(HfConfigReader r)
    {
        var maxPositions = r.Get("max_position_embeddings", 2048L);
        // GPTNeoXConfig.convert_rope_params_to_dict: θ from rotary_emb_base, the rotated fraction from rotary_pct (0.25).
        var (theta, partial, scaling) = HfRope.Read(r, ["rotary_emb_base", "rope_theta"], ["rotary_pct", "partial_rotary_factor"], 0.25, maxPositions);
        Fixed(r, "mlp_bias", true, "always has MLP biases");
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

    /// <inheritdoc />
    public override void WriteHf(ModelConfig c, JsonObject o)
    {
        o["vocab_size"] = c.VocabSize;
        o["hidden_size"] = c.HiddenSize;
        o["intermediate_size"] = c.IntermediateSize;
        o["num_hidden_layers"] = c.NumHiddenLayers;
        o["num_attention_heads"] = c.NumAttentionHeads;
        o["max_position_embeddings"] = c.MaxPositionEmbeddings;
        o["layer_norm_eps"] = c.LayerNormEps;
        // Both layouts: transformers 4.x reads rotary_pct/rotary_emb_base/rope_scaling, 5.x rope_parameters.
        o["rotary_pct"] = c.RotaryPct;
        o["rotary_emb_base"] = c.RopeTheta;
        if (c.RopeScaling is not null) o["rope_scaling"] = HfRope.ScalingObject(c.RopeScaling);
        o["rope_parameters"] = HfRope.Parameters(c);
        o["use_parallel_residual"] = c.UseParallelResidual;
        o["attention_bias"] = c.AttentionBias;
        o["hidden_act"] = c.HiddenAct;
    }
}
