using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

/// <summary>Where a process's rank and rendezvous address came from.</summary>
public enum EnvironmentSource
{
    /// <summary>No variables: a single process (rank 0 of 1).</summary>
    Single,
    /// <summary>torchrun / <c>rlhf launch</c> / Kubeflow PyTorchJob: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.</summary>
    Torchrun,
    /// <summary>Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODELIST.</summary>
    Slurm,
    /// <summary>OpenMPI (mpirun): OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK.</summary>
    OpenMpi,
}

/// <summary>
/// The torchrun environment contract of one process: its global and local rank, the world size,
/// and where rank 0 hosts the TCPStore. Read from torchrun's variables, falling back to Slurm's
/// and OpenMPI's (MASTER_ADDR / MASTER_PORT still win when set).
/// </summary>
public sealed record DistributedEnvironment(
    int Rank, int LocalRank, int WorldSize, int LocalWorldSize, string MasterAddr, int MasterPort, EnvironmentSource Source)
{
    /// <summary>torchrun's default rendezvous port.</summary>
    public const int DefaultPort = 29500;

    /// <summary>True for world size 1.</summary>
    public bool IsSingle => WorldSize == 1;

    /// <summary>The node index (global rank ÷ local world size).</summary>
    public int NodeRank => LocalWorldSize > 0 ? Rank / LocalWorldSize : 0;

    /// <summary>Reads the process environment.</summary>
    public static DistributedEnvironment FromProcess()
    {
        var d = new Dictionary<string, string?>();
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables()) d[(string)e.Key] = e.Value as string;
        return From(d);
    }

    /// <summary>Reads an environment given as a dictionary (pure: tests pass their own).</summary>
    public static DistributedEnvironment From(IReadOnlyDictionary<string, string?> env)
    {
        string? Get(string k) => env.TryGetValue(k, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;
        int Int(string k, int fallback)
        {
            var v = Get(k);
            if (v is null) return fallback;
            return int.TryParse(v, out var i) ? i : throw new ArgumentException($"environment variable {k}={v} is not an integer");
        }

        EnvironmentSource src;
        int rank, local, world, localWorld;
        string? addr = Get("MASTER_ADDR");
        if (Get("RANK") is not null || Get("WORLD_SIZE") is not null)
        {
            src = EnvironmentSource.Torchrun;
            rank = Int("RANK", 0);
            world = Int("WORLD_SIZE", 1);
            local = Int("LOCAL_RANK", rank);
            localWorld = Int("LOCAL_WORLD_SIZE", world);
        }
        else if (Get("SLURM_PROCID") is not null)
        {
            src = EnvironmentSource.Slurm;
            rank = Int("SLURM_PROCID", 0);
            world = Int("SLURM_NTASKS", 1);
            local = Int("SLURM_LOCALID", 0);
            localWorld = Get("SLURM_NTASKS_PER_NODE") is { } tpn && int.TryParse(tpn.Split('(')[0], out var t) ? t : Math.Max(1, world / Math.Max(1, Int("SLURM_NNODES", 1)));
            addr ??= Get("SLURM_NODELIST") is { } nl ? FirstSlurmHost(nl) : Get("SLURM_JOB_NODELIST") is { } jl ? FirstSlurmHost(jl) : null;
        }
        else if (Get("OMPI_COMM_WORLD_RANK") is not null)
        {
            src = EnvironmentSource.OpenMpi;
            rank = Int("OMPI_COMM_WORLD_RANK", 0);
            world = Int("OMPI_COMM_WORLD_SIZE", 1);
            local = Int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
            localWorld = Int("OMPI_COMM_WORLD_LOCAL_SIZE", world);
        }
        else
        {
            src = EnvironmentSource.Single;
            rank = 0; world = 1; local = 0; localWorld = 1;
        }

        if (world < 1) throw new ArgumentException($"world size {world} must be at least 1 ({src})");
        if (rank < 0 || rank >= world) throw new ArgumentException($"rank {rank} is outside world size {world} ({src})");
        if (local < 0 || localWorld < 1 || local >= localWorld) throw new ArgumentException($"local rank {local} is outside local world size {localWorld} ({src})");
        if (addr is null && world > 1 && src == EnvironmentSource.Torchrun)
            throw new ArgumentException("MASTER_ADDR is not set: torchrun-style rendezvous needs MASTER_ADDR and MASTER_PORT");
        return new DistributedEnvironment(rank, local, world, localWorld, addr ?? "127.0.0.1", Int("MASTER_PORT", DefaultPort), src);
    }

    /// <summary>The first host of a Slurm node list: <c>gpu[03-05,07],cpu1</c> → <c>gpu03</c>.</summary>
    public static string FirstSlurmHost(string nodeList)
    {
        var s = nodeList.Trim();
        var bracket = s.IndexOf('[');
        var comma = s.IndexOf(',');
        if (bracket < 0 || (comma >= 0 && comma < bracket)) return comma >= 0 ? s[..comma] : s;
        var prefix = s[..bracket];
        var inner = s[(bracket + 1)..s.IndexOf(']', bracket)];
        var first = inner.Split(',')[0].Split('-')[0];
        return prefix + first;
    }

    /// <summary>torchrun's variable telling workers that its agent hosts the store at MASTER_ADDR:MASTER_PORT ("True").</summary>
    public const string AgentStoreVariable = "TORCHELASTIC_USE_AGENT_STORE";

    /// <summary>
    /// Rendezvous: rank 0 hosts a <see cref="TcpStoreServer"/> at MasterAddr:MasterPort, listening only on the addresses
    /// MasterAddr names (or <see cref="TcpStoreServer.BindVariable"/>'s), every rank joins it as a c10d TCPStore client through
    /// <c>PrefixStore("default_pg")</c>, and a Gloo (or NCCL) group is created with <paramref name="timeout"/>. The group owns
    /// the server. Under torchrun with <see cref="AgentStoreVariable"/> its agent hosts the store and nobody else does; keys then
    /// live under <c>/worker/attempt_N</c> as torch.distributed's own workers put them (torch/distributed/rendezvous.py).
    /// </summary>
    public ProcessGroup InitProcessGroup(TimeSpan timeout, Backend backend = Backend.Gloo)
    {
        var env = Environment.GetEnvironmentVariables();
        string? Var(string k) => env[k] as string;
        var agentStore = Var(AgentStoreVariable) == "True";
        // c10d's own server would listen on every interface (TCPStoreOptions has no bind address): host ours instead.
        var server = Rank == 0 && !agentStore
            ? TcpStoreServer.Start(TcpStoreServer.BindAddresses(MasterAddr, Var(TcpStoreServer.BindVariable)), MasterPort)
            : null;
        try
        {
            var tcp = Store.Tcp(MasterAddr, MasterPort, isServer: false, WorldSize, timeout);
            var job = agentStore ? tcp.WithPrefix($"/worker/attempt_{Var("TORCHELASTIC_RESTART_COUNT") ?? "0"}") : tcp;
            var store = job.WithPrefix("default_pg");
            // This rank's own address for Gloo: loopback on one node, the machine's name across nodes.
            var host = Var("RLHF_GLOO_HOST") ?? (MasterAddr is "127.0.0.1" or "localhost" ? "127.0.0.1" : System.Net.Dns.GetHostName());
            return backend == Backend.Gloo
                ? ProcessGroup.Gloo(store, Rank, WorldSize, host, timeout, server)
                : ProcessGroup.Nccl(store, Rank, WorldSize, timeout, server);
        }
        catch
        {
            server?.Dispose();
            throw;
        }
    }
}
