using System.CommandLine;
using Rlhf.Shell.Engine;

namespace Rlhf.Cli;

/// <summary><c>rlhf launch</c>: a torchrun-compatible launcher for the workers of one node.</summary>
public static class LaunchCommand
{
    /// <summary>Builds the command. Unset options fall back to Slurm / PyTorchJob variables, then to one local node.</summary>
    public static Command Build()
    {
        var nproc = new Option<int?>("--nproc-per-node") { Description = "workers on this node (default: PET_NPROC_PER_NODE or 1)" };
        var nnodes = new Option<int?>("--nnodes") { Description = "nodes in the job (default: SLURM_NNODES, PET_NNODES, or 1)" };
        var nodeRank = new Option<int?>("--node-rank") { Description = "index of this node (default: SLURM_NODEID, PET_NODE_RANK, NODE_RANK, or 0)" };
        var addr = new Option<string?>("--master-addr") { Description = "address of rank 0's node (default: MASTER_ADDR, first host of SLURM_NODELIST, or 127.0.0.1)" };
        var port = new Option<int?>("--master-port") { Description = $"rendezvous port (default: MASTER_PORT or {DistributedEnvironment.DefaultPort})" };
        var grace = new Option<double?>("--grace-period") { Description = $"seconds stopped workers get between SIGTERM and SIGKILL (default {LaunchSpec.DefaultGracePeriod.TotalSeconds:0})" };
        var restarts = new Option<int>("--max-restarts")
        {
            Description = $"when a worker fails, stop every worker and start them all again, up to this many times (torchrun's --max-restarts; default 0). Workers see {LaunchSpec.RestartCountVariable} and TORCHELASTIC_RESTART_COUNT; rlhf train … --resume continues from the last checkpoint",
        };
        var noPrefix = new Option<bool>("--no-prefix") { Description = "do not prefix worker output with [rank r]" };
        var command = new Argument<string[]>("command") { Description = "worker command after --; 'rlhf' stands for this executable", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("launch", "Start N workers per node with the torchrun environment; stop them all when one fails (and restart them all, with --max-restarts).")
        {
            nproc, nnodes, nodeRank, addr, port, grace, restarts, noPrefix, command,
        };
        cmd.SetAction(r =>
        {
            var g = r.GetValue(grace);
            if (g is { } s && (double.IsNaN(s) || s < 0 || s > 86_400)) throw new ArgumentException($"--grace-period must be from 0 to 86400 seconds, got {s}");
            var spec = new LaunchSpec(
                r.GetValue(nproc) ?? EnvInt("PET_NPROC_PER_NODE") ?? 1,
                r.GetValue(nnodes) ?? EnvInt("SLURM_NNODES") ?? EnvInt("PET_NNODES") ?? 1,
                r.GetValue(nodeRank) ?? EnvInt("SLURM_NODEID") ?? EnvInt("PET_NODE_RANK") ?? EnvInt("NODE_RANK") ?? 0,
                r.GetValue(addr) ?? Env("MASTER_ADDR") ?? (Env("SLURM_NODELIST") is { } nl ? DistributedEnvironment.FirstSlurmHost(nl) : "127.0.0.1"),
                r.GetValue(port) ?? EnvInt("MASTER_PORT") ?? DistributedEnvironment.DefaultPort,
                r.GetValue(command) ?? [],
                !r.GetValue(noPrefix),
                g is { } sec ? TimeSpan.FromSeconds(sec) : null,
                r.GetValue(restarts));
            return new Launcher(spec, r.InvocationConfiguration.Output, r.InvocationConfiguration.Error).Run();
        });
        return cmd;
    }

    private static string? Env(string k) => Environment.GetEnvironmentVariable(k) is { Length: > 0 } v ? v : null;

    // Slurm writes counts like "2(x3)"; the number before '(' is the value. Anything else that is not a number is an error.
    private static int? EnvInt(string k) =>
        Env(k) is not { } v ? null :
        int.TryParse(v.Split('(')[0].Trim(), out var i) ? i :
        throw new ArgumentException($"environment variable {k}={v} is not an integer");
}
