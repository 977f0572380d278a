using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Rlhf.Shell.Engine;
using Rlhf.Torch.Distributed;

namespace Rlhf.Engine.Tests;

/// <summary>The rendezvous store server: c10d's own clients against it, both wire dialects byte by byte, hostile clients, binding.</summary>
public class RendezvousStoreTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static TcpStoreServer Loopback() => TcpStoreServer.Start([IPAddress.Loopback], 0);

    private static Store Client(TcpStoreServer s) => Store.Tcp("127.0.0.1", s.Port, isServer: false, numWorkers: 0, Wait);

    [Fact]
    public void Libtorch_clients_set_get_add_and_wait_for_a_key_another_client_sets_later()
    {
        using var server = Loopback();
        using var a = Client(server);
        using var b = Client(server);
        a.Set("plain", "value 1");
        Assert.Equal("value 1", b.GetString("plain"));
        Assert.Equal(5, a.Add("counter", 5));
        Assert.Equal(2, b.Add("counter", -3));
        // b blocks in get until a sets the key: the store's WAIT is answered when the key appears, not before.
        string? late = null;
        var pending = new Thread(() => late = b.GetString("late"));
        pending.Start();
        Assert.False(pending.Join(TimeSpan.FromMilliseconds(500)), "get returned before the key was set");
        a.Set("late", "here");
        Assert.True(pending.Join(Wait), "get never returned after the key was set");
        Assert.Equal("here", late);
        // Through prefixes, as process groups use the store.
        using var pa = a.WithPrefix("default_pg");
        using var pb = b.WithPrefix("default_pg");
        pa.Set(new string('k', 1000), [0, 1, 2, 255]);
        Assert.Equal(new byte[] { 0, 1, 2, 255 }, pb.Get(new string('k', 1000)));
    }

    /// <summary>A raw connection writing c10d's little-endian queries and reading replies.</summary>
    private sealed class Raw : IDisposable
    {
        private readonly Socket s = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly List<byte> pending = [];

        public Raw(int port)
        {
            s.Connect(IPAddress.Loopback, port);
            s.ReceiveTimeout = 10_000;
        }

        public Raw Byte(byte b) { pending.Add(b); return this; }
        public Raw U32(uint v) { pending.AddRange(BitConverter.GetBytes(v)); return this; }
        public Raw U64(ulong v) { pending.AddRange(BitConverter.GetBytes(v)); return this; }
        public Raw Str(string v) { U64((ulong)v.Length); pending.AddRange(Encoding.ASCII.GetBytes(v)); return this; }

        public void Flush()
        {
            s.Send(pending.ToArray());
            pending.Clear();
        }

        public byte[] Read(int n)
        {
            var b = new byte[n];
            for (var got = 0; got < n;)
            {
                var r = s.Receive(b, got, n - got, SocketFlags.None);
                if (r == 0) throw new EndOfStreamException($"closed after {got} of {n} bytes");
                got += r;
            }
            return b;
        }

        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Read(8));
        public string Vec() => Encoding.ASCII.GetString(Read((int)I64()));

        /// <summary>True when nothing arrives within <paramref name="ms"/> (and the connection is still open).</summary>
        public bool Silent(int ms) => !s.Poll(ms * 1000, SelectMode.SelectRead);

        /// <summary>True when the server closed the connection.</summary>
        public bool Closed()
        {
            if (!s.Poll(10_000_000, SelectMode.SelectRead)) return false;
            try { return s.Receive(new byte[1]) == 0; } catch (SocketException) { return true; }
        }

        public void Dispose() => s.Dispose();
    }

    /// <summary>Plays the client's side of a recorded conversation and asserts every reply is the bytes c10d's own server sent.</summary>
    private static void Replay(string transcript)
    {
        using var server = Loopback();
        using var c = new Raw(server.Port);
        var call = "(connecting)";
        var replies = 0;
        foreach (var line in transcript.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var (kind, text) = (line[0], line[2..]);
            if (kind == '#') { call = text; continue; }
            var bytes = Convert.FromHexString(text);
            if (kind == 'C') { foreach (var b in bytes) c.Byte(b); continue; }
            c.Flush();
            var got = c.Read(bytes.Length);
            Assert.True(bytes.AsSpan().SequenceEqual(got), $"{call}: expected {text}, got {Convert.ToHexString(got).ToLowerInvariant()}");
            replies++;
        }
        c.Flush();
        Assert.True(replies > 10, $"only {replies} replies compared: the transcript did not parse");
        Assert.True(c.Silent(200), "the store sent bytes c10d's server did not");
    }

    [Fact]
    public void Replies_byte_for_byte_what_libtorch_2_11s_own_server_replied_to_its_client() => Replay(TcpStoreTranscripts.Libtorch2_11);

    [Fact]
    public void Replies_byte_for_byte_what_libtorch_1_13s_own_server_replied_to_its_client() => Replay(TcpStoreTranscripts.Libtorch1_13);

    [Fact]
    public void The_libtorch_1_13_dialect_byte_by_byte()
    {
        // TCPStore.cpp at v1.13.1: SET 0, COMPARE_SET 1, GET 2, ADD 3, CHECK 4, WAIT 5, GETNUMKEYS 6, DELETE_KEY 8.
        using var server = Loopback();
        using var c = new Raw(server.Port);
        using var other = new Raw(server.Port);
        c.Byte(3).Str("init/").U64(1).Flush();
        Assert.Equal(1, c.I64());
        c.Byte(0).Str("/k").Str("v1").Byte(2).Str("/k").Flush();
        Assert.Equal("v1", c.Vec());
        c.Byte(1).Str("/k").Str("v1").Str("v2").Flush();                    // compare-and-set that matches
        Assert.Equal("v2", c.Vec());
        c.Byte(1).Str("/k").Str("nope").Str("v3").Flush();                  // and one that does not: the held value comes back
        Assert.Equal("v2", c.Vec());
        c.Byte(4).U64(2).Str("/k").Str("/w").Flush();
        Assert.Equal((byte)1, c.Read(1)[0]);                                       // NOT_READY
        c.Byte(5).U64(2).Str("/k").Str("/w").Flush();
        Assert.True(c.Silent(300), "WAIT answered before its key was set");
        other.Byte(0).Str("/w").Str("").Flush();
        Assert.Equal((byte)0, c.Read(1)[0]);                                       // STOP_WAITING once /w exists
        c.Byte(6).Flush();
        Assert.Equal(3, c.I64());                                           // init/, /k, /w
        c.Byte(8).Str("/k").Byte(8).Str("/k").Flush();
        Assert.Equal(1, c.I64());
        Assert.Equal(0, c.I64());
        c.Byte(7).Str("/w").Flush();                                        // WATCH_KEY is not served
        Assert.True(c.Closed(), "an unsupported query left the connection open");
    }

    [Fact]
    public void The_libtorch_2_dialect_byte_by_byte()
    {
        // TCPStoreBackend.hpp in 2.x: VALIDATE 0 (+ 0x3C85F7CE) first, then SET 1, COMPARE_SET 2, GET 3, ADD 4, CHECK 5, WAIT 6,
        // GETNUMKEYS 7, DELETE_KEY 8, APPEND 9, MULTI_GET 10, MULTI_SET 11, CANCEL_WAIT 12, PING 13.
        using var server = Loopback();
        using var c = new Raw(server.Port);
        using var other = new Raw(server.Port);
        c.Byte(0).U32(0x3C85F7CE).Byte(13).U32(4242).Flush();
        Assert.Equal(4242u, BitConverter.ToUInt32(c.Read(4)));
        other.Byte(0).U32(0x3C85F7CE).Flush();
        c.Byte(1).Str("a").Str("x").Byte(9).Str("a").Str("yz").Byte(3).Str("a").Flush();
        Assert.Equal("xyz", c.Vec());
        c.Byte(4).Str("n").U64(7).Byte(4).Str("n").U64(unchecked((ulong)-10)).Flush();
        Assert.Equal(7, c.I64());
        Assert.Equal(-3, c.I64());
        c.Byte(11).U64(2).Str("p").Str("1").Str("q").Str("22").Byte(10).U64(2).Str("q").Str("p").Flush();
        Assert.Equal("22", c.Vec());
        Assert.Equal("1", c.Vec());
        c.Byte(5).U64(1).Str("p").Flush();
        Assert.Equal((byte)0, c.Read(1)[0]);                                       // READY
        c.Byte(7).Flush();
        Assert.Equal(4, c.I64());                                           // a, n, p, q
        c.Byte(6).U64(1).Str("never").Byte(12).Flush();                     // wait, then give up waiting
        Assert.Equal((byte)1, c.Read(1)[0]);                                       // WAIT_CANCELED, and no STOP_WAITING
        other.Byte(1).Str("never").Str("now").Flush();
        Assert.True(c.Silent(300), "a cancelled wait was answered");
        c.Byte(6).U64(2).Str("w1").Str("w2").Flush();
        other.Byte(1).Str("w1").Str("").Flush();
        Assert.True(c.Silent(300), "WAIT on two keys answered after one");
        other.Byte(1).Str("w2").Str("").Flush();
        Assert.Equal((byte)0, c.Read(1)[0]);
        using var liar = new Raw(server.Port);
        liar.Byte(0).U32(0x3C85F7CE).Byte(0).U32(1).Flush();                 // a second VALIDATE with the wrong number
        Assert.True(liar.Closed(), "a wrong magic number left the connection open");
    }

    [Fact]
    public void A_hostile_client_is_cut_off_and_the_others_are_still_served()
    {
        using var server = Loopback();
        using var good = Client(server);
        good.Set("before", "1");
        using (var huge = new Raw(server.Port))
        {
            huge.Byte(0).U64(1UL << 40).Flush();                           // a 1 TiB key
            Assert.True(huge.Closed(), "a 1 TiB key length left the connection open");
        }
        using (var many = new Raw(server.Port))
        {
            many.Byte(5).U64(ulong.MaxValue).Flush();                      // WAIT on 2^64 - 1 keys
            Assert.True(many.Closed(), "an absurd key count left the connection open");
        }
        using (var missing = new Raw(server.Port))
        {
            missing.Byte(2).Str("/not-there").Flush();                      // GET without WAIT of a key nobody set
            Assert.True(missing.Closed(), "a GET of a missing key left the connection open");
        }
        using (var torn = new Raw(server.Port))
            torn.Byte(0).U64(100).Flush();                                  // half a SET, then gone
        Assert.Equal("1", good.GetString("before"));
        good.Set("after", "2");
        Assert.Equal("2", good.GetString("after"));
    }

    [Fact]
    public void Bind_addresses_are_the_rendezvous_address_or_the_explicit_setting()
    {
        Assert.Equal(new[] { IPAddress.Loopback }, TcpStoreServer.BindAddresses("127.0.0.1"));
        Assert.Equal(new[] { IPAddress.IPv6Loopback }, TcpStoreServer.BindAddresses("[::1]"));
        Assert.All(TcpStoreServer.BindAddresses("localhost"), a => Assert.True(IPAddress.IsLoopback(a), $"localhost gave {a}"));
        Assert.Equal(new[] { IPAddress.Any }, TcpStoreServer.BindAddresses("127.0.0.1", "0.0.0.0"));
        var e = Assert.Throws<ArgumentException>(() => TcpStoreServer.BindAddresses("127.0.0.1", "somewhere"));
        Assert.Contains(TcpStoreServer.BindVariable, e.Message);
    }

    [Fact]
    public void The_store_listens_only_where_it_is_told_and_says_why_when_it_cannot()
    {
        using (var server = Loopback())
        {
            Assert.Equal(new[] { new IPEndPoint(IPAddress.Loopback, server.Port) }, server.Endpoints);
            Assert.Equal(new[] { new IPEndPoint(IPAddress.Loopback, server.Port) }, Worker.ListeningSockets.On(server.Port));
            var taken = Assert.Throws<InvalidOperationException>(() => TcpStoreServer.Start([IPAddress.Loopback], server.Port));
            Assert.Contains($"port {server.Port}", taken.Message);
        }
        // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
        var foreign = Assert.Throws<InvalidOperationException>(() => TcpStoreServer.Start([IPAddress.Parse("192.0.2.1")], 0));
        Assert.Contains("192.0.2.1: not an address of this machine", foreign.Message);
    }
}
