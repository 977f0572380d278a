// Shapes and indexing: views, slicing, joins and splits, gather/scatter, advanced indexing, masks.
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class ShapeTests
{
    /// <summary>[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]] as float64.</summary>
    private static Tensor M34() => Torch.Arange(12).Double().View(3, 4);

    [Fact]
    public void View_and_reshape_keep_row_major_order()
    {
        using var scope = Torch.NewScope();
        var m = M34();
        var v = m.View(4, -1);
        Assert.Equal(new long[] { 4, 3 }, v.Shape);
        Assert.Equal(m.ToArray<double>(), v.ToArray<double>());
        v.Fill_(1); // a view shares storage
        Assert.Equal(12.0, m.Sum().Item());
        var t = M34().T;
        Assert.Throws<TorchException>(() => t.View(12)); // non-contiguous: view is impossible
        Assert.Equal(new double[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, t.Reshape(12).ToArray<double>());
        Assert.Equal(new long[] { 2, 2, 3 }, M34().Reshape(2, -1, 3).Shape);
    }

    [Fact]
    public void Size_numel_dim_and_print()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([2, 3, 5]);
        Assert.Equal(3, x.Dim);
        Assert.Equal(30, x.NumEl);
        Assert.Equal(3, x.Size(1));
        Assert.Equal(5, x.Size(-1));
        Assert.Equal(2, x.Size(-3));
        Assert.Throws<ArgumentOutOfRangeException>(() => x.Size(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => x.Size(-4));
        Assert.Equal("Tensor[2, 3, 5] Float32 cpu", x.ToString());
        var p = T.D(1.5, -2).Print();
        Assert.Contains("1.5000", p);
        Assert.Contains("-2.0000", p);
    }

    [Fact]
    public void Transpose_permute_strides_and_contiguity()
    {
        using var scope = Torch.NewScope();
        var m = M34();
        Assert.Equal(new long[] { 4, 1 }, m.Strides);
        Assert.True(m.IsContiguous);
        var t = m.Transpose(0, 1);
        Assert.Equal(new long[] { 4, 3 }, t.Shape);
        Assert.Equal(new long[] { 1, 4 }, t.Strides);
        Assert.False(t.IsContiguous);
        Assert.Equal(new double[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, t.ToArray<double>());
        var c = t.Contiguous();
        Assert.True(c.IsContiguous);
        Assert.Equal(new long[] { 3, 1 }, c.Strides);

        var x = Torch.Arange(24).View(2, 3, 4);
        var p = x.Permute(2, 0, 1);
        Assert.Equal(new long[] { 4, 2, 3 }, p.Shape);
        // p[k, i, j] = x[i, j, k] = 12i + 4j + k
        Assert.Equal(12 * 1 + 4 * 2 + 3, p[3][1][2].ItemLong());
    }

    [Fact]
    public void Narrow_slice_select_and_indexer()
    {
        using var scope = Torch.NewScope();
        var m = M34();
        Assert.Equal(new double[] { 1, 2, 5, 6, 9, 10 }, m.Narrow(1, 1, 2).ToArray<double>());
        Assert.Equal(new double[] { 4, 5, 6, 7, 8, 9, 10, 11 }, m.Slice(0, 1, long.MaxValue).ToArray<double>());
        Assert.Equal(new double[] { 0, 2, 4, 6, 8, 10 }, m.Slice(1, 0, long.MaxValue, 2).ToArray<double>());
        Assert.Equal(new double[] { 2, 6, 10 }, m.Slice(1, -2, -1).ToArray<double>()); // python m[:, -2:-1]
        Assert.Equal(new double[] { 3, 7, 11 }, m.Slice(1, -1, long.MaxValue).ToArray<double>());
        Assert.Equal(new double[] { 1, 5, 9 }, m.Select(1, 1).ToArray<double>());
        Assert.Equal(new double[] { 8, 9, 10, 11 }, m[2].ToArray<double>());
        Assert.Equal(new double[] { 8, 9, 10, 11 }, m.Select(0, -1).ToArray<double>());
        Assert.Throws<TorchException>(() => m[3]);
        m.Narrow(0, 0, 1).Zero_(); // narrow is a view
        Assert.Equal(0.0, m[0].Abs().Sum().Item());
    }

    [Fact]
    public void Squeeze_unsqueeze_flatten()
    {
        using var scope = Torch.NewScope();
        var x = Torch.Zeros([1, 3, 1, 2]);
        Assert.Equal(new long[] { 3, 2 }, x.Squeeze().Shape);
        Assert.Equal(new long[] { 1, 3, 2 }, x.Squeeze(2).Shape);
        Assert.Equal(new long[] { 1, 3, 1, 2 }, x.Squeeze(1).Shape); // size 3: unchanged
        Assert.Equal(new long[] { 1, 3, 1, 2, 1 }, x.Unsqueeze(-1).Shape);
        Assert.Equal(new long[] { 3, 1 }, Torch.Zeros([3]).Unsqueeze(1).Shape);
        Assert.Equal(new long[] { 6 }, x.Flatten().Shape);
        Assert.Equal(new long[] { 1, 3, 2 }, x.Flatten(1, 2).Shape);
    }

    [Fact]
    public void Expand_broadcasts_without_copying()
    {
        using var scope = Torch.NewScope();
        var col = T.D(new double[] { 1, 2, 3 }, 3, 1);
        var e = col.Expand(3, 4);
        Assert.Equal(new long[] { 3, 4 }, e.Shape);
        Assert.Equal(new long[] { 1, 0 }, e.Strides);
        Assert.Equal(new double[] { 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 }, e.ToArray<double>());
        Assert.Equal(new long[] { 2, 3, 5 }, col.Expand(2, -1, 5).Shape);
        Assert.Throws<TorchException>(() => col.Expand(4, 4));
    }

    [Fact]
    public void Repeat_repeat_interleave_flip_roll()
    {
        using var scope = Torch.NewScope();
        var v = T.D(1, 2, 3);
        Assert.Equal(new double[] { 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3 }, v.Repeat(2, 2).ToArray<double>());
        Assert.Equal(new long[] { 2, 6 }, v.Repeat(2, 2).Shape);
        Assert.Equal(new double[] { 1, 1, 2, 2, 3, 3 }, v.RepeatInterleave(2, 0).ToArray<double>());
        Assert.Equal(new double[] { 1, 3, 3, 3 }, v.RepeatInterleave(T.L(1, 0, 3), 0).ToArray<double>());
        Assert.Equal(new double[] { 3, 2, 1 }, v.Flip(0).ToArray<double>());
        Assert.Equal(new double[] { 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3 }, M34().Flip(0).ToArray<double>());
        Assert.Equal(new double[] { 3, 1, 2 }, v.Roll(1, 0).ToArray<double>());
        Assert.Equal(new double[] { 2, 3, 1 }, v.Roll(-1, 0).ToArray<double>());
    }

    [Fact]
    public void Tril_and_triu_with_offsets()
    {
        using var scope = Torch.NewScope();
        var ones = Torch.Ones([3, 3], ScalarType.Float64);
        Assert.Equal(new double[] { 1, 0, 0, 1, 1, 0, 1, 1, 1 }, ones.Tril().ToArray<double>());
        Assert.Equal(new double[] { 0, 0, 0, 1, 0, 0, 1, 1, 0 }, ones.Tril(-1).ToArray<double>());
        Assert.Equal(new double[] { 1, 1, 1, 0, 1, 1, 0, 0, 1 }, ones.Triu().ToArray<double>());
        Assert.Equal(new double[] { 0, 1, 1, 0, 0, 1, 0, 0, 0 }, ones.Triu(1).ToArray<double>());
    }

    [Fact]
    public void Index_select_and_gather()
    {
        using var scope = Torch.NewScope();
        var m = M34();
        Assert.Equal(new double[] { 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11 }, m.IndexSelect(0, T.L(2, 0, 2)).ToArray<double>());
        Assert.Equal(new double[] { 3, 0, 7, 4, 11, 8 }, m.IndexSelect(1, T.L(3, 0)).ToArray<double>());
        // out[i][j] = m[i][idx[i][j]]
        var idx = T.L(new long[] { 0, 3, 2, 2, 1, 0 }, 3, 2);
        Assert.Equal(new double[] { 0, 3, 6, 6, 9, 8 }, m.Gather(1, idx).ToArray<double>());
        Assert.Throws<TorchException>(() => m.Gather(1, T.L(new long[] { 4, 0, 0, 0, 0, 0 }, 3, 2)));
    }

    [Fact]
    public void Scatter_and_scatter_add_out_of_place_and_in_place()
    {
        using var scope = Torch.NewScope();
        var z = Torch.Zeros([2, 4], ScalarType.Float64);
        var idx = T.L(new long[] { 1, 3, 0, 0 }, 2, 2);
        var src = T.D(new double[] { 10, 20, 30, 40 }, 2, 2);
        Assert.Equal(new double[] { 0, 10, 0, 20, 30, 0, 40, 0 }, z.Scatter(1, T.L(new long[] { 1, 3, 0, 2 }, 2, 2), src).ToArray<double>());
        Assert.Equal(new double[] { 0, 10, 0, 20, 70, 0, 0, 0 }, z.ScatterAdd(1, idx, src).ToArray<double>()); // duplicates add up
        Assert.Equal(0.0, z.Abs().Sum().Item()); // out of place left z alone
        z.ScatterAdd_(1, idx, src);
        z.ScatterAdd_(1, idx, src);
        Assert.Equal(new double[] { 0, 20, 0, 40, 140, 0, 0, 0 }, z.ToArray<double>());
        var w = Torch.Zeros([1, 3], ScalarType.Float64).Scatter_(1, T.L(new long[] { 2 }, 1, 1), T.D(new double[] { 5 }, 1, 1));
        Assert.Equal(new double[] { 0, 0, 5 }, w.ToArray<double>());
    }

    [Fact]
    public void Index_copy_fill_add()
    {
        using var scope = Torch.NewScope();
        var cache = Torch.Zeros([4, 2], ScalarType.Float64);
        var rows = T.D(new double[] { 1, 2, 3, 4 }, 2, 2);
        var copied = cache.IndexCopy(0, T.L(3, 1), rows);
        Assert.Equal(new double[] { 0, 0, 3, 4, 0, 0, 1, 2 }, copied.ToArray<double>());
        Assert.Equal(0.0, cache.Abs().Sum().Item());
        cache.IndexCopy_(0, T.L(0, 2), rows);
        Assert.Equal(new double[] { 1, 2, 0, 0, 3, 4, 0, 0 }, cache.ToArray<double>());
        cache.IndexFill_(1, T.L(1), -1);
        Assert.Equal(new double[] { 1, -1, 0, -1, 3, -1, 0, -1 }, cache.ToArray<double>());
        cache.IndexAdd_(0, T.L(0, 0), rows);
        Assert.Equal(new double[] { 5, 5, 0, -1, 3, -1, 0, -1 }, cache.ToArray<double>());
    }

    [Fact]
    public void Advanced_index_and_index_put()
    {
        using var scope = Torch.NewScope();
        var m = M34();
        Assert.Equal(new double[] { 1, 11 }, m.Index(T.L(0, 2), T.L(1, 3)).ToArray<double>());
        var rows = m.Index(T.L(2, 0));
        Assert.Equal(new long[] { 2, 4 }, rows.Shape);
        Assert.Equal(new double[] { 8, 9, 10, 11, 0, 1, 2, 3 }, rows.ToArray<double>());
        var cols = m.Index(null, T.L(0, 0));
        Assert.Equal(new double[] { 0, 0, 4, 4, 8, 8 }, cols.ToArray<double>());

        var z = Torch.Zeros([3], ScalarType.Float64);
        var put = z.IndexPut([T.L(0, 2, 0)], T.D(1, 2, 3), accumulate: true);
        Assert.Equal(new double[] { 4, 0, 2 }, put.ToArray<double>());
        Assert.Equal(new double[] { 0, 0, 0 }, z.ToArray<double>());
        z.IndexPut_([T.L(1)], T.D(7));
        z.IndexPut_([T.L(1)], T.D(1), accumulate: true);
        Assert.Equal(new double[] { 0, 8, 0 }, z.ToArray<double>());
    }

    [Fact]
    public void Masked_fill_select_and_nonzero()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, -2, 3, -4);
        var neg = x.Lt(0);
        Assert.Equal(new double[] { 1, double.NegativeInfinity, 3, double.NegativeInfinity }, x.MaskedFill(neg, double.NegativeInfinity).ToArray<double>());
        Assert.Equal(new double[] { -2, -4 }, x.MaskedSelect(neg).ToArray<double>());
        // a [1, 4] mask broadcasts over rows
        var m = Torch.Zeros([2, 4], ScalarType.Float64).MaskedFill(neg.Unsqueeze(0), 5);
        Assert.Equal(new double[] { 0, 5, 0, 5, 0, 5, 0, 5 }, m.ToArray<double>());
        x.MaskedFill_(neg, 0);
        Assert.Equal(new double[] { 1, 0, 3, 0 }, x.ToArray<double>());
        var nz = T.D(new double[] { 0, 1, 2, 0 }, 2, 2).Nonzero();
        Assert.Equal(new long[] { 2, 2 }, nz.Shape);
        Assert.Equal(new long[] { 0, 1, 1, 0 }, nz.ToArray<long>());
    }

    [Fact]
    public void Split_chunk_unbind()
    {
        using var scope = Torch.NewScope();
        var v = Torch.Arange(7);
        var parts = v.Split(3);
        Assert.Equal(3, parts.Length);
        Assert.Equal(new long[] { 6 }, parts[2].ToArray<long>());
        var sized = v.Split([2, 5]);
        Assert.Equal(new long[] { 0, 1 }, sized[0].ToArray<long>());
        Assert.Equal(new long[] { 2, 3, 4, 5, 6 }, sized[1].ToArray<long>());
        Assert.Throws<TorchException>(() => v.Split([2, 2]));
        var chunks = v.Chunk(3);
        Assert.Equal(new[] { 3L, 3, 1 }, chunks.Select(c => c.NumEl));
        Assert.Equal(2, Torch.Arange(2).Chunk(5).Length); // fewer pieces than asked when too short
        var rows = M34().Unbind(0);
        Assert.Equal(3, rows.Length);
        Assert.Equal(new double[] { 4, 5, 6, 7 }, rows[1].ToArray<double>());
        var cols = M34().Split(2, 1);
        Assert.Equal(new long[] { 3, 2 }, cols[1].Shape);
        Assert.Equal(new double[] { 2, 3, 6, 7, 10, 11 }, cols[1].ToArray<double>());
    }

    [Fact]
    public void Cat_then_split_gives_back_the_parts() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(from a in Gen.Choose(0, 4) from b in Gen.Choose(1, 4) from c in Gen.Choose(1, 4) from dim in Gen.Choose(0, 1) select (a, b, c, dim)), t =>
        {
            var (a, b, c, dim) = t;
            using var scope = Torch.NewScope();
            long[] Shape(long n) => dim == 0 ? [n, c] : [c, n];
            var x = Torch.Arange(a * c).Double().View(Shape(a));
            var y = (Torch.Arange(b * c).Double() + 100).View(Shape(b));
            var joined = Torch.Cat([x, y], dim);
            Assert.Equal(Shape(a + b), joined.Shape);
            var parts = joined.Split([a, b], dim);
            Assert.True(parts[0].Equal(x));
            Assert.True(parts[1].Equal(y));
        }));

    [Fact]
    public void A_permutation_and_its_inverse_cancel() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(1, 4).ArrayOf(3)), Arb.From(Gen.Shuffle(new long[] { 0, 1, 2 })), (sizes, perm) =>
        {
            using var scope = Torch.NewScope();
            var shape = sizes.Select(s => (long)s).ToArray();
            var x = Torch.Arange(shape.Aggregate(1L, (p, s) => p * s)).View(shape);
            var inverse = new long[3];
            for (var i = 0; i < 3; i++) inverse[perm[i]] = i;
            var p = x.Permute(perm);
            Assert.Equal(perm.Select(d => shape[d]), p.Shape);
            Assert.True(p.Permute(inverse).Equal(x));
            // element (i, j, k) of the permuted tensor is x at the un-permuted index
            var idx = p.Shape.Select(s => s - 1).ToArray();
            var orig = new long[3];
            for (var i = 0; i < 3; i++) orig[perm[i]] = idx[i];
            Assert.Equal(x[orig[0]][orig[1]][orig[2]].ItemLong(), p[idx[0]][idx[1]][idx[2]].ItemLong());
        }));
}
