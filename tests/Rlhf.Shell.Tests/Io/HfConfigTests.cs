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
            """{"model_type": "llama", "hidden_size": "big", "num_attention_heads": 3, "hidden_act": "swoosh", "rope_scaling": {"type": "yarn", "factor": 4}}""", "/m/config.json"));
        Assert.StartsWith("/m/config.json", ex.Message);
        Assert.Contains("'hidden_size' should be", ex.Message);
        Assert.Contains("rope_scaling type 'yarn'", ex.Message);
        Assert.Contains("swoosh", ex.Message);
        Assert.Contains("not divisible", ex.Message);
        Assert.Contains("invalid JSON", Assert.Throws<HfFormatException>(() => HfConfig.Parse("{", "c.json")).Message);
    }
}
