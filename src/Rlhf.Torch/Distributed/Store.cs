using System.Runtime.InteropServices;
using System.Text;
using Rlhf.Torch.Native;
using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch.Distributed;

/// <summary>
/// A c10d key-value store used for rendezvous: a <c>TCPStore</c> hosted by rank 0, or a
/// <c>PrefixStore</c> view of another store (the default group uses <c>"default_pg"</c>).
/// </summary>
public sealed class Store : IDisposable
{
    internal readonly StoreHandle H;
    private readonly Store? inner; // a prefix store keeps its inner store alive

    private Store(IntPtr h, Store? inner)
    {
        H = new StoreHandle(Dist.Check(h));
        this.inner = inner;
    }

    /// <summary>Connects to (or, with <paramref name="isServer"/>, hosts) a TCPStore at host:port; waits for <paramref name="numWorkers"/> clients up to <paramref name="timeout"/>.</summary>
    public static Store Tcp(string host, int port, bool isServer, int numWorkers, TimeSpan timeout) =>
        new(N.rt_store_tcp_new(host, port, isServer ? 1 : 0, numWorkers, (long)timeout.TotalMilliseconds), null);

    /// <summary>A view of this store whose keys are prefixed with <paramref name="prefix"/>.</summary>
    public Store WithPrefix(string prefix) => new(N.rt_store_prefix_new(prefix, H), this);

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>.</summary>
    public unsafe void Set(string key, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = value) Dist.Check(N.rt_store_set(H, key, p, value.Length));
    }

    /// <summary>Sets <paramref name="key"/> to the UTF-8 bytes of <paramref name="value"/>.</summary>
    public void Set(string key, string value) => Set(key, Encoding.UTF8.GetBytes(value));

    /// <summary>Waits (up to the store timeout) for <paramref name="key"/> and returns its value.</summary>
    public unsafe byte[] Get(string key)
    {
        nint p;
        long len;
        Dist.Check(N.rt_store_get(H, key, &p, &len));
        try { return new ReadOnlySpan<byte>((void*)p, checked((int)len)).ToArray(); }
        finally { N.rt_free_string(p); }
    }

    /// <summary>Waits for <paramref name="key"/> and returns its value as UTF-8 text.</summary>
    public string GetString(string key) => Encoding.UTF8.GetString(Get(key));

    /// <summary>Atomically adds <paramref name="delta"/> to the counter at <paramref name="key"/> and returns the new value.</summary>
    public unsafe long Add(string key, long delta)
    {
        long v;
        Dist.Check(N.rt_store_add(H, key, delta, &v));
        return v;
    }

    /// <summary>Releases the native store (a prefix view keeps its inner store until disposed itself).</summary>
    public void Dispose()
    {
        H.Dispose();
        GC.KeepAlive(inner);
    }
}

/// <summary>Helpers shared by the dist types: error translation.</summary>
internal static class Dist
{
    internal static IntPtr Check(IntPtr p)
    {
        if (p == IntPtr.Zero) Throw();
        return p;
    }

    internal static void Check(int rc)
    {
        if (rc != 0) Throw();
    }

    internal static void Throw() => throw new DistributedException(Tensor.TakeError() ?? "c10d call failed without a message");
}

/// <summary>A failed collective, rendezvous or store operation; the message names the rank and the operation.</summary>
public sealed class DistributedException(string message) : Exception(message);
