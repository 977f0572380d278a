using FsCheck.Fluent;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

public class MaskingTests
{
    private const long Stop = 2, Pad = 0;

    [Fact]
    public void Hand_example_truncation_lengths_and_masks()
    {
        using var scope = Torch.NewScope();
        // Row 0 stops at t=2; row 1 has no stop; row 2 stops at t=0; row 3 stops at t=3 (last position).
        var r = T.L([5, 7, 2, 9, 2,
                     5, 6, 7, 8, 9,
                     2, 4, 2, 4, 4,
                     3, 3, 3, 2, 6], 4, 5);
        var tr = Masking.Truncate(r, Stop, Pad);
        Assert.Equal(new long[] { 5, 7, 2, 0, 0, 5, 6, 7, 8, 9, 2, 0, 0, 0, 0, 3, 3, 3, 2, 0 }, T.AL(tr));
        var len = Masking.SequenceLengths(tr, Pad);
        Assert.Equal(ScalarType.Int64, len.Dtype);
        Assert.Equal(new long[] { 2, 4, 0, 3 }, T.AL(len));
        Assert.Equal(new[] { false, false, false, true, true, false, false, false, false, false, false, true, true, true, true, false, false, false, false, true },
            T.AB(Masking.PaddingMask(len, 5)));
        Assert.Equal(new[] { false, false, false, false, true, false, false, false, false, false, false, false, true, true, true, false, false, false, false, false },
            T.AB(Masking.PaddingMask(len, 5, offset: 1)));
        // end = seq_len + 1 if it fits in T, else seq_len.
        Assert.Equal(new long[] { 3, 4, 1, 4 }, T.AL(Masking.EndIndex(len, 5)));
        Assert.Equal(new[] { true, false, true, true }, T.AB(Masking.ContainsStop(tr, Stop)));
    }

    [Fact]
    public void First_true_indices_is_the_row_length_when_no_element_is_true()
    {
        using var scope = Torch.NewScope();
        var f = Masking.FirstTrueIndices(T.B(new[,] { { false, true, true }, { false, false, false }, { true, false, false } }));
        Assert.Equal(new long[] { 1, 3, 0 }, T.AL(f));
    }

    [Fact]
    public void Mask_logprobs_sets_padding_to_the_invalid_constant()
    {
        using var scope = Torch.NewScope();
        var lp = T.D([-1.0, -2.0, -3.0, -4.0], 2, 2);
        var pad = T.B(new[,] { { false, true }, { false, false } });
        Assert.Equal(new[] { -1.0, 1.0, -3.0, -4.0 }, T.A(Masking.MaskLogprobs(lp, pad)));
    }

    private static Tensor RandomTokens(Case c) => Torch.Randint(0, 4, [c.B, c.T], c.Gen());

    [Fact]
    public void Truncation_is_idempotent() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var once = Masking.Truncate(RandomTokens(c), Stop, Pad);
        return once.Equal(Masking.Truncate(once, Stop, Pad));
    });

    [Fact]
    public void Truncation_matches_a_scalar_loop() => T.Check(T.Cases(), c =>
    {
        using var scope = Torch.NewScope();
        var r = RandomTokens(c);
        var src = T.AL(r);
        var expected = (long[])src.Clone();
        for (var i = 0; i < c.B; i++)
        {
            var stopped = false;
            for (var t = 0; t < c.T; t++)
            {
                if (stopped) expected[i * c.T + t] = Pad;
                if (src[i * c.T + t] == Stop) stopped = true;
            }
        }
        var tr = Masking.Truncate(r, Stop, Pad);
        Assert.Equal(expected, T.AL(tr));
        // seq_len: first pad − 1 (T − 1 when there is none).
        var len = T.AL(Masking.SequenceLengths(tr, Pad));
        for (var i = 0; i < c.B; i++)
        {
            var first = c.T;
            for (var t = c.T - 1; t >= 0; t--) if (expected[i * c.T + t] == Pad) first = t;
            Assert.Equal(first - 1, len[i]);
        }
    });

    [Fact]
    public void Logprobs_from_logits_match_a_scalar_loop_and_use_temperature_plus_epsilon()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(3);
        const int b = 2, t = 3, v = 5;
        const double temp = 0.7;
        var logits = T.Randn(g, b, t, v);
        var tokens = Torch.Randint(0, v, [b, t], g);
        var lp = T.A(Logprobs.FromLogits(logits, tokens, temp));
        var l = T.A(logits);
        var tok = T.AL(tokens);
        for (var i = 0; i < b * t; i++)
        {
            var z = Enumerable.Range(0, v).Select(k => l[i * v + k] / (temp + 1e-7)).ToArray();
            var max = z.Max();
            var lse = max + Math.Log(z.Sum(x => Math.Exp(x - max)));
            T.Close(z[tok[i]] - lse, lp[i], 1e-12);
        }
    }

    [Fact]
    public void Response_logits_are_the_positions_that_predict_the_response()
    {
        using var scope = Torch.NewScope();
        var logits = Torch.Arange(0.0, 6.0, 1.0, ScalarType.Float64).View(1, 6, 1);
        // ctx = 2, T = 4: positions 1..4 predict response tokens 0..3.
        Assert.Equal(new[] { 1.0, 2, 3, 4 }, T.A(Logprobs.ResponseLogits(logits, 2)));
    }

    [Fact]
    public void Entropy_from_logits_hand_example_and_loop()
    {
        using var scope = Torch.NewScope();
        // Uniform over 4 → log 4; one-hot-ish logits → near 0.
        var e = T.A(Logprobs.EntropyFromLogits(T.D([0.0, 0, 0, 0, 100, 0, 0, 0], 2, 4)));
        T.Close(Math.Log(4), e[0], 1e-12);
        T.Close(0, e[1], 1e-12);
        var l = new[] { 0.3, -1.2, 2.0 };
        var p = l.Select(Math.Exp).ToArray();
        var zsum = p.Sum();
        var h = -p.Select((x, i) => x / zsum * Math.Log(x / zsum)).Sum();
        T.Close(h, T.A(Logprobs.EntropyFromLogits(T.D(l, 3)))[0], 1e-12);
    }

    [Fact]
    public void Logprobs_from_logits_gradient_matches_finite_differences()
    {
        using var scope = Torch.NewScope();
        var g = new Generator(5);
        var tokens = Torch.Randint(0, 4, [2, 3], g);
        GradCheck.Check(x => Logprobs.FromLogits(x[0], tokens, 0.9).Sum() + Logprobs.EntropyFromLogits(x[0]).Sum(), [T.Randn(g, 2, 3, 4)]);
    }
}
