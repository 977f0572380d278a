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
        var got = Rotary.InverseFrequencies(128, 500000, s);
        var want = ReferenceModel.InvFreq(128, 500000, s);
        for (var j = 0; j < 64; j++) Assert.Equal(want[j], got[j], want[j] * 1e-6);
        Assert.Equal(1.0, got[0], 1e-12);                               // highest frequency unchanged
        var unscaled = Rotary.InverseFrequencies(128, 500000);
        Assert.Equal(unscaled[63] / 8, got[63], unscaled[63] * 1e-6);    // lowest frequency divided by the factor
    }

    [Fact]
    public void Rotary_rotates_pairs_by_position_times_frequency()
    {
        using var scope = Torch.NewScope();
        // one head, hd 4, rotary over all 4 dims: pairs (0, 2) and (1, 3) rotate by p·1 and p·θ^(-1/2).
        var x = Torch.From(new double[] { 1, 2, 3, 4 }, 1, 1, 1, 4);
        var (cos, sin) = Rotary.Tables(Torch.From(new long[] { 3 }, 1, 1), 4, 100, null, ScalarType.Float64);
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
