using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Generation;
using Rlhf.Torch;
using Xunit;

namespace Rlhf.Shell.Tests.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// In-flight weight updates (PipelineRL): the generator switches weights between decode steps of running requests, keeps their
/// K/V, and records per token the version that sampled it.
/// </summary>
[Collection(MemoryCollection.Name)]
public class InflightUpdateTests
{
    private static readonly ModelConfig Config = ModelConfig.Llama(40, 32, 48, 2, 4, kvHeads: 2, maxPositions: 256);
    private static readonly int[][] Prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9]];
    private static readonly SamplingParams Params = new() { N = 2, Temperature = 1.0, MaxTokens = 8, Seed = 3 };

    /// <summary>
    /// Runs both prompts (seeds as <see cref="PagedGenerator.Generate"/> gives them), switching to <paramref name="swap"/> as version 7
    /// after <paramref name="after"/> steps with <paramref name="kv"/> for the running sequences' K/V.
    /// </summary>
    private static CompletionOutput[] Run(ModelWeights start, ModelWeights? swap, int after, KvOnUpdate kv = KvOnUpdate.Keep)
    {
        using var g = new PagedGenerator(start, new GenerationSettings { NumBlocks = 64, BlockSize = 4 });
        for (var j = 0; j < Prompts.Length; j++) g.AddRequest(Prompts[j], Params with { Seed = Params.Seed + j * Params.N }, $"r{j}");
        var done = new Dictionary<string, RequestOutput>();
        for (var step = 0; g.HasUnfinishedRequests; step++)
        {
            if (step == after && swap is not null) g.UpdateWeights(swap, 7, kv);
            foreach (var o in g.Step()) done[o.RequestId] = o;
        }
        return Prompts.Select((_, j) => done[$"r{j}"]).SelectMany(o => o.Outputs).ToArray();
    }

    [Fact]
    public void Tokens_record_their_version_and_only_tokens_after_the_update_change()
    {
        using var scope = Torch.NewScope();
        var w0 = ModelInit.Random(Config, 5, ScalarType.Float64, std: 0.35);
        var w1 = ModelInit.Random(Config, 6, ScalarType.Float64, std: 0.35);
        var baseline = Run(w0, null, 0);
        var same = Run(w0, w0.Map((_, t) => t.Clone()), 2);
        var moved = Run(w0, w1, 2);

        Assert.Equal(4, baseline.Length);
        foreach (var c in baseline) Assert.Equal(Enumerable.Repeat(0L, 8), c.TokenVersions);
        // Step 1 samples token 1 (prefill), step 2 token 2; from step 3 on the new version samples.
        long[] versions = [0, 0, 7, 7, 7, 7, 7, 7];
        foreach (var c in same.Concat(moved)) Assert.Equal(versions, c.TokenVersions);

        // The same values under a new version: the kept K/V and the sampling streams give exactly the baseline.
        for (var i = 0; i < baseline.Length; i++)
        {
            Assert.Equal(baseline[i].TokenIds, same[i].TokenIds);
            Assert.Equal(baseline[i].Logprobs, same[i].Logprobs);
        }
        // New values: the first two tokens (and their logprobs) are the old weights', the third token's logprob is the new ones'.
        for (var i = 0; i < baseline.Length; i++)
        {
            Assert.Equal(baseline[i].TokenIds[..2], moved[i].TokenIds[..2]);
            Assert.Equal(baseline[i].Logprobs[..2], moved[i].Logprobs[..2]);
        }
        Assert.Contains(Enumerable.Range(0, baseline.Length), i => baseline[i].Logprobs[2] != moved[i].Logprobs[2] || baseline[i].TokenIds[2] != moved[i].TokenIds[2]);
    }

    /// <summary>A fresh full forward of prompt + completion under <paramref name="w"/>: <c>log_softmax(logits / (T + 1e-7))</c> at each completion token.</summary>
    private static double[] FreshLogprobs(ModelWeights w, int[] prompt, int[] completion)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var all = prompt.Concat(completion).Select(t => (long)t).ToArray();
        var logits = Transformer.Forward(w, Torch.From(all, 1, all.Length))[0];                                         // [T, V]
        var lp = (logits.Narrow(0, prompt.Length - 1, completion.Length) / (Params.Temperature + 1e-7)).LogSoftmax(-1);  // [C, V]
        var idx = Torch.From(completion.Select(t => (long)t).ToArray(), completion.Length, 1);
        return lp.Gather(1, idx).View(-1).To(ScalarType.Float64).ToArray<double>();
    }

    [Fact]
    public void Recompute_samples_after_an_update_as_a_fresh_forward_of_the_new_weights_would_and_keep_does_not()
    {
        using var scope = Torch.NewScope();
        var w0 = ModelInit.Random(Config, 5, ScalarType.Float64, std: 0.35);
        var w1 = ModelInit.Random(Config, 6, ScalarType.Float64, std: 0.35);
        var recomputed = Run(w0, w1, 2, KvOnUpdate.Recompute);
        var kept = Run(w0, w1, 2, KvOnUpdate.Keep);
        var prompts = Prompts.SelectMany(p => Enumerable.Repeat(p, Params.N)).ToArray();   // completion i answers prompt i / n
        var keptGap = 0.0;
        for (var i = 0; i < recomputed.Length; i++)
        {
            Assert.Equal([0, 0, 7, 7, 7, 7, 7, 7], recomputed[i].TokenVersions);
            // Tokens 0 and 1 were sampled by the old weights; from token 2 on every logprob is the new weights' over prompt and all
            // tokens before it, K/V of the first two included, as if the sequence had been generated by them from the start.
            var old = FreshLogprobs(w0, prompts[i], recomputed[i].TokenIds);
            var fresh = FreshLogprobs(w1, prompts[i], recomputed[i].TokenIds);
            for (var t = 0; t < recomputed[i].TokenIds.Length; t++)
            {
                var want = t < 2 ? old[t] : fresh[t];
                Assert.True(Math.Abs(recomputed[i].Logprobs[t] - want) <= 1e-5,
                    $"completion {i}, token {t}: generator logprob {recomputed[i].Logprobs[t]} vs fresh forward {want}");
            }
            // Kept K/V: token 2 is sampled by the new weights attending over the old weights' keys and values.
            var keptFresh = FreshLogprobs(w1, prompts[i], kept[i].TokenIds);
            keptGap = Math.Max(keptGap, Math.Abs(kept[i].Logprobs[2] - keptFresh[2]));
        }
        Assert.True(keptGap > 1e-3, $"keep: token 2's logprob is within {keptGap:E2} of a fresh forward of the new weights; the option would change nothing");
    }
}
