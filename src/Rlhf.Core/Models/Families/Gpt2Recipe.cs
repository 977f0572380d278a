using System.Text.Json.Nodes;
using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// GPT-2 (transformers <c>modeling_gpt2.py</c>): learned position table <c>wpe</c> added to the token embedding, pre-LayerNorm
/// blocks, Conv1D projections stored [in, out] (y = x·W + b), fused c_attn split as [q | k | v] of width D each, gelu_new MLP,
/// no rotary, head tied to <c>wte</c> by default. Config keys <c>n_embd</c>, <c>n_layer</c>, <c>n_head</c>, <c>n_positions</c>.
/// </summary>
public sealed class Gpt2Recipe : ModelRecipe
{
    /// <summary>The learned position table [n_positions, D].</summary>
    public const string PositionEmbedding = "transformer.wpe.weight";

    /// <inheritdoc />
    public override ModelFamily Family => ModelFamily.Gpt2;
    /// <inheritdoc />
    public override string ModelType => "gpt2";
    /// <inheritdoc />
    public override string ArchitectureStem => "GPT2";
    /// <inheritdoc />
    public override string CausalLmSuffix => "LMHeadModel";
    /// <inheritdoc />
    public override string BasePrefix => "transformer.";
    /// <inheritdoc />
    public override string Embedding => "transformer.wte.weight";
    /// <inheritdoc />
    public override string Layer(int i) => $"transformer.h.{i}.";

    /// <inheritdoc />
    public override bool IsBuffer(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal);

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> EmbeddingWeights(ModelConfig c) =>
        [.. base.EmbeddingWeights(c), new(PositionEmbedding, [c.MaxPositionEmbeddings, c.HiddenSize], WeightInit.Normal)];

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> LayerWeights(ModelConfig c, string p)
    {
        long D = c.HiddenSize, I = c.IntermediateSize;
        yield return new(p + "ln_1.weight", [D], WeightInit.Ones);
        yield return new(p + "ln_1.bias", [D], WeightInit.Zeros);
        yield return new(p + "attn.c_attn.weight", [D, 3 * D], WeightInit.Normal);      // Conv1D: [in, out]
        yield return new(p + "attn.c_attn.bias", [3 * D], WeightInit.Zeros);
        yield return new(p + "attn.c_proj.weight", [D, D], WeightInit.Normal);
        yield return new(p + "attn.c_proj.bias", [D], WeightInit.Zeros);
        yield return new(p + "ln_2.weight", [D], WeightInit.Ones);
        yield return new(p + "ln_2.bias", [D], WeightInit.Zeros);
        yield return new(p + "mlp.c_fc.weight", [D, I], WeightInit.Normal);
        yield return new(p + "mlp.c_fc.bias", [I], WeightInit.Zeros);
        yield return new(p + "mlp.c_proj.weight", [I, D], WeightInit.Normal);
        yield return new(p + "mlp.c_proj.bias", [D], WeightInit.Zeros);
    }

    /// <inheritdoc />
    public override IEnumerable<WeightSpec> FinalNormWeights(ModelConfig c) =>
        [new("transformer.ln_f.weight", [c.HiddenSize], WeightInit.Ones), new("transformer.ln_f.bias", [c.HiddenSize], WeightInit.Zeros)];

    /// <inheritdoc />
    public override long RotaryDim(ModelConfig c) => 0;

    /// <inheritdoc />
    public override IEnumerable<string> Problems(ModelConfig c)
    {
        if (c.NumAttentionHeads > 0 && c.HeadDim * c.NumAttentionHeads != c.HiddenSize)
            yield return $"{ModelType} needs head_dim × heads = hidden_size ({c.HeadDim} × {c.NumAttentionHeads} ≠ {c.HiddenSize})";
        if (c.NumKeyValueHeadsOverride is { } kv && kv != c.NumAttentionHeads)
            yield return $"{ModelType} has no grouped-query attention (num_key_value_heads {kv} ≠ heads {c.NumAttentionHeads})";
        if (c.MaxPositionEmbeddings <= 0) yield return "gpt2 needs n_positions > 0";
        if (c.RopeScaling is not null) yield return "gpt2 has learned positions, not rotary: rope scaling does not apply";
    }

    /// <inheritdoc />
    public override Tensor Embed(ModelWeights w, Tensor ids, Tensor positions)
    {
        var x = base.Embed(w, ids, positions);                                                              // [B, T, D]
        var maxPos = w.Config.MaxPositionEmbeddings;
        if (positions.NumEl > 0 && positions.Max().ItemLong() >= maxPos)
            throw new ArgumentException($"gpt2 positions must be < n_positions {maxPos}; got {positions.Max().ItemLong()}", nameof(positions));
        return x + Functional.Embedding(w[PositionEmbedding], positions);                                   // [B, T, D]
    }

    private static Tensor Ln(ModelWeights w, string name, Tensor x) => Norms.LayerNorm(x, w[name + ".weight"], w[name + ".bias"], w.Config.LayerNormEps);

    /// <inheritdoc />
    public override Tensor Block(ModelWeights w, int layer, string p, Tensor x, Tensor positions, IAttention attention)
    {
        x = x + SelfAttention.Forward(w, layer, Ln(w, p + "ln_1", x), positions, attention);
        return x + Models.Mlp.Forward(w, layer, Ln(w, p + "ln_2", x));
    }

    /// <inheritdoc />
    public override Tensor FinalNorm(ModelWeights w, Tensor hidden) => Ln(w, "transformer.ln_f", hidden);

    /// <inheritdoc />
    public override (Tensor Q, Tensor K, Tensor V) QueryKeyValue(ModelWeights w, string p, Tensor x)
    {
        var c = w.Config;
        long b = x.Size(0), t = x.Size(1), h = c.NumAttentionHeads, hd = c.HeadDim;
        var qkv = Torch.Addmm(w[p + "attn.c_attn.bias"], x.Reshape(b * t, c.HiddenSize), w[p + "attn.c_attn.weight"]).View(b, t, 3, h, hd);  // [B, T, 3, H, hd]
        return (qkv.Select(2, 0).Transpose(1, 2), qkv.Select(2, 1).Transpose(1, 2), qkv.Select(2, 2).Transpose(1, 2));                      // [B, H, T, hd]
    }

    /// <inheritdoc />
    public override Tensor AttentionOutput(ModelWeights w, string p, Tensor y)
    {
        long b = y.Size(0), t = y.Size(1);
        return Torch.Addmm(w[p + "attn.c_proj.bias"], y.Reshape(b * t, y.Size(2)), w[p + "attn.c_proj.weight"]).View(b, t, w.Config.HiddenSize);  // [B, T, D]
    }

    /// <inheritdoc />
    public override Tensor Mlp(ModelWeights w, string p, Tensor x)
    {
        var c = w.Config;
        long b = x.Size(0), t = x.Size(1);
        var hid = Activations.Apply(c.HiddenAct, Torch.Addmm(w[p + "mlp.c_fc.bias"], x.Reshape(b * t, c.HiddenSize), w[p + "mlp.c_fc.weight"])); // [B·T, I]
        return Torch.Addmm(w[p + "mlp.c_proj.bias"], hid, w[p + "mlp.c_proj.weight"]).View(b, t, c.HiddenSize);                                  // [B, T, D]
    }

    /// <inheritdoc />
    public override ModelConfig ReadHf(HfConfigReader r)
    {
        var d = r.Get("n_embd", 768L);
        if (!r.Get("scale_attn_weights", true)) r.Problems.Add("'scale_attn_weights': false is not supported");
        if (r.Get("scale_attn_by_inverse_layer_idx", false)) r.Problems.Add("'scale_attn_by_inverse_layer_idx': true is not supported");
        if (r.Get("add_cross_attention", false)) r.Problems.Add("'add_cross_attention': true is not supported (decoder-only models)");
        Fixed(r, "attention_bias", true, "always has attention biases");
        Fixed(r, "mlp_bias", true, "always has MLP biases");
        var vocab = r.Get("vocab_size", 50257L);
        return new ModelConfig
        {
            Family = ModelFamily.Gpt2,
            VocabSize = vocab,
            HiddenSize = d,
            IntermediateSize = r.Get<long?>("n_inner", null) ?? 4 * d,
            NumHiddenLayers = r.Get("n_layer", 12),
            NumAttentionHeads = r.Get("n_head", 12),
            MaxPositionEmbeddings = r.Get("n_positions", 1024L),
            LayerNormEps = r.Get("layer_norm_epsilon", 1e-5),
            TieWordEmbeddings = r.Get("tie_word_embeddings", true),
            AttentionBias = true, MlpBias = true, RotaryPct = 0,
            HiddenAct = r.Get("activation_function", "gelu_new"),
            // GPT2Config defaults both ids to 50256, which only exists in a vocabulary of more than 50256 tokens.
            BosTokenId = vocab > 50256 ? 50256 : null,
            EosTokenId = vocab > 50256 ? 50256 : null,
        };
    }

    /// <inheritdoc />
    public override void WriteHf(ModelConfig c, JsonObject o)
    {
        o["vocab_size"] = c.VocabSize;
        o["n_embd"] = c.HiddenSize;
        o["n_inner"] = c.IntermediateSize;
        o["n_layer"] = c.NumHiddenLayers;
        o["n_head"] = c.NumAttentionHeads;
        o["n_positions"] = c.MaxPositionEmbeddings;
        o["layer_norm_epsilon"] = c.LayerNormEps;
        o["activation_function"] = c.HiddenAct;
    }
}
