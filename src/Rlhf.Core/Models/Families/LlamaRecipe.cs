using System.Text.Json.Nodes;
using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>
/// Llama 1–3 (transformers <c>modeling_llama.py</c>): pre-norm blocks x = x + attn(rms(x)); x = x + mlp(rms(x)),
/// grouped-query attention with separate q/k/v/o projections (biases with <c>attention_bias</c>), full rotary,
/// SwiGLU MLP down(act(gate(x))·up(x)) (biases with <c>mlp_bias</c>), RMSNorm, untied head by default.
/// </summary>
public class LlamaRecipe : ModelRecipe
{
    /// <inheritdoc />
    public override ModelFamily Family => ModelFamily.Llama;
    /// <inheritdoc />
    public override string ModelType => "llama";
    /// <inheritdoc />
    public override string ArchitectureStem => "Llama";
    /// <inheritdoc />
    public override string BasePrefix => "model.";
    /// <inheritdoc />
    public override string Embedding => "model.embed_tokens.weight";
    /// <inheritdoc />
    public override string Layer(int i) => $"model.layers.{i}.";

    /// <summary>Whether q/k/v carry biases.</summary>
    protected virtual bool QkvBias(ModelConfig c) => c.AttentionBias;
    /// <summary>Whether o_proj carries a bias.</summary>
    protected virtual bool OutputBias(ModelConfig c) => c.AttentionBias;

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> LayerWeights(ModelConfig c, string p)
    {
        long D = c.HiddenSize, I = c.IntermediateSize, H = c.NumAttentionHeads, KV = c.NumKeyValueHeads, hd = c.HeadDim;
        yield return new(p + "input_layernorm.weight", [D], WeightInit.Ones);
        yield return new(p + "self_attn.q_proj.weight", [H * hd, D], WeightInit.Normal);
        if (QkvBias(c)) yield return new(p + "self_attn.q_proj.bias", [H * hd], WeightInit.Zeros);
        yield return new(p + "self_attn.k_proj.weight", [KV * hd, D], WeightInit.Normal);
        if (QkvBias(c)) yield return new(p + "self_attn.k_proj.bias", [KV * hd], WeightInit.Zeros);
        yield return new(p + "self_attn.v_proj.weight", [KV * hd, D], WeightInit.Normal);
        if (QkvBias(c)) yield return new(p + "self_attn.v_proj.bias", [KV * hd], WeightInit.Zeros);
        yield return new(p + "self_attn.o_proj.weight", [D, H * hd], WeightInit.Normal);
        if (OutputBias(c)) yield return new(p + "self_attn.o_proj.bias", [D], WeightInit.Zeros);
        yield return new(p + "post_attention_layernorm.weight", [D], WeightInit.Ones);
        foreach (var (name, rows, cols) in new[] { ("gate_proj", I, D), ("up_proj", I, D), ("down_proj", D, I) })
        {
            yield return new($"{p}mlp.{name}.weight", [rows, cols], WeightInit.Normal);
            if (c.MlpBias) yield return new($"{p}mlp.{name}.bias", [rows], WeightInit.Zeros);
        }
    }

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> FinalNormWeights(ModelConfig c) => [new("model.norm.weight", [c.HiddenSize], WeightInit.Ones)];

    /// <inheritdoc />
    public override IEnumerable<string> Problems(ModelConfig c)
    {
        if (c.RotaryPct != 1.0) yield return $"{ModelType} rotates whole heads; partial_rotary_factor {c.RotaryPct} is not supported";
    }

    /// <inheritdoc />
    public override Tensor Block(ModelWeights w, int layer, string p, Tensor x, Tensor positions, IAttention attention)
    {
        var eps = w.Config.RmsNormEps;
        x = x + SelfAttention.Forward(w, layer, Norms.RmsNorm(x, w[p + "input_layernorm.weight"], eps), positions, attention);
        return x + Models.Mlp.Forward(w, layer, Norms.RmsNorm(x, w[p + "post_attention_layernorm.weight"], eps));
    }

    /// <inheritdoc />
    public override Tensor FinalNorm(ModelWeights w, Tensor hidden) => Norms.RmsNorm(hidden, w["model.norm.weight"], w.Config.RmsNormEps);

    /// <inheritdoc />
    public override (Tensor Q, Tensor K, Tensor V) QueryKeyValue(ModelWeights w, string p, Tensor x)
    {
        var c = w.Config;
        long b = x.Size(0), t = x.Size(1), h = c.NumAttentionHeads, kvh = c.NumKeyValueHeads, hd = c.HeadDim;
        var q = Functional.Linear(x, w[p + "self_attn.q_proj.weight"], w.TryGet(p + "self_attn.q_proj.bias")).View(b, t, h, hd).Transpose(1, 2);      // [B, H, T, hd]
        var k = Functional.Linear(x, w[p + "self_attn.k_proj.weight"], w.TryGet(p + "self_attn.k_proj.bias")).View(b, t, kvh, hd).Transpose(1, 2);    // [B, KV, T, hd]
        var v = Functional.Linear(x, w[p + "self_attn.v_proj.weight"], w.TryGet(p + "self_attn.v_proj.bias")).View(b, t, kvh, hd).Transpose(1, 2);    // [B, KV, T, hd]
        return (q, k, v);
    }

    /// <inheritdoc />
    public override Tensor AttentionOutput(ModelWeights w, string p, Tensor y) =>
        Functional.Linear(y, w[p + "self_attn.o_proj.weight"], w.TryGet(p + "self_attn.o_proj.bias"));                                                // [B, T, D]

    /// <inheritdoc />
    public override Tensor Mlp(ModelWeights w, string p, Tensor x)
    {
        var gate = Functional.Linear(x, w[p + "mlp.gate_proj.weight"], w.TryGet(p + "mlp.gate_proj.bias"));                                         // [B, T, I]
        var up = Functional.Linear(x, w[p + "mlp.up_proj.weight"], w.TryGet(p + "mlp.up_proj.bias"));                                               // [B, T, I]
        var act = w.Config.HiddenAct is "silu" or "swish" && FusedLayers.Fit(gate, up) ? Functional.SiluMul(gate, up)                               // one fused pass
            : Activations.Apply(w.Config.HiddenAct, gate) * up;
        return Functional.Linear(act, w[p + "mlp.down_proj.weight"], w.TryGet(p + "mlp.down_proj.bias"));                                           // [B, T, D]
    }

    // ---- config.json (transformers LlamaConfig) -----------------------------------------------------------------

    /// <summary>HF default vocabulary size.</summary>
    protected virtual long DefaultVocabSize => 32000;
    /// <summary>HF default MLP width.</summary>
    protected virtual long DefaultIntermediateSize => 11008;
    /// <summary>HF default of an absent <c>num_key_value_heads</c> (null: one per query head; an explicit null means that too).</summary>
    protected virtual int? DefaultKeyValueHeads => null;
    /// <summary>HF default context length.</summary>
    protected virtual long DefaultMaxPositionEmbeddings => 2048;

    /// <inheritdoc />
    public override ModelConfig ReadHf(HfConfigReader r)
    {
        var heads = r.Get("num_attention_heads", 32);
        var maxPositions = r.Get("max_position_embeddings", DefaultMaxPositionEmbeddings);
        var (theta, partial, scaling) = HfRope.Read(r, ["rope_theta"], ["partial_rotary_factor"], 1.0, maxPositions);
        var c = new ModelConfig
        {
            Family = Family,
            VocabSize = r.Get("vocab_size", DefaultVocabSize),
            HiddenSize = r.Get("hidden_size", 4096L),
            IntermediateSize = r.Get("intermediate_size", DefaultIntermediateSize),
            NumHiddenLayers = r.Get("num_hidden_layers", 32),
            NumAttentionHeads = heads,
            NumKeyValueHeadsOverride = r.Root.ContainsKey("num_key_value_heads") ? r.Get<int?>("num_key_value_heads", null) : DefaultKeyValueHeads,
            HeadDimOverride = r.Get<long?>("head_dim", null),
            MaxPositionEmbeddings = maxPositions,
            RmsNormEps = r.Get("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            RotaryPct = partial,
            RopeScaling = scaling,
            TieWordEmbeddings = r.Get("tie_word_embeddings", false),
            HiddenAct = r.Get("hidden_act", "silu"),
        };
        c = ReadBiases(r, c);
        // Explicit values equal to the defaults are stored as "default", so equal architectures compare equal.
        if (c.NumKeyValueHeadsOverride == heads) c = c with { NumKeyValueHeadsOverride = null };
        if (heads > 0 && c.HeadDimOverride == c.HiddenSize / heads && c.HiddenSize % heads == 0) c = c with { HeadDimOverride = null };
        return c;
    }

    /// <summary>The bias settings (and any other family-specific keys) on top of the shared Llama-style keys.</summary>
    protected virtual ModelConfig ReadBiases(HfConfigReader r, ModelConfig c) =>
        c with { AttentionBias = r.Get("attention_bias", false), MlpBias = r.Get("mlp_bias", false) };

    /// <inheritdoc />
    public override void WriteHf(ModelConfig c, JsonObject o)
    {
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
        WriteBiases(c, o);
        o["hidden_act"] = c.HiddenAct;
    }

    /// <summary>Writes the bias keys (Llama's <c>attention_bias</c>, <c>mlp_bias</c>).</summary>
    protected virtual void WriteBiases(ModelConfig c, JsonObject o)
    {
        o["attention_bias"] = c.AttentionBias;
        o["mlp_bias"] = c.MlpBias;
    }
}
