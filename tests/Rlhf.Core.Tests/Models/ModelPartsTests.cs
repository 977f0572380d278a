using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

public class ModelPartsTests
{
    [Fact]
    public void Llama3_inverse_frequencies_follow_hf()
    {
        // hd 128, θ 500000, Llama 3.1 scaling (8, 1, 4, 8192): reference formula evaluated independently.
        var s = new Llama3RopeScaling(8, 1, 4, 8192);
        var got = Rotary.Frequencies(128, 500000, s).InverseFrequencies;
        var want = ReferenceModel.InvFreq(128, 500000, s).Inv;
        for (var j = 0; j < 64; j++) Assert.Equal(want[j], got[j], want[j] * 1e-6);
        Assert.Equal(1.0, got[0], 1e-12);                               // highest frequency unchanged
        var unscaled = Rotary.DefaultInverseFrequencies(128, 500000);
        Assert.Equal(unscaled[63] / 8, got[63], unscaled[63] * 1e-6);    // lowest frequency divided by the factor
    }

    [Fact]
    public void Rotary_rotates_pairs_by_position_times_frequency()
    {
        using var scope = Torch.NewScope();
        // one head, hd 4, rotary over all 4 dims: pairs (0, 2) and (1, 3) rotate by p·1 and p·θ^(-1/2).
        var x = Torch.From(new double[] { 1, 2, 3, 4 }, 1, 1, 1, 4);
        var (cos, sin) = Rotary.Tables(Torch.From(new long[] { 3 }, 1, 1), Rotary.DefaultInverseFrequencies(4, 100), 1.0, ScalarType.Float64);
        var y = Rotary.Apply(x, cos, sin).ToArray<double>();
        double a0 = 3, a1 = 3 * 0.1;
        Assert.Equal(1 * Math.Cos(a0) - 3 * Math.Sin(a0), y[0], 1e-6);
        Assert.Equal(2 * Math.Cos(a1) - 4 * Math.Sin(a1), y[1], 1e-6);
        Assert.Equal(3 * Math.Cos(a0) + 1 * Math.Sin(a0), y[2], 1e-6);
        Assert.Equal(4 * Math.Cos(a1) + 2 * Math.Sin(a1), y[3], 1e-6);
    }

    [Fact]
    public void Rms_norm_by_hand()
    {
        using var scope = Torch.NewScope();
        var y = Norms.RmsNorm(Torch.From(new double[] { 3, 4 }, 1, 2), Torch.From(new double[] { 1, 2 }), 0).ToArray<double>();
        var r = Math.Sqrt(12.5);
        Assert.Equal(3 / r, y[0], 1e-12);
        Assert.Equal(8 / r, y[1], 1e-12);
    }

    [Fact]
    public void Attention_over_one_key_returns_its_value_and_masked_keys_are_ignored()
    {
        using var scope = Torch.NewScope();
        var q = Torch.From(new double[] { 1, 0, 0, 1 }, 1, 1, 2, 2);
        var k = Torch.From(new double[] { 1, 0, 0, 1 }, 1, 1, 2, 2);
        var v = Torch.From(new double[] { 5, 6, 7, 8 }, 1, 1, 2, 2);
        var y = new CausalAttention().Attend(0, q, k, v, 1.0).ToArray<double>();
        Assert.Equal(new double[] { 5, 6 }, y[..2]);                   // first query sees only the first key
        var p = Math.Exp(1) / (1 + Math.Exp(1));                        // second query: scores (0, 1)
        Assert.Equal(5 * (1 - p) + 7 * p, y[2], 1e-12);
        Assert.Equal(6 * (1 - p) + 8 * p, y[3], 1e-12);
    }

    [Fact]
    public void Random_init_is_deterministic_by_seed_and_follows_hf()
    {
        using var scope = Torch.NewScope();
        var config = ModelConfig.Llama(64, 32, 48, 2, 4);
        using var a = ModelInit.Random(config, 42);
        using var b = ModelInit.Random(config, 42);
        using var c = ModelInit.Random(config, 43);
        Assert.Equal(a.Tensors.Keys, b.Tensors.Keys);
        foreach (var (name, t) in a.Tensors) Assert.True(t.Equal(b[name]), name);
        Assert.False(a["model.embed_tokens.weight"].Equal(c["model.embed_tokens.weight"]));
        Assert.True(a["model.norm.weight"].Eq(1).All().Item() != 0);
        var std = a["model.layers.0.mlp.up_proj.weight"].Std().Item();
        Assert.InRange(std, 0.018, 0.022);
        Assert.Equal(ModelWeights.ExpectedShapes(config).Count, a.Tensors.Count);
    }

    [Fact]
    public void Parameter_counts_match_hf_formulas()
    {
        // Pythia-70m: 70,426,624 parameters (HF model card / num_parameters()).
        var pythia = ModelConfig.GptNeox(50304, 512, 2048, 6, 8);
        Assert.Equal(70_426_624, ModelWeights.ExpectedShapes(pythia).Sum(s => s.Shape.Aggregate(1L, (x, y) => x * y)));
        // GPT-2 small: 124,439,808 (tied).
        var gpt2 = ModelConfig.Gpt2(50257, 768, 12, 12);
        Assert.Equal(124_439_808, ModelWeights.ExpectedShapes(gpt2).Sum(s => s.Shape.Aggregate(1L, (x, y) => x * y)));
        // Qwen2-0.5B: 494,032,768 (tied, kv heads 2, head dim 64).
        var qwen = ModelConfig.Qwen2(151936, 896, 4864, 24, 14, kvHeads: 2) with { TieWordEmbeddings = true };
        Assert.Equal(494_032_768, ModelWeights.ExpectedShapes(qwen).Sum(s => s.Shape.Aggregate(1L, (x, y) => x * y)));
    }

    [Fact]
    public void Problems_list_missing_unexpected_and_misshapen_tensors_at_once()
    {
        var config = ModelConfig.Llama(10, 8, 12, 1, 2);
        var shapes = ModelWeights.ExpectedShapes(config).ToDictionary(s => s.Name, s => s.Shape);
        shapes.Remove("model.norm.weight");
        shapes.Remove("lm_head.weight");
        shapes["model.layers.0.mlp.up_proj.weight"] = [12, 9];
        shapes["model.layers.7.extra.weight"] = [1];
        var p = ModelWeights.Problems(config, shapes);
        Assert.Equal(3, p.Count);
        Assert.Contains(p, s => s.Contains("missing tensors (2)") && s.Contains("model.norm.weight") && s.Contains("lm_head.weight"));
        Assert.Contains(p, s => s.Contains("unexpected tensors (1)") && s.Contains("model.layers.7.extra.weight"));
        Assert.Contains(p, s => s.Contains("model.layers.0.mlp.up_proj.weight") && s.Contains("[12, 9]") && s.Contains("[12, 8]"));
    }

    [Fact]
    public void Config_problems_are_all_reported()
    {
        var bad = ModelConfig.Llama(0, 10, 8, 1, 3, kvHeads: 2) with { HiddenAct = "swoosh" };
        var p = bad.Problems();
        Assert.Contains(p, s => s.Contains("vocab_size"));
        Assert.Contains(p, s => s.Contains("not divisible"));
        Assert.Contains(p, s => s.Contains("num_key_value_heads"));
        Assert.Contains(p, s => s.Contains("swoosh"));
    }
}

public class RopeScalingTests
{
    /// <summary>The reference comparison of the scaled variants could pass with scaling ignored only if scaling did nothing here.</summary>
    [Theory]
    [InlineData("llama-linear")]
    [InlineData("llama-dynamic")]
    [InlineData("qwen2-yarn")]
    [InlineData("neox-yarn-partial")]
    [InlineData("neox-dynamic-partial")]
    [InlineData("llama-gqa-scaled-tied-bias")]
    public void Scaling_changes_the_logits_of_the_test_sequence(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w = TinyModels.Weights(config);
        using var unscaled = new ModelWeights(config with { RopeScaling = null }, w.Tensors);
        var ids = TinyModels.Ids([3, 0, 10, 7, 7, 2], 1, 6);
        var diff = (Transformer.Forward(w, ids) - Transformer.Forward(unscaled, ids)).Abs().Max().Item();
        Assert.True(diff > 1e-3, $"{variant}: scaling moved the logits by only {diff}");
    }

    [Fact]
    public void Dynamic_scaling_is_the_identity_up_to_max_position_embeddings()
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config("llama-dynamic");                       // max_position_embeddings 4
        using var w = TinyModels.Weights(config);
        using var unscaled = new ModelWeights(config with { RopeScaling = null }, w.Tensors);
        var ids = TinyModels.Ids([3, 0, 10, 7], 1, 4);
        Assert.True(Transformer.Forward(w, ids).Equal(Transformer.Forward(unscaled, ids)));
        // one more token and the base grows: θ' = θ·(3·5/4 − 2)^(r/(r−2)) with r = 8
        var (inv, _) = Rotary.Frequencies(8, 10000, new DynamicRopeScaling(3), 4, 5);
        Assert.Equal(1 / Math.Pow(10000 * Math.Pow(1.75, 8.0 / 6), 0.25), inv[1], 1e-6 * inv[1]);
    }

    [Fact]
    public void Linear_divides_every_frequency_and_yarn_attention_factors_follow_hf()
    {
        var plain = Rotary.DefaultInverseFrequencies(16, 10000);
        var (linear, one) = Rotary.Frequencies(16, 10000, new LinearRopeScaling(4));
        Assert.Equal(1.0, one);
        for (var j = 0; j < 8; j++) Assert.Equal(plain[j] / 4, linear[j], plain[j] * 1e-7);
        Assert.Equal(1 + 0.1 * Math.Log(4), new YarnRopeScaling(4, 64).EffectiveAttentionFactor, 12);
        Assert.Equal((1 + 0.1 * Math.Log(2)) / (1 + 0.05 * Math.Log(2)), new YarnRopeScaling(2, 16, Mscale: 1, MscaleAllDim: 0.5).EffectiveAttentionFactor, 12);
        Assert.Equal(0.7, new YarnRopeScaling(2, 16, AttentionFactor: 0.7).EffectiveAttentionFactor);
        Assert.Equal(1.0, new YarnRopeScaling(1, 16).EffectiveAttentionFactor);
        // yarn: the fastest dim (many turns over the original context) is kept, the slowest divided by the factor
        var (yarn, _) = Rotary.Frequencies(16, 10000, new YarnRopeScaling(4, 64));
        Assert.Equal(plain[0], yarn[0], 1e-7);
        Assert.Equal(plain[7] / 4, yarn[7], plain[7] * 1e-6);
    }

    [Fact]
    public void Scaling_problems_are_reported()
    {
        Assert.Contains((ModelConfig.Gpt2(11, 16, 1, 2) with { RopeScaling = new LinearRopeScaling(2) }).Problems(), p => p.Contains("learned positions"));
        Assert.Contains((ModelConfig.Llama(11, 16, 24, 1, 2) with { RotaryPct = 0.5 }).Problems(), p => p.Contains("partial_rotary_factor 0.5"));
        Assert.Contains((ModelConfig.Llama(11, 16, 24, 1, 2) with { RopeScaling = new LinearRopeScaling(0) }).Problems(), p => p.Contains("factor must be positive"));
        Assert.Contains((ModelConfig.Llama(11, 16, 24, 1, 2) with { RopeScaling = new Llama3RopeScaling(8, 4, 1, 64) }).Problems(), p => p.Contains("high_freq_factor"));
    }
}

public class ModelRecipeTests
{
    [Fact]
    public void Every_family_has_one_recipe_found_by_its_model_type()
    {
        foreach (var family in Enum.GetValues<ModelFamily>())
        {
            var recipe = ModelRecipes.Of(family);
            Assert.Equal(family, recipe.Family);
            Assert.Same(recipe, ModelRecipes.OfModelType(recipe.ModelType));
            Assert.Equal(recipe.ModelType, ModelConfig.ModelTypeOf(family));
        }
        Assert.Equal(Enum.GetValues<ModelFamily>().Length, ModelRecipes.All.Select(r => r.ModelType).Distinct().Count());
        Assert.Null(ModelRecipes.OfModelType("mamba"));
    }

    [Theory]
    [MemberData(nameof(TransformerTests.Variants), MemberType = typeof(TransformerTests))]
    public void Every_base_weight_sits_under_the_recipe_prefix_and_each_layer_under_its_own(string variant)
    {
        var c = TinyModels.Config(variant);
        var recipe = c.Recipe;
        var names = ModelWeights.ExpectedShapes(c).Select(s => s.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.All(names.Where(n => n != recipe.LmHead && n != WeightNames.Score), n => Assert.StartsWith(recipe.BasePrefix, n));
        for (var i = 0; i < c.NumHiddenLayers; i++)
            Assert.Equal(recipe.LayerWeights(c, recipe.Layer(i)).Count(), names.Count(n => n.StartsWith(recipe.Layer(i), StringComparison.Ordinal)));
        Assert.Contains(recipe.Embedding, names);
    }
}
