using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Rlhf.Shell.Engine;

/// <summary>What <c>rlhf launch</c> starts on this node: world layout plus the worker command line.</summary>
/// <param name="NprocPerNode">Workers on this node.</param>
/// <param name="Nnodes">Nodes in the job.</param>
/// <param name="NodeRank">Index of this node.</param>
/// <param name="MasterAddr">Address of the node hosting rank 0's TCPStore.</param>
/// <param name="MasterPort">Its port.</param>
/// <param name="Command">Program and arguments of every worker (<c>rlhf</c> means this very executable).</param>
/// <param name="PrefixOutput">Prefix every output line with <c>[rank r]</c>.</param>
public sealed record LaunchSpec(int NprocPerNode, int Nnodes, int NodeRank, string MasterAddr, int MasterPort, IReadOnlyList<string> Command, bool PrefixOutput = true)
{
    /// <summary>Global world size.</summary>
    public int WorldSize => NprocPerNode * Nnodes;

    /// <summary>The torchrun environment of local worker <paramref name="localRank"/>.</summary>
    public IReadOnlyDictionary<string, string> WorkerEnvironment(int localRank) => new Dictionary<string, string>
    {
        ["RANK"] = (NodeRank * NprocPerNode + localRank).ToString(),
        ["LOCAL_RANK"] = localRank.ToString(),
        ["WORLD_SIZE"] = WorldSize.ToString(),
        ["LOCAL_WORLD_SIZE"] = NprocPerNode.ToString(),
        ["GROUP_RANK"] = NodeRank.ToString(),
        ["NODE_RANK"] = NodeRank.ToString(),
        ["MASTER_ADDR"] = MasterAddr,
        ["MASTER_PORT"] = MasterPort.ToString(),
    };
}

/// <summary>
/// Starts the workers of one node with the torchrun environment, prefixes their output with the rank,
/// and when one fails stops the rest (whole process trees) and reports its exit code.
/// </summary>
public sealed class Launcher
{
    private readonly LaunchSpec spec;
    private readonly TextWriter stdout;
    private readonly TextWriter stderr;
    private readonly object writeLock = new();

    /// <summary>A launcher writing worker output to the given writers.</summary>
    public Launcher(LaunchSpec spec, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        if (spec.NprocPerNode < 1) throw new ArgumentException($"--nproc-per-node must be at least 1 (got {spec.NprocPerNode})");
        if (spec.Nnodes < 1 || spec.NodeRank < 0 || spec.NodeRank >= spec.Nnodes)
            throw new ArgumentException($"--node-rank {spec.NodeRank} is outside --nnodes {spec.Nnodes}");
        if (spec.Command.Count == 0) throw new ArgumentException("no worker command given (rlhf launch ... -- <command>)");
        this.spec = spec;
        this.stdout = stdout ?? Console.Out;
        this.stderr = stderr ?? Console.Error;
    }

    /// <summary>Resolves the worker program: <c>rlhf</c> is this executable (through <c>dotnet</c> when run as a dll).</summary>
    public static (string File, List<string> Args) Resolve(IReadOnlyList<string> command)
    {
        var args = command.Skip(1).ToList();
        if (command[0] != "rlhf") return (command[0], args);
        var self = Environment.ProcessPath ?? "rlhf";
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            var dll = typeof(Launcher).Assembly.Location;
            args.Insert(0, dll);
        }
        return (self, args);
    }

    /// <summary>Runs every local worker to completion; returns 0, or the exit code of the first worker that failed.</summary>
    public int Run(CancellationToken cancel = default)
    {
        var (file, args) = Resolve(spec.Command);
        var procs = new Process?[spec.NprocPerNode];
        var exited = new System.Collections.Concurrent.BlockingCollection<(int Rank, int Code)>();
        using var signals = new SignalGuard(() => KillAll(procs));
        try
        {
            for (var local = 0; local < spec.NprocPerNode; local++)
            {
                var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in args) psi.ArgumentList.Add(a);
                foreach (var (k, v) in spec.WorkerEnvironment(local)) psi.Environment[k] = v;
                var rank = spec.NodeRank * spec.NprocPerNode + local;
                var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
                var prefix = spec.PrefixOutput ? $"[rank {rank}] " : "";
                p.OutputDataReceived += (_, e) => { if (e.Data is not null) Write(stdout, prefix + e.Data); };
                p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Write(stderr, prefix + e.Data); };
                if (!p.Start()) throw new InvalidOperationException($"could not start worker {rank}: {file}");
                procs[local] = p;
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                var captured = p;
                _ = Task.Run(() =>
                {
                    captured.WaitForExit(); // also drains the redirected streams
                    exited.Add((rank, captured.ExitCode));
                });
            }

            var remaining = spec.NprocPerNode;
            while (remaining > 0)
            {
                (int Rank, int Code) e;
                try { e = exited.Take(cancel); }
                catch (OperationCanceledException) { KillAll(procs); return 130; }
                remaining--;
                if (e.Code != 0)
                {
                    Write(stderr, $"rlhf launch: worker rank {e.Rank} exited with code {e.Code}; stopping the other workers");
                    KillAll(procs);
                    return e.Code;
                }
            }
            return 0;
        }
        finally
        {
            KillAll(procs);
            foreach (var p in procs) p?.Dispose();
        }
    }

    private void Write(TextWriter w, string line)
    {
        lock (writeLock) { w.WriteLine(line); w.Flush(); }
    }

    private static void KillAll(Process?[] procs)
    {
        foreach (var p in procs)
        {
            if (p is null) continue;
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
        }
        foreach (var p in procs)
        {
            try { p?.WaitForExit(10_000); } catch (InvalidOperationException) { }
        }
    }

    /// <summary>On SIGINT/SIGTERM, stops the workers before this process exits.</summary>
    private sealed class SignalGuard : IDisposable
    {
        private readonly List<PosixSignalRegistration> regs = [];

        public SignalGuard(Action stop)
        {
            foreach (var s in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
                regs.Add(PosixSignalRegistration.Create(s, ctx => { stop(); ctx.Cancel = false; }));
        }

        public void Dispose()
        {
            foreach (var r in regs) r.Dispose();
        }
    }
}
