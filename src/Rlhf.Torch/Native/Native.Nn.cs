// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's nn area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_embedding(T weight, T ids);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_layer_norm(T x, long* shape, int n, T w, T b, double eps);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_cross_entropy(T logits, T target, long ignoreIndex, int reduction, double labelSmoothing);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_nll_loss(T logp, T target, long ignoreIndex, int reduction);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_mse_loss(T a, T b, int reduction);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_multinomial(T probs, long n, int replacement, G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_dropout(T x, double p, int train, G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_one_hot(T ids, long classes);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_paged_decode_attention(T q, T kRows, T vRows, T rows, T blocked, double scale);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_causal_attention(T q, T k, T v, T keyAllowed, double scale);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_rms_norm(T x, T weight, double eps);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_rotary(T x, T cos, T sin);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_silu_mul(T gate, T up);
}
