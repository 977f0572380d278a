using FsCheck;
using FsCheck.Fluent;
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

public class TransformerTests
{
    public static TheoryData<string> Variants() => new(TinyModels.Variants);

    private static void AssertClose(double expected, double actual, double tol, string what)
    {
        if (Math.Abs(expected - actual) > tol * (1 + Math.Abs(expected)))
            Assert.Fail($"{what}: expected {expected}, got {actual} (|Δ| = {Math.Abs(expected - actual):g3})");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Forward_matches_a_plain_loop_reference(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w = TinyModels.Weights(config);
        long[] ids = [3, 0, 10, 7, 7, 2];
        var logits = Transformer.Forward(w, TinyModels.Ids(ids, 1, ids.Length));
        Assert.Equal([1, ids.Length, TinyModels.Vocab], logits.Shape);
        var got = logits.ToArray<double>();
        var expected = new ReferenceModel(w).Logits(ids);
        // Rotary frequencies are float32 as in HF, so agreement is ~1e-7, not 1e-15.
        for (var t = 0; t < ids.Length; t++)
            for (var v = 0; v < TinyModels.Vocab; v++)
                AssertClose(expected[t][v], got[t * TinyModels.Vocab + v], 1e-6, $"{variant} logits[{t}, {v}]");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Per_layer_entry_points_compose_to_forward(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w = TinyModels.Weights(config, seed: 3);
        var ids = TinyModels.Ids([1, 2, 3, 4, 5, 6, 7, 8], 2, 4);
        var positions = Torch.Arange(4).Unsqueeze(0).Expand(2, 4);
        var attention = new CausalAttention();
        var x = Transformer.Embed(w, ids, positions);
        for (var i = 0; i < config.NumHiddenLayers; i++) x = Transformer.Block(w, i, x, positions, attention);
        var logits = Transformer.LmHead(w, Transformer.FinalNorm(w, x));
        Assert.True(logits.Equal(Transformer.Forward(w, ids)));
    }

    /// <summary>Dynamic NTK reads the call's longest position (HF dynamic_rope_update), so a row alone and in a batch differ by design.</summary>
    public static TheoryData<string> CallLengthIndependentVariants() => new(TinyModels.Variants.Where(v => !TinyModels.DependsOnCallLength(v)));

    [Theory]
    [MemberData(nameof(CallLengthIndependentVariants))]
    public void Left_padded_batch_equals_one_sequence_at_a_time(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w = TinyModels.Weights(config, seed: 11);
        long[][] seqs = [[4, 9, 1, 1, 5], [2, 3], [10, 0, 6]];
        const long T = 5, pad = 0;
        var ids = new long[seqs.Length * T];
        var mask = new long[seqs.Length * T];
        for (var b = 0; b < seqs.Length; b++)
            for (var t = 0; t < T; t++)
            {
                var offset = T - seqs[b].Length;
                ids[b * T + t] = t < offset ? pad : seqs[b][t - offset];
                mask[b * T + t] = t < offset ? 0 : 1;
            }
        var batched = Transformer.Forward(w, Torch.From(ids, seqs.Length, T), attentionMask: Torch.From(mask, seqs.Length, T));
        for (var b = 0; b < seqs.Length; b++)
        {
            var single = Transformer.Forward(w, Torch.From(seqs[b], 1, seqs[b].Length));                    // [1, L, V]
            var rows = batched.Narrow(0, b, 1).Narrow(1, T - seqs[b].Length, seqs[b].Length);              // [1, L, V]
            Assert.True(rows.AllClose(single, rtol: 1e-9, atol: 1e-10), $"{variant}: sequence {b} differs when left-padded");
        }
        Assert.False(batched.IsNan().Any().Item() != 0, "padding rows must not produce NaN");
    }

    [Fact]
    public void Changing_a_later_token_never_changes_earlier_logits()
    {
        var models = TinyModels.Variants.Select(v => TinyModels.Weights(TinyModels.Config(v), seed: 5)).ToArray();
        try
        {
            var cases = from m in Gen.Choose(0, models.Length - 1)
                        from len in Gen.Choose(2, 7)
                        from ids in Gen.ArrayOf(Gen.Choose(0, (int)TinyModels.Vocab - 1), len)
                        from j in Gen.Choose(1, len - 1)
                        from replacement in Gen.Choose(0, (int)TinyModels.Vocab - 1)
                        select (m, ids, j, replacement);
            Check.One(Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(cases), c =>
            {
                using var scope = Torch.NewScope();
                var (m, idsInt, j, replacement) = c;
                var ids = idsInt.Select(i => (long)i).ToArray();
                var changed = (long[])ids.Clone();
                changed[j] = (replacement + (int)ids[j] + 1) % TinyModels.Vocab == ids[j] ? replacement : (ids[j] + 1 + replacement) % TinyModels.Vocab;
                if (changed[j] == ids[j]) changed[j] = (ids[j] + 1) % TinyModels.Vocab;
                var a = Transformer.Forward(models[m], Torch.From(ids, 1, ids.Length)).Narrow(1, 0, j);
                var b = Transformer.Forward(models[m], Torch.From(changed, 1, ids.Length)).Narrow(1, 0, j);
                Assert.True(a.AllClose(b, rtol: 0, atol: 1e-12), $"{TinyModels.Variants[m]}: logits before position {j} changed");
                // and the change is visible at position j itself, so the test can fail
                var aj = Transformer.Forward(models[m], Torch.From(ids, 1, ids.Length)).Select(1, j);
                var bj = Transformer.Forward(models[m], Torch.From(changed, 1, ids.Length)).Select(1, j);
                Assert.False(aj.AllClose(bj, rtol: 0, atol: 1e-9));
            }));
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }

    [Fact]
    public void Positions_from_mask_follow_trl()
    {
        using var scope = Torch.NewScope();
        var mask = Torch.From(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 0, 0 }, 2, 5);
        Assert.Equal(new long[] { 0, 0, 0, 1, 2, 0, 1, 2, 3, 3 }, Transformer.PositionsFromMask(mask).ToArray<long>());
    }

    [Fact]
    public void Gradients_reach_every_weight()
    {
        using var scope = Torch.NewScope();
        foreach (var variant in TinyModels.Variants)
        {
            using var w = TinyModels.Weights(TinyModels.Config(variant), seed: 2);
            foreach (var t in w.Tensors.Values) t.RequiresGrad_();
            var ids = TinyModels.Ids([1, 2, 3, 4, 5, 6], 2, 3);
            var logits = Transformer.Forward(w, ids);
            Functional.CrossEntropy(logits.Reshape(-1, TinyModels.Vocab), Torch.From(new long[] { 2, 3, 4, 5, 6, 7 })).Backward();
            foreach (var (name, t) in w.Tensors)
            {
                var g = t.Grad;
                Assert.True(g is not null, $"{variant}: no gradient for {name}");
                Assert.True(g!.Abs().Sum().Item() > 0, $"{variant}: zero gradient for {name}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Float32_forward_agrees_with_float64(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w64 = TinyModels.Weights(config);
        using var w32 = w64.Map((_, t) => t.To(ScalarType.Float32).DetachFromScope());
        var ids = TinyModels.Ids([1, 2, 3, 4], 1, 4);
        var a = Transformer.Forward(w64, ids);
        var b = Transformer.Forward(w32, ids);
        Assert.Equal(ScalarType.Float32, b.Dtype);
        Assert.True(a.AllClose(b.To(ScalarType.Float64), rtol: 1e-4, atol: 1e-4));
    }

    [Fact]
    public void Gpt2_rejects_positions_past_its_table()
    {
        using var scope = Torch.NewScope();
        using var w = TinyModels.Weights(TinyModels.Config("gpt2"));
        var ex = Assert.Throws<ArgumentException>(() => Transformer.Forward(w, Torch.Zeros([1, 13], ScalarType.Int64)));
        Assert.Contains("n_positions 12", ex.Message);
    }
}
