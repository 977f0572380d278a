// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's autograd area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_requires_grad_(T t, int on);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_backward(T t, T grad, int retainGraph, int createGraph);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_grad(T t, nint* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_set_grad(T t, T g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_zero_grad(T t, int setToNone);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_retain_grad(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_is_grad_enabled();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_set_grad_enabled(int on);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_autograd_grad(nint* outputs, int nOut, nint* inputs, int nIn, nint* gradOutputs, int retainGraph, int createGraph, int allowUnused, nint* o);
}
