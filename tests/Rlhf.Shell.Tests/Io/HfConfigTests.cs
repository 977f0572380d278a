using Rlhf.Core.Models;
using Rlhf.Shell.Io;

namespace Rlhf.Shell.Tests.Io;

public class HfConfigTests
{
    [Fact]
    public void Llama_3_1_config_parses_with_rope_scaling_and_eos_list()
    {
        const string json = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
         "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
         "intermediate_size": 14336, "max_position_embeddings": 131072, "model_type": "llama",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256}
        """;
        var c = HfConfig.Parse(json);
        Assert.Equal(ModelFamily.Llama, c.Family);
        Assert.Equal(8, c.NumKeyValueHeads);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal(new Llama3RopeScaling(8, 1, 4, 8192), c.RopeScaling);
        Assert.Equal(128001, c.EosTokenId);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(c, HfConfig.Parse(HfConfig.ToJson(c)));
    }

    [Fact]
    public void Pythia_and_gpt2_configs_use_their_own_keys_and_defaults()
    {
        var pythia = HfConfig.Parse("""
        {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 512, "intermediate_size": 2048,
         "num_attention_heads": 8, "num_hidden_layers": 6, "rotary_emb_base": 10000, "rotary_pct": 0.25,
         "use_parallel_residual": true, "vocab_size": 50304, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
         "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu", "tie_word_embeddings": false}
        """);
        Assert.Equal(16, pythia.RotaryDim);
        Assert.True(pythia.UseParallelResidual);
        Assert.Equal(pythia, HfConfig.Parse(HfConfig.ToJson(pythia)));

        var gpt2 = HfConfig.Parse("""{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257, "n_inner": null}""");
        Assert.Equal(3072, gpt2.IntermediateSize);
        Assert.True(gpt2.TieWordEmbeddings);
        Assert.Equal("gelu_new", gpt2.HiddenAct);
        Assert.Equal(50256, gpt2.EosTokenId);
        Assert.Equal(gpt2, HfConfig.Parse(HfConfig.ToJson(gpt2)));
    }

    [Fact]
    public void Reward_model_config_selects_the_score_head()
    {
        var c = HfConfig.Parse("""{"architectures": ["Qwen2ForSequenceClassification"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 100, "id2label": {"0": "LABEL_0"}}""");
        Assert.Equal(ModelHead.Score, c.Head);
        Assert.True(c.AttentionBias);
        Assert.Equal(c, HfConfig.Parse(HfConfig.ToJson(c)));
    }

    [Fact]
    public void Every_config_problem_is_reported_at_once()
    {
        var ex = Assert.Throws<HfFormatException>(() => HfConfig.Parse(
            """{"model_type": "llama", "hidden_size": "big", "num_attention_heads": 3, "hidden_act": "swoosh", "rope_scaling": {"type": "longrope", "factor": 4}}""", "/m/config.json"));
        Assert.StartsWith("/m/config.json", ex.Message);
        Assert.Contains("'hidden_size' should be", ex.Message);
        Assert.Contains("unsupported 'rope_scaling' rope_type \"longrope\"", ex.Message);
        Assert.Contains("swoosh", ex.Message);
        Assert.Contains("not divisible", ex.Message);
        Assert.Contains("invalid JSON", Assert.Throws<HfFormatException>(() => HfConfig.Parse("{", "c.json")).Message);
    }

    private static readonly Dictionary<string, string> Families = new()
    {
        ["llama"] = """ "model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 256 """,
        ["qwen2"] = """ "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 256 """,
        ["gpt_neox"] = """ "model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 256 """,
    };

    private static readonly Dictionary<string, (string Json, RopeScaling Expected)> Scalings = new()
    {
        ["linear"] = (""" "rope_type": "linear", "factor": 2.0 """, new LinearRopeScaling(2)),
        ["dynamic"] = (""" "type": "dynamic", "factor": 3 """, new DynamicRopeScaling(3)),
        ["yarn"] = (""" "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 16, "truncate": false """,
            new YarnRopeScaling(4, 64, BetaFast: 16, Truncate: false)),
        ["llama3"] = (""" "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64 """,
            new Llama3RopeScaling(8, 1, 4, 64)),
    };

    public static TheoryData<string, string> FamiliesAndScalings()
    {
        var data = new TheoryData<string, string>();
        foreach (var f in Families.Keys) foreach (var t in Scalings.Keys) data.Add(f, t);
        return data;
    }

    [Theory]
    [MemberData(nameof(FamiliesAndScalings))]
    public void Transformers5_rope_parameters_and_the_older_top_level_keys_read_the_same(string family, string type)
    {
        var (scaling, expected) = Scalings[type];
        var neox = family == "gpt_neox";
        // transformers 5.x: everything in rope_parameters
        var v5 = HfConfig.Parse($$"""{ {{Families[family]}}, "rope_parameters": { {{scaling}}, "rope_theta": 123456.0{{(neox ? ", \"partial_rotary_factor\": 0.5" : "")}} }, "dtype": "bfloat16" }""");
        // older files: θ and the fraction at the top level (gpt_neox's own names), scaling in rope_scaling
        var old = HfConfig.Parse(neox
            ? $$"""{ {{Families[family]}}, "rotary_emb_base": 123456, "rotary_pct": 0.5, "rope_scaling": { {{scaling}} }, "torch_dtype": "bfloat16" }"""
            : $$"""{ {{Families[family]}}, "rope_theta": 123456, "rope_scaling": { {{scaling}} }, "torch_dtype": "bfloat16" }""");
        Assert.Equal(123456.0, v5.RopeTheta);
        Assert.Equal(expected, v5.RopeScaling);
        Assert.Equal(neox ? 8 : 16, v5.RotaryDim);
        Assert.Equal("bfloat16", v5.TorchDtype);
        Assert.Equal(old, v5);
        // what Rlhf writes (both layouts, consistently) reads back to the same config
        Assert.Equal(v5, HfConfig.Parse(HfConfig.ToJson(v5)));
    }

    [Fact]
    public void Rope_parameters_alone_set_theta_and_partial_rotary_for_every_family()
    {
        var qwen = HfConfig.Parse($$"""{ {{Families["qwen2"]}}, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0} }""");
        Assert.Equal(1_000_000, qwen.RopeTheta);
        Assert.Null(qwen.RopeScaling);
        var neox = HfConfig.Parse($$"""{ {{Families["gpt_neox"]}}, "rope_parameters": {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 1.0} }""");
        Assert.Equal(16, neox.RotaryDim);
        var neoxDefault = HfConfig.Parse($$"""{ {{Families["gpt_neox"]}} }""");
        Assert.Equal(4, neoxDefault.RotaryDim);                               // GPTNeoXConfig: rotary_pct 0.25
        // yarn without original_max_position_embeddings takes max_position_embeddings (HF standardize_rope_params); a null
        // factor is max / original; zero betas are the paper's 32 and 1
        var yarn = HfConfig.Parse($$"""{ {{Families["llama"]}}, "original_max_position_embeddings": 64, "rope_parameters": {"rope_type": "yarn", "factor": null, "beta_fast": 0, "mscale": 1, "mscale_all_dim": 0.5} }""");
        Assert.Equal(new YarnRopeScaling(4, 64, Mscale: 1, MscaleAllDim: 0.5), yarn.RopeScaling);
    }

    [Fact]
    public void Both_layouts_present_and_disagreeing_is_an_error_naming_both()
    {
        string Error(string family, string keys) =>
            Assert.Throws<HfFormatException>(() => HfConfig.Parse($$"""{ {{Families[family]}}, {{keys}} }""", "/ckpt/config.json")).Message;
        var theta = Error("llama", """ "rope_theta": 10000, "rope_parameters": {"rope_type": "default", "rope_theta": 500000} """);
        Assert.StartsWith("/ckpt/config.json", theta);
        Assert.Contains("'rope_parameters.rope_theta' = 500000", theta);
        Assert.Contains("'rope_theta' = 10000", theta);
        var neox = Error("gpt_neox", """ "rotary_pct": 0.25, "rope_parameters": {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.5} """);
        Assert.Contains("'rope_parameters.partial_rotary_factor' = 0.5", neox);
        Assert.Contains("'rotary_pct' = 0.25", neox);
        var neoxBase = Error("gpt_neox", """ "rotary_emb_base": 10000, "rope_theta": 20000 """);
        Assert.Contains("'rotary_emb_base' = 10000", neoxBase);
        var scaling = Error("qwen2", """ "rope_scaling": {"type": "linear", "factor": 2}, "rope_parameters": {"rope_type": "linear", "factor": 4, "rope_theta": 10000} """);
        Assert.Contains("'rope_parameters'", scaling);
        Assert.Contains("'rope_scaling'", scaling);
        Assert.Contains("\"factor\":4", scaling);
        var dtype = Error("llama", """ "torch_dtype": "float32", "dtype": "bfloat16" """);
        Assert.Contains("'dtype' = \"bfloat16\"", dtype);
        Assert.Contains("'torch_dtype' = \"float32\"", dtype);
        // agreeing values in both places are fine
        Assert.Equal(500000, HfConfig.Parse($$"""{ {{Families["llama"]}}, "rope_theta": 500000, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0} }""").RopeTheta);
    }

    [Theory]
    [InlineData("llama", """ "rope_parameters": {"rope_type": "longrope", "short_factor": [1], "long_factor": [1]} """, "unsupported 'rope_parameters' rope_type \"longrope\"")]
    [InlineData("llama", """ "rope_scaling": {"type": "su"} """, "rope_type \"su\"")]
    [InlineData("qwen2", """ "use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 1 """, "'use_sliding_window': true with 'sliding_window' 4096")]
    [InlineData("qwen2", """ "layer_types": ["full_attention", "sliding_attention"] """, "'layer_types'")]
    [InlineData("qwen2", """ "attention_bias": false """, "'attention_bias': false is not supported: qwen2")]
    [InlineData("qwen2", """ "mlp_bias": true """, "'mlp_bias': true is not supported: qwen2")]
    [InlineData("gpt_neox", """ "mlp_bias": false """, "'mlp_bias': false")]
    [InlineData("llama", """ "partial_rotary_factor": 0.5 """, "partial_rotary_factor 0.5 is not supported")]
    [InlineData("llama", """ "hidden_act": "gelu_10" """, "unsupported hidden_act 'gelu_10'")]
    [InlineData("llama", """ "torch_dtype": "int8" """, "'torch_dtype' \"int8\" is not a floating-point dtype")]
    [InlineData("llama", """ "rope_scaling": {"rope_type": "llama3", "factor": 8} """, "needs 'low_freq_factor'")]
    [InlineData("llama", """ "rope_scaling": {"rope_type": "linear"} """, "needs 'factor'")]
    [InlineData("qwen2", """ "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 10000}} """, "'rope_parameters.full_attention': per-layer-type")]
    [InlineData("gpt_neox", """ "rope_scaling": {"type": "dynamic", "factor": "two"} """, "'rope_scaling.factor' should be a number")]
    public void Keys_that_change_the_math_and_are_not_implemented_are_errors_naming_the_key(string family, string keys, string expected)
    {
        var ex = Assert.Throws<HfFormatException>(() => HfConfig.Parse($$"""{ {{Families[family]}}, {{keys}} }""", "/ckpt/config.json"));
        Assert.StartsWith("/ckpt/config.json", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Absent_key_value_heads_follow_each_config_class()
    {
        // LlamaConfig: None → one per query head; Qwen2Config: 32 unless given (None → one per query head)
        Assert.Equal(4, HfConfig.Parse("""{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}""").NumKeyValueHeads);
        Assert.Equal(32, HfConfig.Parse("""{"model_type": "qwen2", "hidden_size": 2048, "num_attention_heads": 32}""").NumKeyValueHeads);
        Assert.Equal(4, HfConfig.Parse("""{"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": null}""").NumKeyValueHeads);
        Assert.Contains("not a multiple of num_key_value_heads 32",
            Assert.Throws<HfFormatException>(() => HfConfig.Parse("""{"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4}""")).Message);
    }

    [Fact]
    public void Sliding_window_off_or_past_the_last_layer_is_accepted()
    {
        // Qwen2.5 configs carry sliding_window with use_sliding_window false; max_window_layers ≥ layers means no sliding layer.
        HfConfig.Parse($$"""{ {{Families["qwen2"]}}, "use_sliding_window": false, "sliding_window": 4096, "max_window_layers": 1 }""");
        HfConfig.Parse($$"""{ {{Families["qwen2"]}}, "use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 2 }""");
    }

    [Fact]
    public void Rope_keys_transformers_ignores_are_ignored_with_one_warning()
    {
        var warnings = new List<string>();
        var c = HfConfig.Parse($$"""{ {{Families["llama"]}}, "rope_scaling": {"type": "linear", "factor": 2, "original_max_position_embeddings": 64, "finetuned": true} }""", "/m/config.json", warnings.Add);
        Assert.Equal(new LinearRopeScaling(2), c.RopeScaling);
        var w = Assert.Single(warnings);
        Assert.Contains("/m/config.json", w);
        Assert.Contains("rope_scaling.original_max_position_embeddings", w);
        Assert.Contains("rope_scaling.finetuned", w);
    }
}
