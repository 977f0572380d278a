using LanguageExt;
using Rlhf.Shell.Config;
using Rlhf.Shell.Generation;

namespace Rlhf.Shell.Tests.Generation;

/// <summary>The generation section of a config reaches the generator and the sampler unchanged.</summary>
public class GenerationConfigTests
{
    [Fact]
    public void A_config_generation_section_becomes_generator_settings_and_sampling_params()
    {
        var yaml = """
            model: {model_type: llama, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, vocab_size: 260}
            tokenizer: {kind: byte}
            data: {task: reverse}
            training: {algorithm: grpo, per_device_train_batch_size: 8, total_episodes: 64}
            grpo: {num_generations: 4}
            generation:
              temperature: 0.7
              top_k: 20
              top_p: 0.9
              min_p: 0.05
              max_new_tokens: 40
              min_new_tokens: 2
              stop_token_ids: [257, 10]
              n: 4
              seed: 7
              block_size: 8
              kv_cache_memory_mb: 3
              max_num_seqs: 32
              max_num_batched_tokens: 512
              enable_prefix_caching: true
            """;
        var cfg = ConfigLoader.LoadText(yaml, "gen.yaml").Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        var g = GeneratorSettings.FromConfig(cfg.Generation);
        Assert.Equal(new GeneratorSettings(KvCacheBytes: 3L << 20, BlockSize: 8, MaxNumBatchedTokens: 512, MaxNumSeqs: 32, EnablePrefixCaching: true), g);
        var s = SamplingParams.FromConfig(cfg.Generation);
        Assert.Equal((4, 0.7, 20, 0.9, 0.05, 40, 2, 7L), (s.N, s.Temperature, s.TopK, s.TopP, s.MinP, s.MaxTokens, s.MinTokens, s.Seed!.Value));
        Assert.Equal(new[] { 257, 10 }, s.StopTokenIds);
        s.Validate();
    }
}
