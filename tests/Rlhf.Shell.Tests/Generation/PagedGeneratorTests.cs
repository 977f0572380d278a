using FsCheck;
using FsCheck.Fluent;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Generation;

using Torch = Rlhf.Torch.Torch;

[Collection(MemoryCollection.Name)]
public class PagedGeneratorTests
{
    private const int Vocab = 40;

    private static ModelConfig Config(string family) => family switch
    {
        "llama-gqa" => ModelConfig.Llama(Vocab, 32, 48, 2, 4, kvHeads: 2, maxPositions: 256),
        "qwen2" => ModelConfig.Qwen2(Vocab, 32, 48, 2, 4, kvHeads: 1, maxPositions: 256),
        "neox" => ModelConfig.GptNeox(Vocab, 32, 48, 2, 4, maxPositions: 256) with { RotaryPct = 0.25 },
        "gpt2" => ModelConfig.Gpt2(Vocab, 32, 2, 4, positions: 256),
        _ => throw new ArgumentException(family),
    };

    /// <summary>Random weights large enough that logits are far from uniform (greedy ties are then rare).</summary>
    private static ModelWeights Weights(string family = "llama-gqa", ulong seed = 5, ScalarType dtype = ScalarType.Float64) =>
        ModelInit.Random(Config(family), seed, dtype, std: 0.35);

    private static int[][] Prompts(int count, int seed, int minLen = 3, int maxLen = 30)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, rng.Next(minLen, maxLen + 1)).Select(_ => rng.Next(Vocab)).ToArray()).ToArray();
    }

    /// <summary>The trainer's path: full forward of prompt + completion, <c>log_softmax(logits[ctx-1:-1] / (T + 1e-7))</c> at the completion.</summary>
    private static double[] TrainerLogprobs(ModelWeights w, int[] prompt, int[] completion, double temperature)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var all = prompt.Concat(completion).Select(t => (long)t).ToArray();
        var logits = Transformer.Forward(w, Torch.From(all, 1, all.Length))[0];                               // [T, V]
        var lp = (logits.Narrow(0, prompt.Length - 1, completion.Length) / (temperature + 1e-7)).LogSoftmax(-1);
        var idx = Torch.From(completion.Select(t => (long)t).ToArray(), completion.Length, 1);
        return lp.Gather(1, idx).View(-1).To(ScalarType.Float64).ToArray<double>();
    }

    private static readonly Gen<(string Family, int Seed, int Bs)> RunnerCases =
        from family in Gen.Elements("llama-gqa", "qwen2", "neox", "gpt2")
        from seed in Gen.Choose(0, 100_000)
        from bs in Gen.Elements(1, 4, 16)
        select (family, seed, bs);

    /// <summary>
    /// Random schedules over several sequences — each step some sequences run a chunk of new tokens (a prefill,
    /// possibly over cached context) and others one token (a decode), all in one flat batch — and every logit row
    /// equals the plain full-sequence forward at that position.
    /// </summary>
    [Fact]
    public void Paged_logits_equal_the_full_sequence_forward_for_mixed_prefill_and_decode() =>
        Check.One(global::FsCheck.Config.QuickThrowOnFailure.WithMaxTest(12).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(RunnerCases), c =>
        {
            using var scope = Torch.NewScope();
            using var w = Weights(c.Family, (ulong)c.Seed);
            var rng = new Random(c.Seed);
            var full = Prompts(4, c.Seed, 2, 24);
            var bm = new BlockManager(64 * 16 / c.Bs, c.Bs, enablePrefixCaching: false, watermark: 0);
            using var cache = new KvCache(2, bm.NumBlocks, c.Bs, w.Config.NumKeyValueHeads, w.Config.HeadDim, ScalarType.Float64);
            var runner = new ModelRunner(w, cache);
            var seqs = full.Select((t, i) => new Sequence(i, 0, 0, new List<int>(), 0)).ToArray();
            var wantLogits = full.Select(t => Transformer.Forward(w, Torch.From(t.Select(x => (long)x).ToArray(), 1, t.Length))[0]).ToArray();
            var group = new SequenceGroup("g", 0, [0], new SamplingParams { N = 1, Temperature = 1.0 }, seqs[0]);
            while (Enumerable.Range(0, seqs.Length).Any(i => seqs[i].Tokens.Count < full[i].Length))
            {
                var step = new List<ScheduledSeq>();
                for (var i = 0; i < seqs.Length; i++)
                {
                    var s = seqs[i];
                    var left = full[i].Length - s.Tokens.Count;
                    if (left == 0 || rng.Next(3) == 0) continue;
                    var take = s.Tokens.Count == 0 ? rng.Next(1, left + 1) : (rng.Next(2) == 0 ? 1 : rng.Next(1, left + 1));
                    s.Tokens.AddRange(full[i].Skip(s.Tokens.Count).Take(take));
                    if (!bm.Contains(s.Id)) bm.Allocate(s.Id, s.Tokens.ToArray());
                    else for (var j = 0; j < take; j++) Assert.Null(bm.AppendSlot(s.Id));
                    step.Add(new ScheduledSeq(s, group, take, take > 1));
                }
                if (step.Count == 0) continue;
                var logits = runner.Execute(step, bm);
                for (var r = 0; r < step.Count; r++)
                {
                    var s = step[r].Seq;
                    var want = wantLogits[(int)s.Id][s.Tokens.Count - 1].To(ScalarType.Float32);
                    Assert.True(logits[r].AllClose(want, 1e-4, 1e-4), $"{c.Family}: sequence {s.Id} at {s.Tokens.Count - 1}");
                    s.NumComputed = s.Tokens.Count;
                }
            }
        }));

    /// <summary>
    /// Every tensor the generator makes (sampler rows, fork indices, copy-on-write block lists, rotary tables) goes
    /// where the weights are, not to the thread's default device: with the default pointed at another device
    /// (cuda:0: absent on a CPU machine, another device than the weights' on a GPU one, so any stray tensor fails), a run that forks, copies blocks on write,
    /// masks stop tokens and mixes greedy with top-k/top-p sampling gives the same completions as with the default left alone.
    /// </summary>
    [Fact]
    public void Generation_places_its_tensors_with_the_weights_not_on_the_default_device()
    {
        using var w = Weights(dtype: ScalarType.Float32);
        var prompts = Prompts(6, 9, 3, 12);
        var sampled = new SamplingParams { N = 3, Temperature = 0.9, TopK = 8, TopP = 0.9, MinP = 0.01, MinTokens = 2, StopTokenIds = [0, 1], MaxTokens = 12, Seed = 4 };
        var greedy = new SamplingParams { N = 2, Temperature = 0, MaxTokens = 12 };
        (int[][] Tokens, float[][] Logprobs) Run()
        {
            using var gen = new PagedGenerator(w, new GenerationSettings { NumBlocks = 64, BlockSize = 4 });
            var outs = gen.Generate(prompts.Take(3).ToArray(), sampled).Concat(gen.Generate(prompts.Skip(3).ToArray(), greedy)).ToArray();
            var done = outs.SelectMany(o => o.Outputs).ToArray();
            return (done.Select(c => c.TokenIds).ToArray(), done.Select(c => c.Logprobs).ToArray());
        }
        var expected = Run();
        Torch.DefaultDevice = Device.Cuda(0);   // absent here, or (on a GPU machine) not where these CPU weights are
        try
        {
            var actual = Run();
            Assert.Equal(expected.Tokens, actual.Tokens);
            Assert.Equal(expected.Logprobs, actual.Logprobs);
        }
        finally { Torch.SetDefaultDevice(null); }
    }

    [Fact]
    public void Greedy_output_is_identical_with_and_without_memory_pressure()
    {
        using var w = Weights();
        var prompts = Prompts(10, 1, 5, 30);
        var p = new SamplingParams { N = 2, Temperature = 0, MaxTokens = 40 };
        using var roomy = new PagedGenerator(w, new GenerationSettings { NumBlocks = 400, BlockSize = 4 });
        using var tight = new PagedGenerator(w, new GenerationSettings { NumBlocks = 40, BlockSize = 4, Watermark = 0 });
        var a = roomy.Generate(prompts, p);
        var b = tight.Generate(prompts, p);
        Assert.Equal(0, roomy.Stats.Preemptions);
        Assert.True(tight.Stats.Preemptions > 0, "the tight cache should have forced preemptions");
        for (var j = 0; j < prompts.Length; j++)
            for (var i = 0; i < 2; i++)
            {
                Assert.Equal(a[j].Outputs[i].TokenIds, b[j].Outputs[i].TokenIds);
                Assert.Equal(40, a[j].Outputs[i].TokenIds.Length);
            }
        Assert.Equal(roomy.NumBlocks, roomy.Blocks.NumFreeBlocks);
        Assert.Equal(tight.NumBlocks, tight.Blocks.NumFreeBlocks);
    }

    [Fact]
    public void Seeded_sampling_survives_preemption_and_recompute()
    {
        using var w = Weights();
        var prompts = Prompts(8, 2, 5, 30);
        var p = new SamplingParams { N = 3, Temperature = 0.9, TopP = 0.95, MaxTokens = 30, Seed = 11 };
        using var roomy = new PagedGenerator(w, new GenerationSettings { NumBlocks = 400, BlockSize = 4 });
        using var tight = new PagedGenerator(w, new GenerationSettings { NumBlocks = 45, BlockSize = 4, Watermark = 0 });
        var a = roomy.Generate(prompts, p);
        var b = tight.Generate(prompts, p);
        Assert.True(tight.Stats.Preemptions > 0);
        for (var j = 0; j < prompts.Length; j++)
            for (var i = 0; i < 3; i++)
                Assert.Equal(a[j].Outputs[i].TokenIds, b[j].Outputs[i].TokenIds);
    }

    [Fact]
    public void Seeded_sampling_is_reproducible_and_independent_of_batch_composition()
    {
        using var w = Weights();
        var mine = Prompts(1, 3, 12, 12)[0];
        var p = new SamplingParams { N = 3, Temperature = 1.0, TopK = 20, MaxTokens = 25, Seed = 1234 };
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 300, BlockSize = 4 });
        var alone = g.Generate([mine], p)[0];
        var again = g.Generate([mine], p)[0];
        // The same request among others with different parameters, added before and after it.
        foreach (var (other, k) in Prompts(5, 4).Select((x, k) => (x, k)))
            g.AddRequest(other, new SamplingParams { N = 2, Temperature = 0.7, MaxTokens = 10 + k, Seed = k }, $"other-{k}");
        var id = g.AddRequest(mine, p, "mine");
        g.AddRequest(Prompts(1, 9)[0], new SamplingParams { N = 1, Temperature = 1.3, MaxTokens = 33 }, "late");
        RequestOutput? crowded = null;
        while (g.HasUnfinishedRequests)
            foreach (var o in g.Step()) if (o.RequestId == id) crowded = o;
        Assert.NotNull(crowded);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(alone.Outputs[i].TokenIds, again.Outputs[i].TokenIds);
            Assert.Equal(alone.Outputs[i].TokenIds, crowded!.Outputs[i].TokenIds);
            Assert.Equal(alone.Outputs[i].Logprobs, crowded.Outputs[i].Logprobs, (x, y) => Math.Abs(x - y) < 1e-4);
        }
        Assert.NotEqual(alone.Outputs[0].TokenIds, alone.Outputs[1].TokenIds);      // streams s, s+1, s+2 differ
    }

    [Fact]
    public void Stop_tokens_and_max_and_min_tokens_are_honoured()
    {
        using var w = Weights();
        int[] stops = [0, 1, 2, 3];
        var prompts = Prompts(12, 5);
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 400, BlockSize = 8 });
        var free = g.Generate(prompts, new SamplingParams { N = 2, Temperature = 1.2, MaxTokens = 30, StopTokenIds = stops, Seed = 3 });
        var minned = g.Generate(prompts, new SamplingParams { N = 2, Temperature = 1.2, MaxTokens = 30, MinTokens = 12, StopTokenIds = stops, Seed = 3 });
        var lengths = new HashSet<int>();
        foreach (var o in free.SelectMany(r => r.Outputs))
        {
            lengths.Add(o.TokenIds.Length);
            Assert.DoesNotContain(o.TokenIds[..^1], t => stops.Contains(t));                  // nothing after the first stop
            if (o.FinishReason == FinishReason.Stop) Assert.Contains(o.TokenIds[^1], stops);
            else Assert.Equal(30, o.TokenIds.Length);
        }
        Assert.True(lengths.Count > 3, "stop tokens should end completions at varied lengths");
        Assert.Contains(free.SelectMany(r => r.Outputs), o => o.FinishReason == FinishReason.Stop && o.TokenIds.Length < 12);
        foreach (var o in minned.SelectMany(r => r.Outputs))
        {
            Assert.True(o.TokenIds.Length >= 12, $"min_tokens: got {o.TokenIds.Length}");
            Assert.DoesNotContain(o.TokenIds[..11], t => stops.Contains(t));
            Assert.DoesNotContain(o.TokenIds[..^1], t => stops.Contains(t));
        }
        var one = g.Generate(prompts[..2], new SamplingParams { N = 1, Temperature = 1.0, MaxTokens = 1, Seed = 1 });
        Assert.All(one.SelectMany(r => r.Outputs), o => Assert.Single(o.TokenIds));
    }

    [Theory]
    [InlineData(1.0, 0, 1.0)]
    [InlineData(0.7, 0, 1.0)]
    [InlineData(0.7, 8, 0.9)]
    public void Returned_logprobs_equal_the_trainers_recomputation(double temperature, int topK, double topP)
    {
        using var w = Weights(dtype: ScalarType.Float32);
        var prompts = Prompts(4, 6);
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 200, BlockSize = 4 });
        var outs = g.Generate(prompts, new SamplingParams { N = 2, Temperature = temperature, TopK = topK, TopP = topP, MaxTokens = 20, Seed = 9 });
        for (var j = 0; j < prompts.Length; j++)
            foreach (var o in outs[j].Outputs)
            {
                var want = TrainerLogprobs(w, prompts[j], o.TokenIds, temperature);
                for (var t = 0; t < want.Length; t++)
                    Assert.True(Math.Abs(want[t] - o.Logprobs[t]) < 2e-4, $"prompt {j} completion {o.Index} token {t}: {o.Logprobs[t]} vs {want[t]}");
                if (topK == 0 && topP >= 1)
                    Assert.Equal(o.Logprobs, o.ProcessedLogprobs, (x, y) => Math.Abs(x - y) < 1e-4);
                else
                    Assert.All(o.Logprobs.Zip(o.ProcessedLogprobs), z => Assert.True(z.Item2 >= z.Item1 - 1e-5));
            }
    }

    [Fact]
    public void The_n_samples_share_the_prompt_blocks_and_copy_only_the_partial_block()
    {
        using var w = Weights();
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 50, BlockSize = 16, Watermark = 0 });
        g.AddRequest(Prompts(1, 7, 20, 20)[0], new SamplingParams { N = 4, Temperature = 1, MaxTokens = 5, Seed = 1 });
        g.Step();                                                        // prefill once, sample 4, fork
        Assert.Equal(2, g.Blocks.NumUsedBlocks);                         // 20 prompt tokens: 2 blocks, shared by all four
        g.Step();                                                        // each writes token 21 into block 1: 3 copies
        Assert.Equal(5, g.Blocks.NumUsedBlocks);
        while (g.HasUnfinishedRequests) g.Step();
        Assert.Equal(50, g.Blocks.NumFreeBlocks);
    }

    [Fact]
    public void Prefix_caching_reuses_prompt_blocks_until_the_weights_change()
    {
        using var w = Weights();
        var shared = Prompts(1, 8, 40, 40)[0];
        var prompts = Enumerable.Range(0, 4).Select(k => shared.Concat(new[] { k, k + 1 }).ToArray()).ToArray();
        var p = new SamplingParams { N = 1, Temperature = 0, MaxTokens = 12 };
        using var plain = new PagedGenerator(w, new GenerationSettings { NumBlocks = 200, BlockSize = 8 });
        using var cached = new PagedGenerator(w, new GenerationSettings { NumBlocks = 200, BlockSize = 8, EnablePrefixCaching = true });
        var want = plain.Generate(prompts, p);
        cached.Generate(prompts[..1], p);
        var hitsBefore = cached.Blocks.PrefixCacheHits;
        var got = cached.Generate(prompts, p);
        Assert.True(cached.Blocks.PrefixCacheHits - hitsBefore >= 4 * 5, $"hits {cached.Blocks.PrefixCacheHits - hitsBefore}");
        Assert.True(cached.Stats.PrefillTokens < plain.Stats.PrefillTokens);
        for (var j = 0; j < prompts.Length; j++) Assert.Equal(want[j].Outputs[0].TokenIds, got[j].Outputs[0].TokenIds);
        cached.UpdateWeights(w);
        var hits = cached.Blocks.PrefixCacheHits;
        cached.Generate(prompts[..1], p);
        Assert.Equal(hits, cached.Blocks.PrefixCacheHits);              // nothing reused across a weight update
    }

    [Fact]
    public void Generating_leaks_neither_blocks_nor_tensors()
    {
        using var w = Weights();
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 60, BlockSize = 4, Watermark = 0 });
        var prompts = Prompts(6, 10);
        g.Generate(prompts, new SamplingParams { N = 2, Temperature = 1, MaxTokens = 15, StopTokenIds = [0], Seed = 2 });
        var live = Torch.LiveTensors;
        g.Generate(prompts, new SamplingParams { N = 2, Temperature = 1, MaxTokens = 15, StopTokenIds = [0], Seed = 3 });
        Assert.Equal(live, Torch.LiveTensors);
        Assert.Equal(g.NumBlocks, g.Blocks.NumFreeBlocks);
        Assert.Equal(0, g.NumUnfinishedRequests);
    }

    [Fact]
    public void Invalid_requests_are_refused_with_reasons()
    {
        using var w = Weights();
        using var g = new PagedGenerator(w, new GenerationSettings { NumBlocks = 10, BlockSize = 4 });
        Assert.Throws<ArgumentException>(() => g.AddRequest([], new SamplingParams { N = 1, Temperature = 1.0 }));
        Assert.Throws<ArgumentException>(() => g.AddRequest([Vocab], new SamplingParams { N = 1, Temperature = 1.0 }));
        Assert.Throws<ArgumentException>(() => g.AddRequest([1], new SamplingParams { N = 1, Temperature = 1.0, TopP = 0 }));
        Assert.Throws<InvalidOperationException>(() => g.AddRequest(new int[60], new SamplingParams { N = 1, Temperature = 1.0 }));   // 15 blocks > 10
        Assert.Throws<ArgumentException>(() => g.AddRequest([1], new SamplingParams { Temperature = 1.0, N = 300 }));             // n > max_num_seqs
    }
}
