using System.Net;
using System.Net.Sockets;

namespace Rlhf.Shell.Engine;

/// <summary>What <c>rlhf launch</c> starts on this node: world layout plus the worker command line.</summary>
/// <param name="NprocPerNode">Workers on this node.</param>
/// <param name="Nnodes">Nodes in the job.</param>
/// <param name="NodeRank">Index of this node.</param>
/// <param name="MasterAddr">Address of the node hosting rank 0's TCPStore.</param>
/// <param name="MasterPort">Its port.</param>
/// <param name="Command">Program and arguments of every worker (<c>rlhf</c> means this very executable).</param>
/// <param name="PrefixOutput">Prefix every output line with <c>[rank r]</c>.</param>
/// <param name="GracePeriod">How long stopped workers get between SIGTERM (or a forwarded SIGINT) and SIGKILL; null: <see cref="DefaultGracePeriod"/>.</param>
/// <param name="MaxRestarts">
/// torchrun's <c>--max-restarts</c>: when a worker fails, every worker is stopped and all are started again, up to this many
/// times; each learns its attempt from <see cref="RestartCountVariable"/> (and torchrun's <c>TORCHELASTIC_RESTART_COUNT</c>).
/// </param>
public sealed record LaunchSpec(
    int NprocPerNode, int Nnodes, int NodeRank, string MasterAddr, int MasterPort, IReadOnlyList<string> Command,
    bool PrefixOutput = true, TimeSpan? GracePeriod = null, int MaxRestarts = 0)
{
    /// <summary>The environment variable holding how many times the workers were restarted (0 on the first start).</summary>
    public const string RestartCountVariable = "RLHF_RESTART_COUNT";

    /// <summary>Most restarts <c>--max-restarts</c> accepts.</summary>
    public const int MaxRestartsLimit = 1000;

    /// <summary>Grace period of stopped workers when none is given (torchrun waits 30 s; <c>rlhf train</c> finishes its step and writes a checkpoint on SIGTERM, so raise it for steps or saves that take longer).</summary>
    public static readonly TimeSpan DefaultGracePeriod = TimeSpan.FromSeconds(10);

    /// <summary>Global world size.</summary>
    public int WorldSize => checked(NprocPerNode * Nnodes);

    /// <summary>The grace period in effect.</summary>
    public TimeSpan Grace => GracePeriod ?? DefaultGracePeriod;

    /// <summary>Global rank of local worker <paramref name="localRank"/>.</summary>
    public int GlobalRank(int localRank) => NodeRank * NprocPerNode + localRank;

    /// <summary>The torchrun environment of local worker <paramref name="localRank"/> in attempt <paramref name="restart"/> (0 = first start).</summary>
    public IReadOnlyDictionary<string, string> WorkerEnvironment(int localRank, int restart = 0) => new Dictionary<string, string>
    {
        [RestartCountVariable] = restart.ToString(),
        ["TORCHELASTIC_RESTART_COUNT"] = restart.ToString(),
        ["TORCHELASTIC_MAX_RESTARTS"] = MaxRestarts.ToString(),
        ["RANK"] = GlobalRank(localRank).ToString(),
        ["LOCAL_RANK"] = localRank.ToString(),
        ["WORLD_SIZE"] = WorldSize.ToString(),
        ["LOCAL_WORLD_SIZE"] = NprocPerNode.ToString(),
        ["GROUP_RANK"] = NodeRank.ToString(),
        ["NODE_RANK"] = NodeRank.ToString(),
        ["MASTER_ADDR"] = MasterAddr,
        ["MASTER_PORT"] = MasterPort.ToString(),
    };

    /// <summary>
    /// Throws <see cref="ArgumentException"/> with one line naming the option and what it must be: worker and node
    /// counts, the node rank, the port (1–65535), the address (an IP address or a host name that resolves) and the
    /// worker program (an executable file, or a name found on PATH).
    /// </summary>
    public void Validate()
    {
        if (NprocPerNode < 1) throw new ArgumentException($"--nproc-per-node must be at least 1, got {NprocPerNode}");
        if (Nnodes < 1) throw new ArgumentException($"--nnodes must be at least 1, got {Nnodes}");
        if (NodeRank < 0 || NodeRank >= Nnodes)
            throw new ArgumentException($"--node-rank {NodeRank} is outside --nnodes {Nnodes} (node ranks are 0 to {Nnodes - 1})");
        if ((long)NprocPerNode * Nnodes > int.MaxValue)
            throw new ArgumentException($"--nproc-per-node {NprocPerNode} × --nnodes {Nnodes} is too large a world");
        if (MasterPort is < 1 or > 65535) throw new ArgumentException($"--master-port must be a TCP port from 1 to 65535, got {MasterPort}");
        ValidateAddress(MasterAddr);
        if (Command.Count == 0 || string.IsNullOrEmpty(Command[0]))
            throw new ArgumentException("no worker command given (rlhf launch [options] -- <program> [args...])");
        if (Grace < TimeSpan.Zero) throw new ArgumentException($"the grace period must not be negative, got {Grace.TotalSeconds} s");
        if (MaxRestarts is < 0 or > MaxRestartsLimit) throw new ArgumentException($"--max-restarts must be from 0 to {MaxRestartsLimit}, got {MaxRestarts}");
        _ = WorkerProcess.Resolve(Command);
    }

    /// <summary>Throws unless <paramref name="addr"/> is an IP address or a host name that resolves (within a few seconds).</summary>
    public static void ValidateAddress(string addr)
    {
        var host = addr.StartsWith('[') && addr.EndsWith(']') ? addr[1..^1] : addr;
        if (string.IsNullOrWhiteSpace(host)) throw new ArgumentException("--master-addr is empty");
        if (IPAddress.TryParse(host, out var ip))
        {
            // IPAddress.TryParse accepts "1" or "1.2" (inet_aton forms); a dotted address must have four parts.
            if (ip.AddressFamily == AddressFamily.InterNetwork && host.Count(c => c == '.') != 3)
                throw new ArgumentException($"--master-addr '{addr}' is not a valid address (an IPv4 address has four numbers)");
            return;
        }
        if (Uri.CheckHostName(host) != UriHostNameType.Dns || host.Split('.').All(l => l.All(char.IsAsciiDigit)))
            throw new ArgumentException($"--master-addr '{addr}' is not a valid IP address or host name");
        var lookup = Dns.GetHostAddressesAsync(host);
        try
        {
            if (lookup.Wait(TimeSpan.FromSeconds(5)) && lookup.Result.Length == 0)
                throw new ArgumentException($"--master-addr '{addr}' does not resolve to any address");
        }
        catch (AggregateException e) when (e.InnerException is SocketException s)
        {
            throw new ArgumentException($"--master-addr '{addr}' does not resolve: {s.Message}");
        }
    }
}
