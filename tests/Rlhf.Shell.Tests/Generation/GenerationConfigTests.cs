using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>The generation section of a config reaches the generator and the sampler unchanged, with the schema's defaults and nothing restated.</summary>
[Collection(MemoryCollection.Name)]
public class GenerationConfigTests
{
    private const string Model = "model: {model_type: llama, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, vocab_size: 260}\n";

    private static RlhfConfig Load(string generation) =>
        ConfigLoader.LoadText(Model + """
            tokenizer: {kind: byte}
            data: {task: reverse}
            training: {algorithm: grpo, per_device_train_batch_size: 8, total_episodes: 64}
            grpo: {num_generations: 4}
            """ + "\n" + generation, "gen.yaml").Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));

    private static ModelWeights Weights() =>
        ModelInit.Random(ModelConfig.Llama(260, 32, 64, 1, 2, kvHeads: 2, maxPositions: 128), 1, ScalarType.Float32);

    [Fact]
    public void Every_key_of_the_generation_section_reaches_the_generator_and_the_sampling()
    {
        var cfg = Load("""
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
              num_blocks: 37
              kv_cache_dtype: bf16
              watermark: 0.1
              max_num_seqs: 32
              max_num_batched_tokens: 512
              enable_prefix_caching: true
            """);
        using var scope = Torch.NewScope();
        using var gen = new PagedGenerator(Weights(), cfg.Generation);
        Assert.Same(cfg.Generation, gen.Settings);
        Assert.Equal(37, gen.NumBlocks);
        Assert.Equal(ScalarType.BFloat16, gen.KvCacheDtype);
        Assert.Equal(3, gen.Blocks.WatermarkBlocks);            // ⌊0.1 × 37⌋
        var s = SamplingParams.From(cfg.Generation);
        Assert.Equal((4, 0.7, 20, 0.9, 0.05, 40, 2, 7L), (s.N, s.Temperature, s.TopK, s.TopP, s.MinP, s.MaxTokens, s.MinTokens, s.Seed!.Value));
        Assert.Equal(new[] { 257, 10 }, s.StopTokenIds);
        s.Validate();
    }

    [Fact]
    public void The_kv_budget_sets_the_block_count_and_the_weights_dtype_is_the_default_cache_dtype()
    {
        var cfg = Load("generation: {kv_cache_memory_mb: 1, block_size: 16}\n");
        using var scope = Torch.NewScope();
        using var gen = new PagedGenerator(Weights(), cfg.Generation);
        // K and V, 1 layer, 16 slots, 2 kv heads of 16 floats, 4 bytes: 4096 bytes per block; 1 MiB holds 256.
        Assert.Equal(256, gen.NumBlocks);
        Assert.Equal(ScalarType.Float32, gen.KvCacheDtype);
    }

    [Fact]
    public void Unset_keys_take_the_schema_defaults_in_the_generator_and_in_directly_built_sampling()
    {
        var schema = new GenerationSettings();
        var direct = new SamplingParams { N = 1, Temperature = 1.0 };
        Assert.Equal((int)schema.MaxNewTokens, direct.MaxTokens);
        Assert.Equal((int)schema.TopK, direct.TopK);
        Assert.Equal(schema.TopP, direct.TopP);
        Assert.Equal(schema.MinP, direct.MinP);
        Assert.Equal((int)schema.MinNewTokens, direct.MinTokens);
        Assert.Empty(direct.StopTokenIds);
        Assert.Null(direct.Seed);

        // The resolver fills n (GRPO's num_generations) and temperature from the algorithm.
        var cfg = Load("");
        var s = SamplingParams.From(cfg.Generation);
        Assert.Equal(4, s.N);
        Assert.Equal(cfg.Generation.Temperature!.Value, s.Temperature);
        Assert.Equal(direct with { N = s.N, Temperature = s.Temperature, StopTokenIds = s.StopTokenIds, Seed = s.Seed }, s);
    }

    [Fact]
    public void An_unresolved_section_without_n_or_temperature_is_a_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => SamplingParams.From(new GenerationSettings()));
        Assert.Contains("generation.n and generation.temperature are unset", e.Message);
        e = Assert.Throws<ArgumentException>(() => SamplingParams.From(new GenerationSettings { N = 2 }));
        Assert.Contains("generation.temperature is unset", e.Message);
    }

    [Fact]
    public void A_budget_too_small_for_one_block_names_the_key()
    {
        using var scope = Torch.NewScope();
        // K and V × 3 layers × 256 slots × 2 kv heads × head dim 128 × 4 bytes = 1.5 MiB per block.
        var w = ModelInit.Random(ModelConfig.Llama(260, 256, 64, 3, 2, kvHeads: 2, maxPositions: 128), 1, ScalarType.Float32);
        var e = Assert.Throws<ArgumentException>(() => new PagedGenerator(w, new GenerationSettings { KvCacheMemoryMb = 1, BlockSize = 256 }));
        Assert.Contains("generation.kv_cache_memory_mb = 1 holds no KV block", e.Message);
    }
}
