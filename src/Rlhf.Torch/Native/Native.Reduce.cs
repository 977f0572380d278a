// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's reduce area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_sum_all(T t, int dtype);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_sum(T t, long* dims, int n, int keepdim, int dtype);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_mean_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_mean(T t, long* dims, int n, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_prod_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_var(T t, long* dims, int n, long correction, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_std(T t, long* dims, int n, long correction, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_max_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_min_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_max_dim(T t, long dim, int keepdim, nint* values, nint* indices);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_min_dim(T t, long dim, int keepdim, nint* values, nint* indices);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_argmax(T t, long dim, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_argmin(T t, long dim, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_topk(T t, long k, long dim, int largest, int sorted, nint* values, nint* indices);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_sort(T t, long dim, int descending, int stable, nint* values, nint* indices);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_argsort(T t, long dim, int descending);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_any_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_all_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_any(T t, long dim, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_all(T t, long dim, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_norm_all(T t, double p);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_norm(T t, double p, long* dims, int n, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_count_nonzero_all(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_count_nonzero(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_cumsum(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_cumprod(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_logsumexp(T t, long* dims, int n, int keepdim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_softmax(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_log_softmax(T t, long dim);
}
