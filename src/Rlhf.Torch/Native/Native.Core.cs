// Generated once from a compact signature list; edit by hand from now on.
using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;
using G = Rlhf.Torch.Native.GeneratorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's core area.</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_take_error();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_free_string(nint s);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_free_buffer(nint p);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_debug_throw(int kind);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_tensor_free(nint t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial long rt_live_handles();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial long rt_cpu_live_bytes();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial long rt_cpu_peak_bytes();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_cpu_reset_peak();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_ndim(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_shape(T t, long* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_strides(T t, long* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial long rt_tensor_numel(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_dtype(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_element_size(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_device_type(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_device_index(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_is_contiguous(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_requires_grad(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_is_leaf(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_has_grad_fn(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_tensor_grad_fn_name(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial long rt_tensor_storage_nbytes(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_tensor_data_ptr(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_tensor_to_string(T t);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_item_double(T t, double* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_item_long(T t, long* o);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_tensor_copy_to(T t, void* dst, long nbytes);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_get_num_threads();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_set_num_threads(int n);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_profile_begin(string tracePath);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_profile_end();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_get_num_interop_threads();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_version();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_show_config();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_parallel_info();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_cuda_is_available();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_cuda_device_count();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_has_gloo();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_has_nccl();
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_cuda_synchronize(int index);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_manual_seed(ulong seed);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_generator_new(ulong seed, int devType, int devIndex);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_generator_free(nint g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_generator_set_seed(G g, ulong seed);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial ulong rt_generator_seed(G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_generator_get_state(G g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_generator_set_state(G g, T state);
}
