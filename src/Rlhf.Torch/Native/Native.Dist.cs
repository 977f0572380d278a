using System.Runtime.InteropServices;
using T = Rlhf.Torch.Native.TensorHandle;

namespace Rlhf.Torch.Native;

/// <summary>P/Invoke declarations of the shim's dist area (c10d stores, process groups, works, shard files).</summary>
internal static unsafe partial class Native
{
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint rt_store_tcp_new(string host, int port, int isServer, int numWorkers, long timeoutMs);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint rt_store_prefix_new(string prefix, StoreHandle inner);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_store_free(nint s);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_store_set(StoreHandle s, string key, byte* value, long len);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_store_get(StoreHandle s, string key, nint* value, long* len);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_store_add(StoreHandle s, string key, long delta, long* value);

    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint rt_pg_gloo_new(StoreHandle store, int rank, int size, string host, long timeoutMs);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_nccl_new(StoreHandle store, int rank, int size, long timeoutMs);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_pg_free(nint g);

    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_allreduce(ProcessGroupHandle g, T t, int op);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_broadcast(ProcessGroupHandle g, T t, int root);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_reduce(ProcessGroupHandle g, T t, int root, int op);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_allgather(ProcessGroupHandle g, T input, T output);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_reduce_scatter(ProcessGroupHandle g, T input, T output, int op);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_barrier(ProcessGroupHandle g);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_send(ProcessGroupHandle g, T t, int dst, int tag);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial nint rt_pg_recv(ProcessGroupHandle g, T t, int src, int tag);

    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_work_wait(WorkHandle w);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial int rt_work_is_completed(WorkHandle w);
    [LibraryImport(NativeLoader.LibraryName)] internal static partial void rt_work_free(nint w);

    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_tensors_save(string path, nint* names, nint* ts, int n);
    [LibraryImport(NativeLoader.LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int rt_tensors_load(string path, nint* names, nint* ts);
}

/// <summary>Owns one native c10d store (TCPStore or PrefixStore).</summary>
internal sealed class StoreHandle : SafeHandle
{
    public StoreHandle() : base(IntPtr.Zero, ownsHandle: true) { }
    internal StoreHandle(IntPtr h) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(h);
    public override bool IsInvalid => handle == IntPtr.Zero;
    protected override bool ReleaseHandle() { Native.rt_store_free(handle); return true; }
}

/// <summary>Owns one native process group.</summary>
internal sealed class ProcessGroupHandle : SafeHandle
{
    public ProcessGroupHandle() : base(IntPtr.Zero, ownsHandle: true) { }
    internal ProcessGroupHandle(IntPtr h) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(h);
    public override bool IsInvalid => handle == IntPtr.Zero;
    protected override bool ReleaseHandle() { Native.rt_pg_free(handle); return true; }
}

/// <summary>Owns one in-flight collective.</summary>
internal sealed class WorkHandle : SafeHandle
{
    public WorkHandle() : base(IntPtr.Zero, ownsHandle: true) { }
    internal WorkHandle(IntPtr h) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(h);
    public override bool IsInvalid => handle == IntPtr.Zero;
    protected override bool ReleaseHandle() { Native.rt_work_free(handle); return true; }
}
