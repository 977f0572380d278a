// Creation: filled tensors, ranges, identity, *_like, host arrays, joining, where, fused matmul-adds.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class CreationTests
{
    [Fact]
    public void Zeros_ones_empty_full_have_the_requested_shape_dtype_and_values()
    {
        using var scope = Torch.NewScope();
        var z = Torch.Zeros([2, 3]);
        Assert.Equal(new long[] { 2, 3 }, z.Shape);
        Assert.Equal(ScalarType.Float32, z.Dtype);
        Assert.Equal(new float[6], z.ToArray<float>());

        var o = Torch.Ones([4], ScalarType.Int32);
        Assert.Equal(ScalarType.Int32, o.Dtype);
        Assert.Equal(new[] { 1, 1, 1, 1 }, o.ToArray<int>());

        var e = Torch.Empty([3, 0, 2], ScalarType.Float64);
        Assert.Equal(new long[] { 3, 0, 2 }, e.Shape);
        Assert.Equal(0, e.NumEl);

        var f = Torch.Full([2, 2], 2.5, ScalarType.Float64);
        Assert.Equal(new[] { 2.5, 2.5, 2.5, 2.5 }, f.ToArray<double>());
    }

    [Fact]
    public void Full_with_a_long_is_exact_beyond_double_precision()
    {
        using var scope = Torch.NewScope();
        const long big = (1L << 53) + 1; // not representable as a double
        var t = Torch.Full([2], big);
        Assert.Equal(ScalarType.Int64, t.Dtype);
        Assert.Equal(new[] { big, big }, t.ToArray<long>());
    }

    [Fact]
    public void Scalar_is_zero_dimensional()
    {
        using var scope = Torch.NewScope();
        var s = Torch.Scalar(-3.25, ScalarType.Float64);
        Assert.Equal(0, s.Dim);
        Assert.Empty(s.Shape);
        Assert.Equal(1, s.NumEl);
        Assert.Equal(-3.25, s.Item());
        Assert.Equal(-3.25, s.Item<double>());
    }

    [Fact]
    public void Arange_over_integers_and_doubles()
    {
        using var scope = Torch.NewScope();
        var a = Torch.Arange(5);
        Assert.Equal(ScalarType.Int64, a.Dtype);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, a.ToArray<long>());
        Assert.Equal(new long[] { 2, 5, 8 }, Torch.Arange(2, 10, 3).ToArray<long>());
        Assert.Equal(new long[] { 5, 3, 1 }, Torch.Arange(5, 0, -2).ToArray<long>());
        Assert.Equal(new[] { 0, 1, 2 }, Torch.Arange(3, ScalarType.Int32).ToArray<int>());
        var d = Torch.Arange(0.0, 1.0, 0.25, ScalarType.Float64);
        Assert.Equal(new[] { 0.0, 0.25, 0.5, 0.75 }, d.ToArray<double>());
    }

    [Fact]
    public void Linspace_includes_both_ends()
    {
        using var scope = Torch.NewScope();
        Assert.Equal(new[] { -1.0, -0.5, 0.0, 0.5, 1.0 }, Torch.Linspace(-1, 1, 5, ScalarType.Float64).ToArray<double>());
        Assert.Equal(new float[] { 2 }, Torch.Linspace(2, 7, 1).ToArray<float>());
    }

    [Fact]
    public void Eye_is_the_identity()
    {
        using var scope = Torch.NewScope();
        var i = Torch.Eye(3, ScalarType.Float64);
        Assert.Equal(new[] { 1.0, 0, 0, 0, 1, 0, 0, 0, 1 }, i.ToArray<double>());
        var m = T.D(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 3, 3);
        Assert.True(m.Matmul(i).Equal(m));
    }

    [Fact]
    public void Like_constructors_copy_shape_and_dtype()
    {
        using var scope = Torch.NewScope();
        var src = Torch.Full([2, 3], 7L, ScalarType.Int32);
        foreach (var t in new[] { Torch.ZerosLike(src), Torch.OnesLike(src), Torch.EmptyLike(src), Torch.FullLike(src, 4) })
        {
            Assert.Equal(src.Shape, t.Shape);
            Assert.Equal(ScalarType.Int32, t.Dtype);
        }
        Assert.Equal(new int[6], Torch.ZerosLike(src).ToArray<int>());
        Assert.Equal(new[] { 1, 1, 1, 1, 1, 1 }, Torch.OnesLike(src).ToArray<int>());
        Assert.Equal(new[] { 4, 4, 4, 4, 4, 4 }, Torch.FullLike(src, 4).ToArray<int>());
    }

    [Fact]
    public void From_copies_host_data_with_a_shape()
    {
        using var scope = Torch.NewScope();
        var data = new float[] { 1, 2, 3, 4, 5, 6 };
        var t = Torch.From(data, 2, 3);
        data[0] = 100; // a copy: later changes to the array do not reach the tensor
        Assert.Equal(new long[] { 2, 3 }, t.Shape);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, t.ToArray<float>());
        Assert.Equal(new long[] { 6 }, Torch.From(new float[] { 1, 2, 3, 4, 5, 6 }).Shape);
        Assert.Equal(6.0, t.Select(0, 1).Select(0, 2).Item());
    }

    [Fact]
    public void From_a_rectangular_array_is_row_major()
    {
        using var scope = Torch.NewScope();
        var t = Torch.From(new double[,] { { 1, 2, 3 }, { 4, 5, 6 } });
        Assert.Equal(new long[] { 2, 3 }, t.Shape);
        Assert.Equal(new double[] { 1, 2, 3, 4, 5, 6 }, t.ToArray<double>());
        Assert.Equal(4.0, t[1][0].Item());
    }

    [Fact]
    public void From_with_a_shape_that_does_not_fit_the_data_throws()
    {
        using var scope = Torch.NewScope();
        var e = Assert.Throws<TorchException>(() => Torch.From(new float[] { 1, 2, 3 }, 2, 2));
        Assert.Contains("from_data", e.Message);
    }

    [Fact]
    public void Cat_and_stack()
    {
        using var scope = Torch.NewScope();
        var a = T.D(new double[] { 1, 2, 3, 4 }, 2, 2);
        var b = T.D(new double[] { 5, 6 }, 1, 2);
        var c0 = Torch.Cat([a, b], 0);
        Assert.Equal(new long[] { 3, 2 }, c0.Shape);
        Assert.Equal(new double[] { 1, 2, 3, 4, 5, 6 }, c0.ToArray<double>());
        var c1 = Torch.Cat([a, a], 1);
        Assert.Equal(new double[] { 1, 2, 1, 2, 3, 4, 3, 4 }, c1.ToArray<double>());

        var s0 = Torch.Stack([T.D(1, 2), T.D(3, 4), T.D(5, 6)]);
        Assert.Equal(new long[] { 3, 2 }, s0.Shape);
        var s1 = Torch.Stack([T.D(1, 2), T.D(3, 4)], 1);
        Assert.Equal(new long[] { 2, 2 }, s1.Shape);
        Assert.Equal(new double[] { 1, 3, 2, 4 }, s1.ToArray<double>());
        Assert.Throws<TorchException>(() => Torch.Stack([T.D(1, 2), T.D(3)]));
    }

    [Fact]
    public void Where_picks_elementwise_and_broadcasts_a_scalar()
    {
        using var scope = Torch.NewScope();
        var cond = T.B(true, false, true, false);
        var a = T.D(1, 2, 3, 4);
        var b = T.D(-1, -2, -3, -4);
        Assert.Equal(new double[] { 1, -2, 3, -4 }, Torch.Where(cond, a, b).ToArray<double>());
        var w = Torch.Where(cond, a, 9.5);
        Assert.Equal(ScalarType.Float64, w.Dtype);
        Assert.Equal(new[] { 1, 9.5, 3, 9.5 }, w.ToArray<double>());
    }

    [Fact]
    public void Addmm_and_baddbmm_scale_both_terms()
    {
        using var scope = Torch.NewScope();
        var bias = T.D(new double[] { 1, 1, 1, 1 }, 2, 2);
        var a = T.D(new double[] { 1, 2, 3, 4 }, 2, 2);
        var b = T.D(new double[] { 1, 0, 0, 1 }, 2, 2);
        // 0.5·bias + 2·(a @ I)
        Assert.Equal(new[] { 2.5, 4.5, 6.5, 8.5 }, Torch.Addmm(bias, a, b, beta: 0.5, alpha: 2).ToArray<double>());
        var r = Torch.Baddbmm(bias.Unsqueeze(0), a.Unsqueeze(0), a.Unsqueeze(0));
        // a @ a = [[7, 10], [15, 22]], plus 1
        Assert.Equal(new long[] { 1, 2, 2 }, r.Shape);
        Assert.Equal(new double[] { 8, 11, 16, 23 }, r.ToArray<double>());
    }

    [Fact]
    public void Randperm_is_a_permutation()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(3);
        var p = Torch.Randperm(50, g).ToArray<long>();
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), p.Order());
        Assert.NotEqual(Enumerable.Range(0, 50).Select(i => (long)i), p); // 1/50! chance of a false failure
    }

    [Fact]
    public void Rand_randn_randint_have_the_right_range_and_moments()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(11);
        var u = Torch.Rand([20000], g, ScalarType.Float64);
        Assert.True(u.Ge(0).All().Item() == 1 && u.Lt(1).All().Item() == 1);
        Near.Equal(0.5, u.Mean().Item(), 0.01);
        var n = Torch.Randn([20000], g, ScalarType.Float64);
        Near.Equal(0.0, n.Mean().Item(), 0.03);
        Near.Equal(1.0, n.Std().Item(), 0.03);
        var k = Torch.Randint(-3, 4, [5000], g);
        Assert.Equal(ScalarType.Int64, k.Dtype);
        Assert.Equal(-3, k.Min().ItemLong());
        Assert.Equal(3, k.Max().ItemLong());
    }
}
