using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Generation;

using Torch = Rlhf.Torch.Torch;

public class SamplerTests
{
    private static Tensor Logits(params double[] probs) =>
        Torch.From(probs.Select(p => (float)Math.Log(p)).ToArray(), 1, probs.Length);

    private static bool[] Kept(Tensor processed) =>
        processed.IsFinite().View(-1).ToArray<bool>();

    private static SampleRow Row(SamplingParams p, ulong seed = 0, int step = 0, bool mask = false) => new(p, seed, step, mask);

    [Fact]
    public void Top_k_keeps_the_k_largest_and_their_ties()
    {
        using var scope = Torch.NewScope();
        var x = Torch.From([0f, 5f, 1f, 4f, 2f, 3f], 1, 6);
        Assert.Equal([false, true, false, true, false, true], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopK = 3 })])));
        var ties = Torch.From([1f, 2f, 2f, 2f, 0f], 1, 5);
        Assert.Equal([false, true, true, true, false], Kept(Sampler.ProcessLogits(ties, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopK = 2 })])));
        Assert.All(Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopK = 0 })])), Assert.True);
    }

    [Fact]
    public void Top_p_keeps_the_smallest_head_reaching_p_and_always_the_top_token()
    {
        using var scope = Torch.NewScope();
        var x = Logits(0.1, 0.4, 0.2, 0.3);
        Assert.Equal([false, true, false, true], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopP = 0.6 })])));   // 0.4 + 0.3 ≥ 0.6
        Assert.Equal([false, true, true, true], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopP = 0.75 })])));  // needs 0.2 too
        Assert.Equal([false, true, false, false], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopP = 0.01 })]))); // top token stays
        Assert.All(Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopP = 1.0 })])), Assert.True);
    }

    [Fact]
    public void Min_p_drops_tokens_below_a_fraction_of_the_top_probability()
    {
        using var scope = Torch.NewScope();
        var x = Logits(0.5, 0.25, 0.15, 0.1);
        Assert.Equal([true, true, true, false], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, MinP = 0.25 })])));   // threshold 0.125
        Assert.Equal([true, true, false, false], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, MinP = 0.4 })])));   // threshold 0.2
    }

    [Fact]
    public void Temperature_comes_before_the_filters()
    {
        using var scope = Torch.NewScope();
        var x = Logits(0.1, 0.4, 0.2, 0.3);
        // At T = 0.25 the head sharpens: p ∝ p^4 → 0.4 holds ~0.72 of the mass, so top-p 0.7 keeps it alone.
        Assert.Equal([false, true, false, false], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 0.25, TopP = 0.7 })])));
        // At T = 1 the same top-p needs two tokens.
        Assert.Equal([false, true, false, true], Kept(Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopP = 0.7 })])));
        // Processed logits are the temperature-scaled ones where kept.
        var p = Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 0.5 })]);
        Assert.True(p.AllClose(x / 0.5, 1e-6, 1e-6));
    }

    [Fact]
    public void Filters_compose_in_vllm_order_per_row()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Cat([Logits(0.1, 0.4, 0.2, 0.3), Logits(0.1, 0.4, 0.2, 0.3), Logits(0.5, 0.25, 0.15, 0.1)]);
        var p = Sampler.ProcessLogits(x, [Row(new SamplingParams { N = 1, Temperature = 1.0, TopK = 2, TopP = 0.5 }), Row(new SamplingParams { N = 1, Temperature = 1.0 }), Row(new SamplingParams { N = 1, Temperature = 1.0, TopK = 3, MinP = 0.4 })]);
        // Row 0: top-k keeps {0.4, 0.3}; top-p over those renormalised (0.57, 0.43) keeps 0.4 alone.
        // Row 1: untouched. Row 2: top-k drops 0.1; min-p 0.4 of the renormalised top (0.556) is 0.222: 0.25/0.9 stays, 0.15/0.9 goes.
        Assert.Equal([false, true, false, false, true, true, true, true, true, true, false, false], Kept(p));
    }

    [Fact]
    public void Greedy_takes_the_argmax_and_ignores_the_seed()
    {
        using var scope = Torch.NewScope();
        var x = Torch.From([0.1f, 2f, 1.9f, -3f], 1, 4);
        for (ulong s = 0; s < 20; s++)
            Assert.Equal(1, Sampler.Sample(x, [Row(new SamplingParams { N = 1, Temperature = 0 }, s)]).Tokens[0]);
    }

    [Fact]
    public void Sampling_follows_the_processed_distribution_and_never_leaves_its_support()
    {
        using var scope = Torch.NewScope();
        var x = Logits(0.05, 0.45, 0.2, 0.3);
        var p = new SamplingParams { N = 1, Temperature = 1.0, TopK = 3 };                     // support {1, 2, 3}, probabilities 0.45/0.95, 0.2/0.95, 0.3/0.95
        const int n = 4000;
        var rows = Enumerable.Range(0, n).Select(i => Row(p, (ulong)i)).ToList();
        var many = Torch.Cat(Enumerable.Repeat(x, n).ToList());
        var o = Sampler.Sample(many, rows);
        var counts = new int[4];
        foreach (var t in o.Tokens) counts[t]++;
        Assert.Equal(0, counts[0]);
        double[] want = [0, 0.45 / 0.95, 0.2 / 0.95, 0.3 / 0.95];
        for (var t = 1; t < 4; t++)
        {
            var sd = Math.Sqrt(want[t] * (1 - want[t]) / n);
            Assert.True(Math.Abs(counts[t] / (double)n - want[t]) < 5 * sd, $"token {t}: {counts[t] / (double)n:F3} vs {want[t]:F3}");
        }
    }

    /// <summary>
    /// A row's sample depends on its own logits, parameters, seed and position only: sampled alone or among random
    /// other rows (in any position of the batch), it is the same token with the same log-probabilities.
    /// </summary>
    [Fact]
    public void Seeded_samples_do_not_depend_on_the_rest_of_the_batch() =>
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(60).WithQuietOnSuccess(true), Prop.ForAll(
            Arb.From(from seed in Gen.Choose(0, 1_000_000) from others in Gen.Choose(0, 6) from at in Gen.Choose(0, 6) select (seed, others, at)),
            c =>
            {
                using var scope = Torch.NewScope();
                using var gen = new Generator((ulong)c.seed);
                var v = 50;
                var mine = Torch.Randn([1, v], gen) * 3;
                var p = new SamplingParams { N = 1, Temperature = 0.8, TopP = 0.9, TopK = 20, MinP = 0.01 };
                var alone = Sampler.Sample(mine, [Row(p, (ulong)c.seed, 7)]);
                var rows = new List<SampleRow>();
                var logits = new List<Tensor>();
                var at = Math.Min(c.at, c.others);
                for (var i = 0; i <= c.others; i++)
                {
                    if (i == at) { rows.Add(Row(p, (ulong)c.seed, 7)); logits.Add(mine); }
                    else { rows.Add(Row(new SamplingParams { N = 1, Temperature = 1.3, TopK = 5 }, (ulong)(c.seed + 1000 + i), i)); logits.Add(Torch.Randn([1, v], gen)); }
                }
                var mixed = Sampler.Sample(Torch.Cat(logits), rows);
                Assert.Equal(alone.Tokens[0], mixed.Tokens[at]);
                Assert.Equal(alone.Logprobs[0], mixed.Logprobs[at], 5);
                Assert.Equal(alone.ProcessedLogprobs[0], mixed.ProcessedLogprobs[at], 5);
            }));

    [Fact]
    public void Different_seeds_and_steps_give_different_streams()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([1, 1000]);                          // uniform over 1000 tokens
        var p = new SamplingParams { N = 1, Temperature = 1.0 };
        var bySeed = Enumerable.Range(0, 50).Select(s => Sampler.Sample(x, [Row(p, (ulong)s)]).Tokens[0]).Distinct().Count();
        var byStep = Enumerable.Range(0, 50).Select(s => Sampler.Sample(x, [Row(p, 3, s)]).Tokens[0]).Distinct().Count();
        Assert.True(bySeed > 40 && byStep > 40, $"{bySeed} distinct tokens over seeds, {byStep} over steps");
        Assert.Equal(Sampler.Sample(x, [Row(p, 3, 4)]).Tokens[0], Sampler.Sample(x, [Row(p, 3, 4)]).Tokens[0]);
    }

    [Fact]
    public void Logprobs_are_the_trainers_and_the_processed_distributions()
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator(3);
        var x = Torch.Randn([3, 30], gen) * 2;
        var ps = new[] { new SamplingParams { N = 1, Temperature = 0.7 }, new SamplingParams { N = 1, Temperature = 0.7, TopK = 4 }, new SamplingParams { N = 1, Temperature = 0 } };
        var rows = ps.Select((p, i) => Row(p, (ulong)i)).ToList();
        var o = Sampler.Sample(x, rows);
        var processed = Sampler.ProcessLogits(x, rows).LogSoftmax(-1);
        for (var i = 0; i < 3; i++)
        {
            var t = o.Tokens[i];
            var trainer = (x[i] / (ps[i].Temperature + 1e-7)).LogSoftmax(-1)[t].Item<float>();
            Assert.Equal(trainer, o.Logprobs[i], 5);
            Assert.Equal(processed[i][t].Item<float>(), o.ProcessedLogprobs[i], 5);
        }
        Assert.Equal(o.Logprobs[0], o.ProcessedLogprobs[0], 4);       // no filter: the same distribution
        Assert.True(o.ProcessedLogprobs[1] > o.Logprobs[1]);          // top-k renormalises over fewer tokens
    }

    [Fact]
    public void Stop_tokens_are_masked_while_below_min_tokens()
    {
        using var scope = Torch.NewScope();
        var x = Torch.From([0f, 10f, 9f, 0f], 1, 4);
        var p = new SamplingParams { N = 1, Temperature = 0, StopTokenIds = [1], MinTokens = 2 };
        var masked = Sampler.Sample(x, [Row(p, 0, 0, mask: true)]);
        Assert.Equal(2, masked.Tokens[0]);
        Assert.True(float.IsNegativeInfinity(Sampler.ProcessLogits(x, [Row(p, 0, 0, mask: true)])[0][1].Item<float>()));
        Assert.Equal(1, Sampler.Sample(x, [Row(p, 0, 2, mask: false)]).Tokens[0]);
    }
}
