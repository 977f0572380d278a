using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Rlhf.Shell.Engine;

/// <summary>
/// The rendezvous key-value server of a job, speaking c10d's <c>TCPStore</c> wire protocol, listening only on the addresses
/// it is given. c10d's own server (libtorch 1.13 and 2.x alike: <c>TCPStoreOptions</c> has no bind address) listens on every
/// interface whatever <c>MASTER_ADDR</c> names, which leaves an unauthenticated store reachable from the network; so the rank
/// that hosts the store runs this one, bound to <c>MASTER_ADDR</c>'s addresses, and every rank, the host too, joins it as a
/// c10d <c>TCPStore</c> client, as torchrun's workers join the agent's store (torch/distributed/rendezvous.py,
/// <c>_create_c10d_store</c> with <c>TORCHELASTIC_USE_AGENT_STORE</c>).
/// </summary>
/// <remarks>
/// Both dialects of the protocol are served, told apart on each connection's first query (PyTorch,
/// torch/csrc/distributed/c10d/TCPStore.cpp at v1.13.1, and TCPStoreBackend.hpp/.cpp in 2.x). A query is a type byte and
/// its arguments in host byte order (little-endian); a string or byte vector is a <c>uint64</c> length and its bytes.
/// libtorch 1.13: <c>SET, COMPARE_SET, GET, ADD, CHECK, WAIT, GETNUMKEYS, WATCH_KEY, DELETE_KEY</c> (0–8). libtorch 2.x
/// opens every connection with <c>VALIDATE</c> (type 0 and the <c>uint32</c> 0x3C85F7CE) and numbers its queries
/// <c>VALIDATE, SET, COMPARE_SET, GET, ADD, CHECK, WAIT, GETNUMKEYS, DELETE_KEY, APPEND, MULTI_GET, MULTI_SET, CANCEL_WAIT,
/// PING</c> (0–13). Not served (the connection is closed with a line on stderr): 1.13's <c>WATCH_KEY</c> and 2.x's queues.
/// Every length is bounded (<see cref="MaxKeyBytes"/>, <see cref="MaxValueBytes"/>, <see cref="MaxKeysPerQuery"/>,
/// <see cref="MaxStoreBytes"/>, <see cref="MaxConnections"/>); a connection that breaks a bound or the protocol is closed.
/// </remarks>
public sealed class TcpStoreServer : IDisposable
{
    /// <summary>The environment variable naming the one address the store binds to instead of <c>MASTER_ADDR</c>'s (e.g. <c>0.0.0.0</c> behind NAT).</summary>
    public const string BindVariable = "RLHF_STORE_BIND";

    /// <summary>Longest key accepted, in bytes.</summary>
    public const int MaxKeyBytes = 64 * 1024;

    /// <summary>Largest value accepted, in bytes.</summary>
    public const int MaxValueBytes = 64 * 1024 * 1024;

    /// <summary>Most keys in one CHECK, WAIT, MULTI_GET or MULTI_SET.</summary>
    public const int MaxKeysPerQuery = 64 * 1024;

    /// <summary>Most bytes of keys and values the store holds at once.</summary>
    public const long MaxStoreBytes = 1L << 30;

    /// <summary>Most client connections at once (a c10d 1.13 client opens two).</summary>
    public const int MaxConnections = 64 * 1024;

    private const uint ValidationMagic = 0x3C85F7CE;
    private const byte StopWaiting = 0, WaitCanceled = 1, Ready = 0, NotReady = 1;

    private enum Query { Validate, Set, CompareSet, Get, Add, Check, Wait, NumKeys, Delete, Append, MultiGet, MultiSet, CancelWait, Ping, Unsupported }

    private static readonly Query[] Legacy =
        [Query.Set, Query.CompareSet, Query.Get, Query.Add, Query.Check, Query.Wait, Query.NumKeys, Query.Unsupported, Query.Delete];

    private static readonly Query[] Modern =
        [Query.Validate, Query.Set, Query.CompareSet, Query.Get, Query.Add, Query.Check, Query.Wait, Query.NumKeys, Query.Delete,
         Query.Append, Query.MultiGet, Query.MultiSet, Query.CancelWait, Query.Ping];

    private readonly List<Socket> listeners;
    private readonly CancellationTokenSource stop = new();
    private readonly object state = new();
    private readonly Dictionary<string, byte[]> data = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Connection>> waiting = new(StringComparer.Ordinal);
    private readonly HashSet<Connection> connections = [];
    private long storedBytes;
    private int reported;

    private TcpStoreServer(List<Socket> listeners, int port)
    {
        this.listeners = listeners;
        Port = port;
        Endpoints = listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToList();
        foreach (var l in listeners) _ = AcceptLoop(l);
    }

    /// <summary>The port the store listens on.</summary>
    public int Port { get; }

    /// <summary>Every address and port the store listens on.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; }

    /// <summary>
    /// The addresses the store of a job whose rendezvous address is <paramref name="masterAddr"/> binds to: the one IP address
    /// <paramref name="bindOverride"/> names when given, else <paramref name="masterAddr"/> itself when it is an IP address,
    /// else every address its name resolves to. Throws <see cref="ArgumentException"/> naming the address when none is found.
    /// </summary>
    public static IReadOnlyList<IPAddress> BindAddresses(string masterAddr, string? bindOverride = null)
    {
        static string Bare(string a) => a.StartsWith('[') && a.EndsWith(']') ? a[1..^1] : a;
        if (!string.IsNullOrWhiteSpace(bindOverride))
            return IPAddress.TryParse(Bare(bindOverride.Trim()), out var b) ? [b]
                : throw new ArgumentException($"{BindVariable}='{bindOverride}' is not an IP address");
        var host = Bare(masterAddr.Trim());
        if (IPAddress.TryParse(host, out var ip)) return [ip];
        IPAddress[] found;
        try { found = Dns.GetHostAddresses(host); }
        catch (SocketException e) { throw new ArgumentException($"MASTER_ADDR '{masterAddr}' does not resolve: {e.Message}"); }
        var usable = found.Where(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6).Distinct().ToList();
        return usable.Count > 0 ? usable : throw new ArgumentException($"MASTER_ADDR '{masterAddr}' resolves to no IP address");
    }

    /// <summary>
    /// Starts a store listening on <paramref name="port"/> (0: a free one) of every address in <paramref name="addresses"/> that
    /// belongs to this machine; throws <see cref="InvalidOperationException"/> naming the addresses and the reason when none
    /// can be bound (the port in use, or no address of this machine).
    /// </summary>
    public static TcpStoreServer Start(IReadOnlyList<IPAddress> addresses, int port)
    {
        if (addresses.Count == 0) throw new ArgumentException("no address to bind the rendezvous store to");
        if (port is < 0 or > 65535) throw new ArgumentException($"the rendezvous store port must be from 0 to 65535, got {port}");
        var bound = new List<Socket>();
        var errors = new List<string>();
        foreach (var a in addresses)
        {
            var s = new Socket(a.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (a.AddressFamily == AddressFamily.InterNetworkV6) s.DualMode = false;   // [::1] must not take 127.0.0.1 too
                // As c10d's server does, SO_REUSEADDR: a restarted job can take the port while the last one's connections sit in
                // TIME_WAIT. Set raw: .NET's ReuseAddress also sets SO_REUSEPORT on Unix, which would let a second listener share it.
                if (OperatingSystem.IsLinux()) s.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
                s.Bind(new IPEndPoint(a, port));
                s.Listen(1024);
                if (port == 0) port = ((IPEndPoint)s.LocalEndPoint!).Port;
                bound.Add(s);
            }
            catch (SocketException e)
            {
                s.Dispose();
                errors.Add($"{a}: {(e.SocketErrorCode == SocketError.AddressNotAvailable ? "not an address of this machine" : e.Message)}");
                if (e.SocketErrorCode == SocketError.AddressAlreadyInUse) break;   // the other addresses would say the same
            }
        }
        if (bound.Count == 0)
            throw new InvalidOperationException(
                $"cannot host the rendezvous store on port {port} ({string.Join("; ", errors)}); rank 0 must run on the machine " +
                $"MASTER_ADDR names, on a free MASTER_PORT (or set {BindVariable} to an address of this machine)");
        return new TcpStoreServer(bound, port);
    }

    /// <summary>Stops listening and closes every connection.</summary>
    public void Dispose()
    {
        if (stop.IsCancellationRequested) return;
        stop.Cancel();
        foreach (var l in listeners) l.Dispose();
        lock (state)
        {
            foreach (var c in connections) c.Socket.Dispose();
            connections.Clear();
        }
    }

    private async Task AcceptLoop(Socket listener)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await listener.AcceptAsync(stop.Token).ConfigureAwait(false); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (stop.IsCancellationRequested) return;
                continue;
            }
            var c = new Connection(s);
            lock (state)
            {
                if (connections.Count >= MaxConnections || stop.IsCancellationRequested) { s.Dispose(); continue; }
                connections.Add(c);
            }
            _ = Serve(c);
        }
    }

    private async Task Serve(Connection c)
    {
        try
        {
            c.Socket.NoDelay = true;
            c.Socket.SendTimeout = 60_000;   // a client that stops reading cannot hold the store forever
            using var stream = new NetworkStream(c.Socket, ownsSocket: false);
            var r = new WireReader(stream, stop.Token);
            // The dialect: a 2.x client opens with VALIDATE (type 0, then the magic); a 1.13 client's type 0 is SET, whose key
            // length follows (a key of 0x3C85F7CE bytes and more is over MaxKeyBytes, so the two cannot be confused).
            var first = await r.Byte();
            Query[] dialect;
            if (first == 0 && await r.PeekUInt32() == ValidationMagic)
            {
                await r.UInt32();
                dialect = Modern;
            }
            else
            {
                dialect = Legacy;
                await Handle(c, r, first < Legacy.Length ? Legacy[first] : Query.Unsupported, first);
            }
            while (true)
            {
                var t = await r.Byte();
                await Handle(c, r, t < dialect.Length ? dialect[t] : Query.Unsupported, t);
            }
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // the client went away (its process ended) or the store is stopping: nothing to report
        }
        catch (ProtocolException e)
        {
            Report($"rlhf rendezvous store: closed the connection from {Peer(c)}: {e.Message}");
        }
        catch (Exception e)
        {
            Report($"rlhf rendezvous store: closed the connection from {Peer(c)} after an unexpected error: {e.Message}");
        }
        finally
        {
            lock (state)
            {
                ClearWaits(c);
                connections.Remove(c);
            }
            c.Socket.Dispose();
        }
    }

    private static string Peer(Connection c)
    {
        try { return c.Socket.RemoteEndPoint?.ToString() ?? "?"; } catch (ObjectDisposedException) { return "?"; }
    }

    private void Report(string line)
    {
        if (Interlocked.Increment(ref reported) <= 10) Console.Error.WriteLine(line);
    }

    /// <summary>Reads one query's arguments (outside the lock: a slow client holds nobody up), then runs it under the lock.</summary>
    private async Task Handle(Connection c, WireReader r, Query q, byte type)
    {
        switch (q)
        {
            case Query.Validate:
                if (await r.UInt32() != ValidationMagic) throw new ProtocolException("VALIDATE without the magic number");
                break;
            case Query.Set:
            {
                var key = await r.Key();
                var value = await r.Value();
                lock (state) Put(key, value);
                break;
            }
            case Query.CompareSet:
            {
                var key = await r.Key();
                var expected = await r.Value();
                var desired = await r.Value();
                lock (state)
                {
                    // c10d's rule: a missing key is created only when the expected value is empty; the reply is the value now held
                    // (or, for a missing key, the expected value).
                    byte[] now;
                    if (!data.TryGetValue(key, out var cur)) now = expected.Length == 0 ? Put(key, desired) : expected;
                    else now = cur.AsSpan().SequenceEqual(expected) ? Put(key, desired) : cur;
                    c.Send(Vector(now));
                }
                break;
            }
            case Query.Get:
            {
                var key = await r.Key();
                lock (state) c.Send(Vector(Existing(key)));
                break;
            }
            case Query.Add:
            {
                var key = await r.Key();
                var delta = await r.Int64();
                lock (state)
                {
                    var sum = delta;
                    if (data.TryGetValue(key, out var cur))
                    {
                        if (!long.TryParse(Encoding.ASCII.GetString(cur), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var old))
                            throw new ProtocolException($"ADD to key '{Show(key)}', whose value is not an integer");
                        sum = unchecked(old + delta);
                    }
                    Put(key, Encoding.ASCII.GetBytes(sum.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    c.Send(Int64(sum));
                }
                break;
            }
            case Query.Check:
            {
                var keys = await Keys(r);
                lock (state) c.Send([keys.All(data.ContainsKey) ? Ready : NotReady]);
                break;
            }
            case Query.Wait:
            {
                var keys = await Keys(r);
                lock (state)
                {
                    ClearWaits(c);
                    var missing = keys.Where(k => !data.ContainsKey(k)).Distinct(StringComparer.Ordinal).ToList();
                    if (missing.Count == 0) { c.Send([StopWaiting]); break; }
                    foreach (var k in missing)
                    {
                        if (!waiting.TryGetValue(k, out var list)) waiting[k] = list = [];
                        list.Add(c);
                    }
                    c.Awaited = missing.Count;
                }
                break;
            }
            case Query.NumKeys:
                lock (state) c.Send(Int64(data.Count));
                break;
            case Query.Delete:
            {
                var key = await r.Key();
                lock (state)
                {
                    var removed = data.Remove(key, out var old);
                    if (removed) storedBytes -= key.Length + old!.Length;
                    c.Send(Int64(removed ? 1 : 0));
                }
                break;
            }
            case Query.Append:
            {
                var key = await r.Key();
                var value = await r.Value();
                lock (state) Put(key, data.TryGetValue(key, out var cur) ? [.. cur, .. value] : value);
                break;
            }
            case Query.MultiGet:
            {
                var keys = await Keys(r);
                lock (state)
                {
                    var reply = new List<byte>();
                    foreach (var k in keys) reply.AddRange(Vector(Existing(k)));
                    c.Send([.. reply]);
                }
                break;
            }
            case Query.MultiSet:
            {
                var n = await Count(r);
                var pairs = new List<(string, byte[])>(n);
                for (var i = 0; i < n; i++) pairs.Add((await r.Key(), await r.Value()));
                lock (state) foreach (var (k, v) in pairs) Put(k, v);
                break;
            }
            case Query.CancelWait:
                lock (state)
                {
                    ClearWaits(c);
                    c.Send([WaitCanceled]);
                }
                break;
            case Query.Ping:
            {
                var nonce = await r.UInt32();
                lock (state) c.Send(BitConverter.GetBytes(nonce));
                break;
            }
            default:
                throw new ProtocolException($"query type {type} is not served by this store (c10d's watch_key and queues are not)");
        }
    }

    private static async Task<int> Count(WireReader r)
    {
        var n = await r.UInt64();
        return n <= MaxKeysPerQuery ? (int)n : throw new ProtocolException($"{n} keys in one query (at most {MaxKeysPerQuery})");
    }

    private static async Task<List<string>> Keys(WireReader r)
    {
        var n = await Count(r);
        var keys = new List<string>(n);
        for (var i = 0; i < n; i++) keys.Add(await r.Key());
        return keys;
    }

    /// <summary>Stores a value and wakes the clients waiting for its key; returns the value. Caller holds the lock.</summary>
    private byte[] Put(string key, byte[] value)
    {
        var before = data.TryGetValue(key, out var old) ? key.Length + old.Length : 0;
        var after = storedBytes - before + key.Length + value.Length;
        if (after > MaxStoreBytes) throw new ProtocolException($"the store would hold more than {MaxStoreBytes} bytes");
        data[key] = value;
        storedBytes = after;
        if (waiting.Remove(key, out var waiters))
            foreach (var w in waiters)
                if (--w.Awaited == 0) w.TrySend([StopWaiting]);
        return value;
    }

    private byte[] Existing(string key) =>
        data.TryGetValue(key, out var v) ? v : throw new ProtocolException($"GET of key '{Show(key)}', which is not set (c10d clients wait for a key before getting it)");

    private void ClearWaits(Connection c)
    {
        if (c.Awaited == 0) return;
        foreach (var k in waiting.Keys.ToList())
        {
            var list = waiting[k];
            list.RemoveAll(x => ReferenceEquals(x, c));
            if (list.Count == 0) waiting.Remove(k);
        }
        c.Awaited = 0;
    }

    private static string Show(string key) => key.Length <= 80 ? key : key[..80] + "…";

    private static byte[] Int64(long v) => BitConverter.GetBytes(v);

    private static byte[] Vector(byte[] v)
    {
        var b = new byte[8 + v.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)v.Length);
        v.CopyTo(b, 8);
        return b;
    }

    /// <summary>One client connection: its socket and how many keys its pending WAIT still needs.</summary>
    private sealed class Connection(Socket socket)
    {
        public Socket Socket { get; } = socket;
        public int Awaited { get; set; }

        /// <summary>Sends a whole reply (blocking, bounded by the socket's send timeout); a failure ends the connection.</summary>
        public void Send(byte[] bytes)
        {
            var sent = 0;
            while (sent < bytes.Length) sent += Socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
        }

        /// <summary>Sends to a client other than the one being served: its failure must not end the query being served.</summary>
        public void TrySend(byte[] bytes)
        {
            try { Send(bytes); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { Socket.Dispose(); }
        }
    }

    /// <summary>A protocol violation by a client: its connection is closed.</summary>
    private sealed class ProtocolException(string message) : Exception(message);

    /// <summary>Reads c10d's little-endian values from a stream, through a buffer that can be peeked.</summary>
    private sealed class WireReader(Stream stream, CancellationToken cancel)
    {
        private byte[] buf = new byte[4096];
        private int start, end;

        private async ValueTask Ensure(int n)
        {
            if (end - start >= n) return;
            if (buf.Length < n) Array.Resize(ref buf, Math.Max(n, buf.Length * 2));
            if (start > 0)
            {
                Buffer.BlockCopy(buf, start, buf, 0, end - start);
                end -= start;
                start = 0;
            }
            while (end < n)
            {
                var got = await stream.ReadAsync(buf.AsMemory(end, buf.Length - end), cancel).ConfigureAwait(false);
                if (got == 0) throw new EndOfStreamException();
                end += got;
            }
        }

        public async ValueTask<byte> Byte()
        {
            await Ensure(1);
            return buf[start++];
        }

        public async ValueTask<uint> PeekUInt32()
        {
            await Ensure(4);
            return BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(start, 4));
        }

        public async ValueTask<uint> UInt32()
        {
            var v = await PeekUInt32();
            start += 4;
            return v;
        }

        public async ValueTask<ulong> UInt64()
        {
            await Ensure(8);
            var v = BinaryPrimitives.ReadUInt64LittleEndian(buf.AsSpan(start, 8));
            start += 8;
            return v;
        }

        public async ValueTask<long> Int64() => unchecked((long)await UInt64());

        private async ValueTask<byte[]> Bytes(long limit, string what)
        {
            var n = await UInt64();
            if (n > (ulong)limit) throw new ProtocolException($"a {what} of {n} bytes (at most {limit})");
            var len = (int)n;
            if (len <= 1 << 20)
            {
                await Ensure(len);
                var b = buf.AsSpan(start, len).ToArray();
                start += len;
                return b;
            }
            // Large values are read straight into their own array, never into a grown buffer.
            var v = new byte[len];
            var have = Math.Min(end - start, len);
            buf.AsSpan(start, have).CopyTo(v);
            start += have;
            await stream.ReadExactlyAsync(v.AsMemory(have), cancel).ConfigureAwait(false);
            return v;
        }

        /// <summary>A key (its bytes kept one-to-one in a string, so any byte sequence is a distinct key).</summary>
        public async ValueTask<string> Key() => Encoding.Latin1.GetString(await Bytes(MaxKeyBytes, "key"));

        public ValueTask<byte[]> Value() => Bytes(MaxValueBytes, "value");
    }
}
