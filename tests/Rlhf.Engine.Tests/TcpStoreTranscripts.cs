namespace Rlhf.Engine.Tests;

/// <summary>
/// Conversations of real libtorch TCPStore clients with c10d's own TCPStore server, recorded through a logging TCP proxy
/// between them: <c>C</c> lines are the client's bytes, <c>S</c> lines the server's, in hex, in the order they passed; <c>#</c>
/// lines name the Python call that made the bytes below them. Each was made by one process hosting a c10d server
/// (<c>TCPStore(host, P, 1, True, wait_for_workers=False)</c>) behind the proxy and a client <c>TCPStore(host, Q, 2, False)</c>
/// making the calls one at a time, 0.2 s apart.
/// </summary>
public static class TcpStoreTranscripts
{
    /// <summary>torch 2.11.0+cu130 (Python client and server), recorded on the project's GPU machine: VALIDATE and PING open the connection.</summary>
    public const string Libtorch2_11 = """
        C 00cef7853c0dc4010000
        S c4010000
        C 040500000000000000696e69742f0100000000000000
        S 0100000000000000
        # c.set('k','v1')
        C 0102000000000000002f6b02000000000000007631
        # c.get('k')
        C 06010000000000000002000000000000002f6b
        S 00
        C 0302000000000000002f6b
        S 02000000000000007631
        # c.add('n',7)
        C 0402000000000000002f6e0700000000000000
        S 0700000000000000
        # c.add('n',-10)
        C 0402000000000000002f6ef6ffffffffffffff
        S fdffffffffffffff
        # c.compare_set('k','v1','v2')
        C 0202000000000000002f6b0200000000000000763102000000000000007632
        S 02000000000000007632
        # c.compare_set('k','zz','v3')
        C 0202000000000000002f6b02000000000000007a7a02000000000000007633
        S 02000000000000007632
        # c.compare_set('new','','x')
        C 0204000000000000002f6e65770000000000000000010000000000000078
        S 010000000000000078
        # c.check(['k','nope'])
        C 05020000000000000002000000000000002f6b05000000000000002f6e6f7065
        S 01
        # c.num_keys()
        C 07
        S 0400000000000000
        # c.delete_key('k')
        C 0802000000000000002f6b
        S 0100000000000000
        # c.delete_key('k')
        C 0802000000000000002f6b
        S 0000000000000000
        # c.append('a','x')
        C 0902000000000000002f61010000000000000078
        # c.append('a','yz')
        C 0902000000000000002f610200000000000000797a
        # c.get('a')
        C 06010000000000000002000000000000002f61
        S 00
        C 0302000000000000002f61
        S 030000000000000078797a
        # c.multi_set(['p','q'],['1','22'])
        C 0b020000000000000002000000000000002f7001000000000000003102000000000000002f7102000000000000003232
        # c.multi_get(['q','p'])
        C 06020000000000000002000000000000002f7102000000000000002f70
        S 00
        C 0a020000000000000002000000000000002f7102000000000000002f70
        S 02000000000000003232010000000000000031
        # c.wait(['p'])
        C 06010000000000000002000000000000002f70
        S 00
        # c.wait(['missing'],T(milliseconds=300))
        C 06010000000000000008000000000000002f6d697373696e67
        C 0c
        S 01
        """;

    /// <summary>torch 1.13.1 (Debian's python3-torch, client and server), recorded on the CPU build machine.</summary>
    public const string Libtorch1_13 = """
        C 030500000000000000696e69742f0100000000000000
        S 0100000000000000
        # c.set('k','v1')
        C 0002000000000000002f6b02000000000000007631
        # c.get('k')
        C 05010000000000000002000000000000002f6b
        S 00
        C 02
        C 02000000000000002f6b
        S 02000000000000007631
        # c.add('n',7)
        C 03
        C 02000000000000002f6e0700000000000000
        S 0700000000000000
        # c.add('n',-10)
        C 0302000000000000002f6ef6ffffffffffffff
        S fdffffffffffffff
        # c.compare_set('k','v1','v2')
        C 01
        C 02000000000000002f6b0200000000000000763102000000000000007632
        S 02000000000000007632
        # c.compare_set('k','zz','v3')
        C 0102000000000000002f6b02000000000000007a7a02000000000000007633
        S 02000000000000007632
        # c.compare_set('new','','x')
        C 01
        C 04000000000000002f6e65770000000000000000010000000000000078
        S 010000000000000078
        # c.num_keys()
        C 06
        S 0400000000000000
        # c.delete_key('k')
        C 08
        C 02000000000000002f6b
        S 0100000000000000
        # c.delete_key('k')
        C 08
        C 02000000000000002f6b
        S 0000000000000000
        # c.set('p','1')
        C 0002000000000000002f70010000000000000031
        # c.wait(['p'])
        C 05010000000000000002000000000000002f70
        S 00
        """;
}
