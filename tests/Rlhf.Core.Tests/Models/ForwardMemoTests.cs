using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The per-forward memos: rotary tables and the causal mask are built once per forward and kept across forwards over
/// equal inputs. They must never hand out a stale entry (different positions, padding, dtype or settings) and must not
/// change a single bit of the outputs. Runs alone: one test counts <see cref="Torch.LiveTensors"/>, which sees every
/// handle in the process, so a test running beside it would change the count.
/// </summary>
[Collection("Memory")]
public class ForwardMemoTests
{
    private static Tensor Positions(params long[] p) => Torch.From(p, 1, p.Length);

    private static void AssertSameAsFresh(Tensor positions, ModelConfig c, ScalarType dtype, string what)
    {
        var (cos, sin) = Rotary.CachedTables(positions, c, dtype);
        var (freshCos, freshSin) = Rotary.Tables(positions, c, dtype);
        Assert.True(cos.Equal(freshCos) && sin.Equal(freshSin), $"{what}: cached tables differ from freshly built ones");
    }

    [Fact]
    public void Cached_rotary_tables_equal_fresh_ones_whatever_changes_between_calls()
    {
        using var scope = Torch.NewScope();
        using var memos = Transformer.KeepForwardInputs();
        var llama = ModelConfig.Llama(11, 16, 24, 1, 2);
        var otherTheta = llama with { RopeTheta = 500 };
        var dynamic = ModelConfig.Llama(11, 16, 24, 1, 2, maxPositions: 4) with { RopeScaling = new DynamicRopeScaling(3) };
        AssertSameAsFresh(Positions(0, 1, 2, 3, 4), llama, ScalarType.Float32, "first call");
        AssertSameAsFresh(Positions(0, 1, 2, 3, 4, 5, 6), llama, ScalarType.Float32, "longer positions");
        AssertSameAsFresh(Positions(7, 1, 2, 3, 4, 5, 6), llama, ScalarType.Float32, "same shape, other contents");
        AssertSameAsFresh(Torch.From(new long[] { 0, 1, 2, 3, 4, 5, 6 }, 7, 1), llama, ScalarType.Float32, "same contents, other shape");
        AssertSameAsFresh(Positions(7, 1, 2, 3, 4, 5, 6), llama, ScalarType.Float64, "other dtype");
        AssertSameAsFresh(Positions(7, 1, 2, 3, 4, 5, 6), otherTheta, ScalarType.Float64, "other rope theta");
        AssertSameAsFresh(Positions(0, 1, 2), dynamic, ScalarType.Float64, "dynamic NTK within the context");
        AssertSameAsFresh(Positions(0, 1, 2, 3, 4, 5), dynamic, ScalarType.Float64, "dynamic NTK beyond it (grown base)");

        var reused = Positions(0, 1, 2);
        AssertSameAsFresh(reused, llama, ScalarType.Float32, "before an in-place change");
        reused.Add_(Torch.From(new long[] { 5, 5, 5 }, 1, 3));                            // the same tensor object, new contents
        AssertSameAsFresh(reused, llama, ScalarType.Float32, "after an in-place change");
    }

    [Fact]
    public void Cached_rotary_tables_are_built_once_for_equal_positions()
    {
        using var scope = Torch.NewScope();
        using var memos = Transformer.KeepForwardInputs();
        var c = ModelConfig.Llama(11, 16, 24, 1, 2);
        var first = Rotary.CachedTables(Positions(0, 1, 2, 3), c, ScalarType.Float32);
        var again = Rotary.CachedTables(Positions(0, 1, 2, 3), c, ScalarType.Float32);      // a new tensor, equal contents
        Assert.Same(first.Cos, again.Cos);
        Assert.Same(first.Sin, again.Sin);
        var other = Rotary.CachedTables(Positions(0, 1, 2, 4), c, ScalarType.Float32);
        Assert.NotSame(first.Cos, other.Cos);
        Assert.True(first.Cos.IsDisposed, "the replaced entry is freed, not left to the finalizer");
    }

    [Fact]
    public void Memos_live_only_inside_a_scope_and_are_freed_when_the_outermost_one_ends()
    {
        using var scope = Torch.NewScope();
        var c = ModelConfig.Llama(11, 16, 24, 1, 2);
        var outside1 = Rotary.CachedTables(Positions(0, 1, 2), c, ScalarType.Float32);
        var outside2 = Rotary.CachedTables(Positions(0, 1, 2), c, ScalarType.Float32);
        Assert.NotSame(outside1.Cos, outside2.Cos);                                  // no scope: nothing is kept
        (Tensor Cos, Tensor Sin) kept;
        using (Transformer.KeepForwardInputs())
        {
            kept = Rotary.CachedTables(Positions(0, 1, 2), c, ScalarType.Float32);
            using (Transformer.KeepForwardInputs())
                Assert.Same(kept.Cos, Rotary.CachedTables(Positions(0, 1, 2), c, ScalarType.Float32).Cos);
            Assert.False(kept.Cos.IsDisposed, "an inner scope's end keeps the outer scope's entry");
            Assert.Same(kept.Cos, Rotary.CachedTables(Positions(0, 1, 2), c, ScalarType.Float32).Cos);
        }
        Assert.True(kept.Cos.IsDisposed && kept.Sin.IsDisposed, "the outermost scope's end frees the tables");
        var live = Torch.LiveTensors;
        var q = Torch.Zeros([1, 2, 3, 8]);
        using (Transformer.KeepForwardInputs()) new CausalAttention().Attend(0, q, q, q, 0.5).Dispose();
        Assert.Equal(live + 1, Torch.LiveTensors);                                  // q alone: the mask went with the scope
    }

    [Fact]
    public void Scaled_dot_product_is_bit_identical_to_the_out_of_place_formula()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(5);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
        {
            var q = Torch.Randn([2, 4, 6, 8], g, dtype);
            var k = Torch.Randn([2, 2, 6, 8], g, dtype);
            var v = Torch.Randn([2, 2, 6, 8], g, dtype);
            var allowed = Attention.CausalMask(6, Torch.From(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 2, 6));
            // softmax(masked_fill(q·kᵀ·s, ¬allowed, min)) · v, each op out of place, grouped heads repeated (HF repeat_kv).
            var kr = k.RepeatInterleave(2, 1);
            var vr = v.RepeatInterleave(2, 1);
            var min = dtype == ScalarType.Float64 ? double.MinValue : float.MinValue;
            var want = q.Matmul(kr.Transpose(-2, -1)).Mul(0.3).MaskedFill(allowed.LogicalNot(), min).Softmax(-1).Matmul(vr);
            Assert.True(Attention.ScaledDotProduct(q, k, v, allowed, 0.3).Equal(want), $"{dtype}");
        }
    }

    [Fact]
    public void Scaled_dot_product_gradients_survive_the_in_place_scaling_and_masking()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(6);
        var q = Torch.Randn([1, 2, 5, 4], g, ScalarType.Float64).RequiresGrad_();
        var k = Torch.Randn([1, 2, 5, 4], g, ScalarType.Float64).RequiresGrad_();
        var v = Torch.Randn([1, 2, 5, 4], g, ScalarType.Float64).RequiresGrad_();
        var allowed = Attention.CausalMask(5, null);
        Attention.ScaledDotProduct(q, k, v, allowed, 0.5).Square().Sum().Backward();
        var dq = q.Grad!.Clone();
        var q2 = q.Detach().RequiresGrad_();
        var k2 = k.Detach().RequiresGrad_();
        var v2 = v.Detach().RequiresGrad_();
        q2.Matmul(k2.Transpose(-2, -1)).Mul(0.5).MaskedFill(allowed.LogicalNot(), double.MinValue).Softmax(-1).Matmul(v2).Square().Sum().Backward();
        Assert.True(dq.AllClose(q2.Grad!, 1e-12, 1e-12));
        Assert.True(k.Grad!.AllClose(k2.Grad!, 1e-12, 1e-12));
        Assert.True(v.Grad!.AllClose(v2.Grad!, 1e-12, 1e-12));
    }

    /// <summary>Logits of <paramref name="ids"/> under <paramref name="mask"/> computed on a new thread, whose memos are empty.</summary>
    private static double[] OnFreshThread(ModelWeights w, long[] ids, long b, long t, long[]? mask)
    {
        double[] result = [];
        var thread = new Thread(() =>
        {
            using var scope = Torch.NewScope();
            var m = mask is null ? null : Torch.From(mask, b, t);
            result = Transformer.Forward(w, TinyModels.Ids(ids, b, t), attentionMask: m).ToArray<double>();
        });
        thread.Start();
        thread.Join();
        return result;
    }

    [Theory]
    [MemberData(nameof(TransformerTests.Variants), MemberType = typeof(TransformerTests))]
    public void Interleaved_forwards_over_other_lengths_and_padding_give_the_logits_of_a_fresh_start(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant);
        using var w = TinyModels.Weights(config, seed: 11);
        (long[] Ids, long B, long T, long[]? Mask)[] calls =
        [
            ([1, 2, 3, 4, 5, 6], 2, 3, null),
            ([1, 2, 3, 4, 5, 6, 7, 8], 2, 4, [0, 1, 1, 1, 1, 1, 1, 1]),
            ([1, 2, 3, 4, 5, 6, 7, 8], 2, 4, [1, 1, 1, 1, 0, 0, 1, 1]),   // same shape, other padding
            ([1, 2, 3, 4, 5, 6], 2, 3, null),                             // back to the first: a cache hit must still be right
            ([1, 2, 3, 4, 5, 6, 7, 8], 2, 4, null),
        ];
        foreach (var (ids, b, t, mask) in calls)
        {
            var m = mask is null ? null : Torch.From(mask, b, t);
            var got = Transformer.Forward(w, TinyModels.Ids(ids, b, t), attentionMask: m).ToArray<double>();
            Assert.Equal(OnFreshThread(w, ids, b, t, mask), got);
        }
    }
}
