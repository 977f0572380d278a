// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's shape area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_view(T t, long* shape, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_reshape(T t, long* shape, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_transpose(T t, long d0, long d1);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_permute(T t, long* dims, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_narrow(T t, long dim, long start, long length);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_slice(T t, long dim, long start, long end, long step);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_select(T t, long dim, long index);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_squeeze(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_squeeze_dim(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_unsqueeze(T t, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_flatten(T t, long start, long end);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_expand(T t, long* shape, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_repeat(T t, long* reps, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_repeat_interleave(T t, long repeats, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_repeat_interleave_t(T t, T repeats, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_flip(T t, long* dims, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_contiguous(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_tril(T t, long k);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_triu(T t, long k);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_roll(T t, long shift, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_index_select(T t, long dim, T idx);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_gather(T t, long dim, T idx);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_scatter(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_scatter_add(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_scatter_(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_scatter_add_(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_index_copy_(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_index_copy(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_index_fill_(T t, long dim, T idx, double v);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_index_add_(T t, long dim, T idx, T src);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_index(T t, nint* idx, int n);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_index_put_(T t, nint* idx, int n, T v, int accumulate);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_index_put(T t, nint* idx, int n, T v, int accumulate);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_masked_fill(T t, T mask, double v);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_masked_fill_(T t, T mask, double v);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_masked_select(T t, T mask);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_where(T cond, T a, T b);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_where_scalar(T cond, T a, double b);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_nonzero(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_cat(nint* ts, int n, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_stack(nint* ts, int n, long dim);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_split(T t, long size, long dim, nint* o, int cap, int* count);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_split_sizes(T t, long* sizes, int n, long dim, nint* o, int cap, int* count);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_chunk(T t, long chunks, long dim, nint* o, int cap, int* count);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_unbind(T t, long dim, nint* o, int cap, int* count);
}
