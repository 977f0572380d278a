using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Rlhf.Shell.Engine;

namespace Rlhf.Engine.Worker;

internal static partial class Scenarios
{
    /// <summary>
    /// After the rendezvous, rank 0 prints every socket listening on MASTER_PORT (<c>LISTEN addr:port</c>, read from
    /// /proc/net/tcp and /proc/net/tcp6) and, for each address of this machine that is not loopback, whether a connection to
    /// MASTER_PORT through it is accepted (<c>CONNECT addr accepted|refused</c>).
    /// </summary>
    private static int StoreBinding(Dictionary<string, string> kv)
    {
        var env = DistributedEnvironment.FromProcess();
        using var pg = env.InitProcessGroup(Timeout(kv));
        pg.Barrier().Wait();
        if (pg.Rank == 0)
        {
            foreach (var l in ListeningSockets.On(env.MasterPort)) Console.WriteLine($"LISTEN {l}");
            foreach (var a in NonLoopbackAddresses())
                Console.WriteLine($"CONNECT {a} {(Accepts(new IPEndPoint(a, env.MasterPort)) ? "accepted" : "refused")}");
        }
        pg.Barrier().Wait();
        Console.WriteLine($"OK store-binding rank {pg.Rank}");
        return 0;
    }

    private static IEnumerable<IPAddress> NonLoopbackAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(u => u.Address))
            .Where(a => !IPAddress.IsLoopback(a) && !a.IsIPv6LinkLocal && a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6);

    private static bool Accepts(IPEndPoint ep)
    {
        using var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            var connect = s.ConnectAsync(ep);
            return connect.Wait(TimeSpan.FromSeconds(3)) && s.Connected;
        }
        catch (AggregateException) { return false; }
        catch (SocketException) { return false; }
    }
}

/// <summary>The machine's listening TCP sockets, as the kernel lists them.</summary>
public static class ListeningSockets
{
    /// <summary>Sockets in state LISTEN (0A) on <paramref name="port"/>, from the kernel's tables (addresses are 32-bit words in host order).</summary>
    public static List<IPEndPoint> On(int port)
    {
        var found = new List<IPEndPoint>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table)) continue;
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 4 || f[3] != "0A") continue;
                var local = f[1].Split(':');
                if (int.Parse(local[1], NumberStyles.HexNumber) != port) continue;
                var hex = local[0];
                var bytes = new byte[hex.Length / 2];
                for (var w = 0; w < hex.Length / 8; w++)
                    BitConverter.TryWriteBytes(bytes.AsSpan(w * 4), uint.Parse(hex.AsSpan(w * 8, 8), NumberStyles.HexNumber));
                found.Add(new IPEndPoint(new IPAddress(bytes), port));
            }
        }
        return found;
    }
}
