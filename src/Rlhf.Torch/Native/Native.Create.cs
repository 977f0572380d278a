// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's create area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_empty(long* shape, int ndim, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_zeros(long* shape, int ndim, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_ones(long* shape, int ndim, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_full(long* shape, int ndim, double value, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_full_long(long* shape, int ndim, long value, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_arange(double start, double end, double step, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_linspace(double start, double end, long steps, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_eye(long n, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_zeros_like(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_ones_like(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_empty_like(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_full_like(T t, double v);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_randn(long* shape, int ndim, G g, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_rand(long* shape, int ndim, G g, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_randint(long low, long high, long* shape, int ndim, G g, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_randperm(long n, G g, int dtype, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_normal_(T t, double mean, double std, G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_uniform_(T t, double from, double to, G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_bernoulli_(T t, double p, G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_from_data(void* data, long nbytes, long* shape, int ndim, int dtype, int devType, int devIndex);
}
