using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Rlhf.Engine.Tests;

/// <summary>One worker OS process with its captured output.</summary>
public sealed class WorkerProcess : IDisposable
{
    private readonly StringBuilder stdout = new();
    private readonly StringBuilder stderr = new();
    private readonly BlockingCollection<string> lines = new();

    /// <summary>The process.</summary>
    public Process Process { get; }
    /// <summary>The worker's rank.</summary>
    public int Rank { get; }

    internal WorkerProcess(ProcessStartInfo psi, int rank)
    {
        Rank = rank;
        Process = new Process { StartInfo = psi };
        Process.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (stdout) stdout.AppendLine(e.Data); lines.Add(e.Data); };
        Process.ErrorDataReceived += (_, e) => { if (e.Data is null) return; lock (stderr) stderr.AppendLine(e.Data); };
        Process.Start();
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    /// <summary>Everything written to stdout so far.</summary>
    public string Stdout { get { lock (stdout) return stdout.ToString(); } }
    /// <summary>Everything written to stderr so far.</summary>
    public string Stderr { get { lock (stderr) return stderr.ToString(); } }

    /// <summary>Waits for a stdout line containing <paramref name="text"/>; false after <paramref name="timeout"/>.</summary>
    public bool WaitForLine(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (lines.TryTake(out var l, TimeSpan.FromMilliseconds(200)) && l.Contains(text)) return true;
            if (Process.HasExited && lines.Count == 0) return false;
        }
        return false;
    }

    /// <summary>SIGKILLs the process tree.</summary>
    public void Kill()
    {
        try { if (!Process.HasExited) Process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        Process.Dispose();
    }
}

/// <summary>Starts the ranks of one loopback job as separate OS processes, with a hang guard.</summary>
public static class Cluster
{
    /// <summary>The worker assembly next to the tests.</summary>
    public static string WorkerDll => Path.Combine(AppContext.BaseDirectory, "Rlhf.Engine.Worker.dll");

    /// <summary>The rlhf CLI assembly next to the tests.</summary>
    public static string RlhfDll => Path.Combine(AppContext.BaseDirectory, "rlhf.dll");

    /// <summary>A free TCP port on 127.0.0.1.</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>A <c>dotnet</c> start info with the test environment (one intra-op thread: the machine is small).</summary>
    public static ProcessStartInfo Dotnet(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["RLHF_NUM_THREADS"] = "1";
        psi.Environment["DOTNET_TieredPGO"] = "0";
        foreach (var k in new[] { "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT" }) psi.Environment.Remove(k);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>Starts <paramref name="worldSize"/> workers running <paramref name="scenario"/> over a fresh loopback port.</summary>
    public static WorkerProcess[] Start(int worldSize, string scenario, IEnumerable<string>? args = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var port = FreePort();
        var a = new List<string> { WorkerDll, scenario };
        if (args is not null) a.AddRange(args);
        return Enumerable.Range(0, worldSize).Select(r =>
        {
            var e = new Dictionary<string, string>
            {
                ["RANK"] = r.ToString(), ["LOCAL_RANK"] = r.ToString(), ["WORLD_SIZE"] = worldSize.ToString(),
                ["LOCAL_WORLD_SIZE"] = worldSize.ToString(), ["MASTER_ADDR"] = "127.0.0.1", ["MASTER_PORT"] = port.ToString(),
            };
            if (env is not null) foreach (var (k, v) in env) e[k] = v;
            return new WorkerProcess(Dotnet(a, e), r);
        }).ToArray();
    }

    /// <summary>Waits for every worker; on the hang guard kills them all and fails with their output.</summary>
    public static void WaitAll(WorkerProcess[] ws, TimeSpan hangGuard)
    {
        var deadline = DateTime.UtcNow + hangGuard;
        foreach (var w in ws)
        {
            var left = deadline - DateTime.UtcNow;
            if (left < TimeSpan.Zero || !w.Process.WaitForExit(left))
            {
                foreach (var x in ws) x.Kill();
                Assert.Fail($"hang guard: workers still running after {hangGuard.TotalSeconds}s\n{Describe(ws)}");
            }
            w.Process.WaitForExit(); // drain output
        }
    }

    /// <summary>Runs a scenario to completion and asserts every rank exited 0.</summary>
    public static WorkerProcess[] RunOk(int worldSize, string scenario, IEnumerable<string>? args = null, TimeSpan? hangGuard = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var ws = Start(worldSize, scenario, args, env);
        try
        {
            WaitAll(ws, hangGuard ?? TimeSpan.FromSeconds(120));
            foreach (var w in ws)
                Assert.True(w.Process.ExitCode == 0, $"rank {w.Rank} exited {w.Process.ExitCode}\n{Describe(ws)}");
            return ws;
        }
        finally
        {
            foreach (var w in ws) w.Kill();
        }
    }

    /// <summary>All workers' output, for failure messages.</summary>
    public static string Describe(IEnumerable<WorkerProcess> ws) =>
        string.Join("\n", ws.Select(w => $"--- rank {w.Rank} (exit {(w.Process.HasExited ? w.Process.ExitCode.ToString() : "running")})\n{w.Stdout}{w.Stderr}"));
}
