using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

public sealed partial class Tensor
{
    /// <summary>Sum of all elements (optionally accumulated in <paramref name="dtype"/>).</summary>
    public Tensor Sum(ScalarType? dtype = null) => Wrap(N.rt_sum_all(H, dtype.HasValue ? (int)dtype.Value : -1));
    /// <summary>Sum over one dimension.</summary>
    public Tensor Sum(long dim, bool keepDim = false, ScalarType? dtype = null) => Sum([dim], keepDim, dtype);
    /// <summary>Sum over one dimension. This overload exists so that <c>Sum(0)</c> means dimension 0: without it the
    /// literal 0 converts to <see cref="ScalarType"/> and C# picks <c>Sum(dtype: UInt8)</c>, a uint8 sum of everything.</summary>
    public Tensor Sum(int dim, bool keepDim = false, ScalarType? dtype = null) => Sum([(long)dim], keepDim, dtype);
    /// <summary>Sum over dimensions.</summary>
    public unsafe Tensor Sum(long[] dims, bool keepDim = false, ScalarType? dtype = null)
    {
        fixed (long* p = dims) return Wrap(N.rt_sum(H, p, dims.Length, keepDim ? 1 : 0, dtype.HasValue ? (int)dtype.Value : -1));
    }
    /// <summary>Mean of all elements.</summary>
    public Tensor Mean() => Wrap(N.rt_mean_all(H));
    /// <summary>Mean over one dimension.</summary>
    public Tensor Mean(long dim, bool keepDim = false) => Mean([dim], keepDim);
    /// <summary>Mean over dimensions.</summary>
    public unsafe Tensor Mean(long[] dims, bool keepDim = false) { fixed (long* p = dims) return Wrap(N.rt_mean(H, p, dims.Length, keepDim ? 1 : 0)); }
    /// <summary>Product of all elements.</summary>
    public Tensor Prod() => Wrap(N.rt_prod_all(H));
    /// <summary>Variance with a correction (1 = Bessel's) over dims (all when null).</summary>
    public unsafe Tensor Var(long[]? dims = null, long correction = 1, bool keepDim = false)
    {
        dims ??= [];
        fixed (long* p = dims) return Wrap(N.rt_var(H, p, dims.Length, correction, keepDim ? 1 : 0));
    }
    /// <summary>Standard deviation with a correction (1 = Bessel's) over dims (all when null).</summary>
    public unsafe Tensor Std(long[]? dims = null, long correction = 1, bool keepDim = false)
    {
        dims ??= [];
        fixed (long* p = dims) return Wrap(N.rt_std(H, p, dims.Length, correction, keepDim ? 1 : 0));
    }
    /// <summary>Largest element.</summary>
    public Tensor Max() => Wrap(N.rt_max_all(H));
    /// <summary>Smallest element.</summary>
    public Tensor Min() => Wrap(N.rt_min_all(H));
    /// <summary>Largest values and their indices along a dimension.</summary>
    public unsafe (Tensor Values, Tensor Indices) Max(long dim, bool keepDim = false)
    {
        nint v, i;
        Check(N.rt_max_dim(H, dim, keepDim ? 1 : 0, &v, &i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>Smallest values and their indices along a dimension.</summary>
    public unsafe (Tensor Values, Tensor Indices) Min(long dim, bool keepDim = false)
    {
        nint v, i;
        Check(N.rt_min_dim(H, dim, keepDim ? 1 : 0, &v, &i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>Index of the largest element along a dimension.</summary>
    public Tensor Argmax(long dim, bool keepDim = false) => Wrap(N.rt_argmax(H, dim, keepDim ? 1 : 0));
    /// <summary>Index of the smallest element along a dimension.</summary>
    public Tensor Argmin(long dim, bool keepDim = false) => Wrap(N.rt_argmin(H, dim, keepDim ? 1 : 0));
    /// <summary>The k largest (or smallest) values and indices along a dimension.</summary>
    public unsafe (Tensor Values, Tensor Indices) TopK(long k, long dim = -1, bool largest = true, bool sorted = true)
    {
        nint v, i;
        Check(N.rt_topk(H, k, dim, largest ? 1 : 0, sorted ? 1 : 0, &v, &i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>Sorted values and the permutation along a dimension.</summary>
    public unsafe (Tensor Values, Tensor Indices) Sort(long dim = -1, bool descending = false, bool stable = false)
    {
        nint v, i;
        Check(N.rt_sort(H, dim, descending ? 1 : 0, stable ? 1 : 0, &v, &i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>The permutation that sorts along a dimension.</summary>
    public Tensor Argsort(long dim = -1, bool descending = false) => Wrap(N.rt_argsort(H, dim, descending ? 1 : 0));
    /// <summary>True if any element is non-zero (a bool scalar tensor).</summary>
    public Tensor Any() => Wrap(N.rt_any_all(H));
    /// <summary>True if every element is non-zero (a bool scalar tensor).</summary>
    public Tensor All() => Wrap(N.rt_all_all(H));
    /// <summary>Any along a dimension.</summary>
    public Tensor Any(long dim, bool keepDim = false) => Wrap(N.rt_any(H, dim, keepDim ? 1 : 0));
    /// <summary>All along a dimension.</summary>
    public Tensor All(long dim, bool keepDim = false) => Wrap(N.rt_all(H, dim, keepDim ? 1 : 0));
    /// <summary>p-norm of all elements.</summary>
    public Tensor Norm(double p = 2) => Wrap(N.rt_norm_all(H, p));
    /// <summary>p-norm over dimensions.</summary>
    public unsafe Tensor Norm(double p, long[] dims, bool keepDim = false) { fixed (long* d = dims) return Wrap(N.rt_norm(H, p, d, dims.Length, keepDim ? 1 : 0)); }
    /// <summary>Count of non-zero elements.</summary>
    public Tensor CountNonzero() => Wrap(N.rt_count_nonzero_all(H));
    /// <summary>Count of non-zero elements along a dimension.</summary>
    public Tensor CountNonzero(long dim) => Wrap(N.rt_count_nonzero(H, dim));
    /// <summary>Running sum along a dimension.</summary>
    public Tensor Cumsum(long dim) => Wrap(N.rt_cumsum(H, dim));
    /// <summary>Running product along a dimension.</summary>
    public Tensor Cumprod(long dim) => Wrap(N.rt_cumprod(H, dim));
    /// <summary>log Σ exp along a dimension, computed stably.</summary>
    public Tensor LogSumExp(long dim, bool keepDim = false) => LogSumExp([dim], keepDim);
    /// <summary>log Σ exp over dimensions, computed stably.</summary>
    public unsafe Tensor LogSumExp(long[] dims, bool keepDim = false) { fixed (long* p = dims) return Wrap(N.rt_logsumexp(H, p, dims.Length, keepDim ? 1 : 0)); }
    /// <summary>Softmax along a dimension.</summary>
    public Tensor Softmax(long dim) => Wrap(N.rt_softmax(H, dim));
    /// <summary>Log-softmax along a dimension, computed stably.</summary>
    public Tensor LogSoftmax(long dim) => Wrap(N.rt_log_softmax(H, dim));
}
