// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's optim area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_adamw_step(nint* ps, nint* gs, nint* m, nint* v, int n, double lr, double beta1, double beta2, double eps, double weightDecay, long step);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_sum_squares(nint* ts, int n, double* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_scale_(nint* ts, int n, double factor);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_clip_grad_norm_(nint* ts, int n, double maxNorm, double* totalNorm);
}
