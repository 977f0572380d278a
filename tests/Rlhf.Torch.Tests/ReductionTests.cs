// Reductions, sorting and cumulative ops — against hand values.
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class ReductionTests
{
    /// <summary>[[1, 5, 3], [4, 2, 6]] as float64.</summary>
    private static Tensor M() => T.D(new double[] { 1, 5, 3, 4, 2, 6 }, 2, 3);

    [Fact]
    public void Sum_over_all_one_and_several_dims()
    {
        using var scope = Torch.NewScope();
        var m = M();
        Assert.Equal(21.0, m.Sum().Item());
        Assert.Equal(0, m.Sum().Dim);
        Assert.Equal(new double[] { 5, 7, 9 }, m.Sum(0).ToArray<double>());
        Assert.Equal(new double[] { 9, 12 }, m.Sum(1).ToArray<double>());
        Assert.Equal(new double[] { 9, 12 }, m.Sum(-1).ToArray<double>());
        Assert.Equal(new double[] { 5, 7, 9 }, m.Sum(0L).ToArray<double>());
        Assert.Equal(new long[] { 2, 1 }, m.Sum(1, keepDim: true).Shape);
        Assert.Equal(21.0, m.Sum([0, 1]).Item());
        Assert.Equal(new long[] { 1, 1 }, m.Sum([0, 1], keepDim: true).Shape);
    }

    [Fact]
    public void Sum_of_dimension_zero_is_not_taken_for_a_dtype()
    {
        // Regression: Sum(0) bound to Sum(ScalarType? dtype) with dtype UInt8 (the literal 0 converts to any enum).
        using var scope = Torch.NewScope();
        var s = Torch.Full([2, 200], 1.0, ScalarType.Float64).Sum(0);
        Assert.Equal(ScalarType.Float64, s.Dtype);
        Assert.Equal(new long[] { 200 }, s.Shape);
        Assert.All(s.ToArray<double>(), v => Assert.Equal(2.0, v));
    }

    [Fact]
    public void Sum_accumulates_in_the_requested_dtype()
    {
        using var scope = Torch.NewScope();
        var bytes = Torch.Full([300], 1L, ScalarType.UInt8);
        var s = bytes.Sum(ScalarType.Int64);
        Assert.Equal(ScalarType.Int64, s.Dtype);
        Assert.Equal(300L, s.ItemLong());
        var half = Torch.Full([4], 0.5, ScalarType.Float16).Sum(0, dtype: ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, half.Dtype);
        Assert.Equal(2.0, half.Item());
        Assert.Equal(ScalarType.Int64, Torch.Ones([3], ScalarType.Bool).Sum().Dtype); // torch promotes bool/int sums to int64
    }

    [Fact]
    public void Mean_prod()
    {
        using var scope = Torch.NewScope();
        var m = M();
        Assert.Equal(3.5, m.Mean().Item());
        Assert.Equal(new double[] { 2.5, 3.5, 4.5 }, m.Mean(0).ToArray<double>());
        Assert.Equal(new double[] { 3, 4 }, m.Mean(1).ToArray<double>());
        Assert.Equal(new long[] { 1, 3 }, m.Mean(0, keepDim: true).Shape);
        Assert.Equal(3.5, m.Mean([0, 1]).Item());
        Assert.Equal(720.0, m.Prod().Item());
        Assert.Throws<TorchException>(() => Torch.Arange(3).Mean()); // mean of an integer tensor
    }

    [Fact]
    public void Var_and_std_with_corrections()
    {
        using var scope = Torch.NewScope();
        var x = T.D(2, 4, 4, 4, 5, 5, 7, 9); // mean 5, Σ(x−5)² = 32
        Assert.Equal(4.0, x.Var(correction: 0).Item());
        Assert.Equal(32.0 / 7, x.Var().Item(), 12);
        Assert.Equal(2.0, x.Std(correction: 0).Item());
        Assert.Equal(Math.Sqrt(32.0 / 7), x.Std().Item(), 12);
        var m = M();
        Assert.Equal(new double[] { 4.5, 4.5, 4.5 }, m.Var([0]).ToArray<double>());
        Near.Equal(new[] { 8.0 / 3, 8.0 / 3 }, m.Var([1], correction: 0), 1e-12);
        Assert.Equal(new long[] { 2, 1 }, m.Std([1], keepDim: true).Shape);
    }

    [Fact]
    public void Max_min_arg_and_with_indices()
    {
        using var scope = Torch.NewScope();
        var m = M();
        Assert.Equal(6.0, m.Max().Item());
        Assert.Equal(1.0, m.Min().Item());
        var (v, i) = m.Max(1);
        Assert.Equal(new double[] { 5, 6 }, v.ToArray<double>());
        Assert.Equal(new long[] { 1, 2 }, i.ToArray<long>());
        var (v0, i0) = m.Min(0, keepDim: true);
        Assert.Equal(new long[] { 1, 3 }, v0.Shape);
        Assert.Equal(new double[] { 1, 2, 3 }, v0.ToArray<double>());
        Assert.Equal(new long[] { 0, 1, 0 }, i0.ToArray<long>());
        Assert.Equal(new long[] { 1, 0, 1 }, m.Argmax(0).ToArray<long>());
        Assert.Equal(new long[] { 0, 1 }, m.Argmin(1).ToArray<long>());
        Assert.Equal(new long[] { 2, 1 }, m.Argmax(1, keepDim: true).Shape);
    }

    [Fact]
    public void Topk_sort_argsort()
    {
        using var scope = Torch.NewScope();
        var x = T.D(3, 1, 4, 1, 5, 9, 2, 6);
        var (tv, ti) = x.TopK(3);
        Assert.Equal(new double[] { 9, 6, 5 }, tv.ToArray<double>());
        Assert.Equal(new long[] { 5, 7, 4 }, ti.ToArray<long>());
        var (bv, _) = x.TopK(2, largest: false);
        Assert.Equal(new double[] { 1, 1 }, bv.ToArray<double>());
        var (sv, si) = x.Sort(stable: true);
        Assert.Equal(new double[] { 1, 1, 2, 3, 4, 5, 6, 9 }, sv.ToArray<double>());
        Assert.Equal(new long[] { 1, 3, 6, 0, 2, 4, 7, 5 }, si.ToArray<long>()); // stable: the two 1s keep their order
        var (dv, _) = x.Sort(descending: true);
        Assert.Equal(new double[] { 9, 6, 5, 4, 3, 2, 1, 1 }, dv.ToArray<double>());
        Assert.Equal(new long[] { 5, 7, 4, 2, 0, 6 }, x.Argsort(descending: true).ToArray<long>().Take(6));
        var rows = M().Sort(dim: 1).Values;
        Assert.Equal(new double[] { 1, 3, 5, 2, 4, 6 }, rows.ToArray<double>());
    }

    [Fact]
    public void Any_all_count_nonzero()
    {
        using var scope = Torch.NewScope();
        var b = T.B(new[] { true, false, false, true, true, true }).View(2, 3);
        Assert.True(b.Any().ToArray<bool>()[0]);
        Assert.False(b.All().ToArray<bool>()[0]);
        Assert.Equal(new[] { true, true, true }, b.Any(0).ToArray<bool>());
        Assert.Equal(new[] { false, true }, b.All(1).ToArray<bool>());
        Assert.Equal(new long[] { 2, 1 }, b.All(1, keepDim: true).Shape);
        var x = T.D(new double[] { 0, 1, 2, 0, 0, 3 }, 2, 3);
        Assert.Equal(3L, x.CountNonzero().ItemLong());
        Assert.Equal(new long[] { 0, 1, 2 }, x.CountNonzero(0).ToArray<long>());
        Assert.Equal(new long[] { 2, 1 }, x.CountNonzero(1).ToArray<long>());
    }

    [Fact]
    public void Norms()
    {
        using var scope = Torch.NewScope();
        var x = T.D(new double[] { 3, -4, 0, 12 }, 2, 2);
        Assert.Equal(13.0, x.Norm().Item(), 12);
        Assert.Equal(19.0, x.Norm(1).Item(), 12);
        Assert.Equal(12.0, x.Norm(double.PositiveInfinity).Item());
        Near.Equal(new[] { 5.0, 12 }, x.Norm(2, [1]), 1e-12);
        Assert.Equal(new long[] { 1, 2 }, x.Norm(1, [0], keepDim: true).Shape);
        Near.Equal(new[] { 3.0, 16 }, x.Norm(1, [0]), 1e-12);
    }

    [Fact]
    public void Cumulative_sum_and_product()
    {
        using var scope = Torch.NewScope();
        var m = M();
        Assert.Equal(new double[] { 1, 6, 9, 4, 6, 12 }, m.Cumsum(1).ToArray<double>());
        Assert.Equal(new double[] { 1, 5, 3, 5, 7, 9 }, m.Cumsum(0).ToArray<double>());
        Assert.Equal(new double[] { 1, 5, 15, 4, 8, 48 }, m.Cumprod(1).ToArray<double>());
    }

    [Fact]
    public void Logsumexp_softmax_log_softmax()
    {
        using var scope = Torch.NewScope();
        double[] row = [1, 2, 3];
        var lse = Math.Log(row.Sum(Math.Exp));
        var x = T.D(new double[] { 1, 2, 3, 1001, 1002, 1003 }, 2, 3); // the second row would overflow naively
        Near.Equal(new[] { lse, 1000 + lse }, x.LogSumExp(1), 1e-9);
        Assert.Equal(new long[] { 2, 1 }, x.LogSumExp(1, keepDim: true).Shape);
        Near.Equal(lse, T.D(1, 2, 3).LogSumExp([0]).Item(), 1e-12);
        var sm = row.Select(v => Math.Exp(v - lse)).ToArray();
        Near.Equal(sm.Concat(sm).ToArray(), x.Softmax(1), 1e-12);
        Near.Equal(row.Select(v => v - lse).Concat(row.Select(v => v - lse)).ToArray(), x.LogSoftmax(-1), 1e-9);
        Near.Equal(new[] { 1.0, 1.0 }, x.Softmax(1).Sum(1), 1e-12);
        Near.Equal(new[] { 0.5, 0.5 }, T.D(new double[] { 7, 7 }, 2, 1).Softmax(0).Flatten(), 1e-12);
    }

    [Fact]
    public void Sum_mean_max_over_a_dim_match_a_loop() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(from r in Gen.Choose(1, 5) from c in Gen.Choose(1, 5) from d in Gen.Choose(0, 1) select (r, c, d)),
            Arb.From(Gen.Choose(-9, 9).ArrayOf(25)), (shape, pool) =>
        {
            var (rows, cols, dim) = shape;
            using var scope = Torch.NewScope();
            var v = new double[rows * cols];
            for (var i = 0; i < v.Length; i++) v[i] = pool[i] * 0.5;
            var x = T.D(v, rows, cols);
            var n = dim == 0 ? cols : rows;
            var len = dim == 0 ? rows : cols;
            double At(int outer, int inner) => dim == 0 ? v[inner * cols + outer] : v[outer * cols + inner];
            var sums = Enumerable.Range(0, n).Select(o => Enumerable.Range(0, len).Sum(k => At(o, k))).ToArray();
            var maxes = Enumerable.Range(0, n).Select(o => Enumerable.Range(0, len).Max(k => At(o, k))).ToArray();
            Near.Equal(sums, x.Sum(dim), 1e-12);
            Near.Equal(sums.Select(s => s / len).ToArray(), x.Mean(dim), 1e-12);
            Near.Equal(maxes, x.Max(dim).Values, 0);
            Near.Equal(v.Sum(), x.Sum().Item(), 1e-12);
        }));
}
