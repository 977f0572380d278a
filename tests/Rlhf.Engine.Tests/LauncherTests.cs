using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Rlhf.Engine.Tests;

/// <summary><c>rlhf launch</c> as a real process tree: environment, prefixed output, exit codes, no orphans.</summary>
public class LauncherTests
{
    private static (int Code, string Out, string Err) Launch(int nproc, int port, params string[] workerArgs) => Launch(nproc, port, [], workerArgs);

    private static (int Code, string Out, string Err) Launch(int nproc, int port, string[] launcherOptions, params string[] workerArgs)
    {
        var args = new List<string> { Cluster.RlhfDll, "launch", "--nproc-per-node", nproc.ToString(), "--master-addr", "127.0.0.1", "--master-port", port.ToString() };
        args.AddRange(launcherOptions);
        args.AddRange(["--", "dotnet", Cluster.WorkerDll]);
        args.AddRange(workerArgs);
        using var p = new Process { StartInfo = Cluster.Dotnet(args) };
        var o = new System.Text.StringBuilder();
        var e = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, d) => { if (d.Data is not null) lock (o) o.AppendLine(d.Data); };
        p.ErrorDataReceived += (_, d) => { if (d.Data is not null) lock (e) e.AppendLine(d.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"hang guard: launcher still running\n{o}\n{e}");
        }
        p.WaitForExit();
        return (p.ExitCode, o.ToString(), e.ToString());
    }

    private static int[] Pids(string output) =>
        Regex.Matches(output, @"pid (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToArray();

    private static bool Alive(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    [Fact]
    public void Workers_get_the_torchrun_environment_and_rank_prefixed_output_and_success_exits_zero()
    {
        var port = Cluster.FreePort();
        var (code, output, err) = Launch(3, port, "exit");
        Assert.True(code == 0, output + err);
        for (var r = 0; r < 3; r++)
            Assert.Contains($"[rank {r}] hello from rank {r} of 3 local {r}/3 at 127.0.0.1:{port}", output);
    }

    [Fact]
    public void The_rendezvous_store_listens_only_on_the_master_address()
    {
        // c10d's own TCPStore server would show here as 0.0.0.0:port and [::]:port.
        var port = Cluster.FreePort();
        var (code, output, err) = Launch(2, port, "store-binding");
        Assert.True(code == 0, output + err);
        Assert.Contains("[rank 1] OK store-binding rank 1", output);
        var listening = Regex.Matches(output, @"\[rank 0\] LISTEN (\S+)").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal([$"127.0.0.1:{port}"], listening);
        var throughOthers = Regex.Matches(output, @"\[rank 0\] CONNECT (\S+) (\w+)").Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();
        Assert.All(throughOthers, c => Assert.True(c.Item2 == "refused", $"the store accepted a connection through {c.Item1}"));
    }

    [Fact]
    public void A_failing_worker_stops_the_others_and_its_exit_code_propagates()
    {
        var sw = Stopwatch.StartNew();
        var (code, output, err) = Launch(3, Cluster.FreePort(), "exit", "rank=1", "code=7", "delay=1", "sleep=120");
        Assert.True(code == 7, $"exit {code}\n{output}\n{err}");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(45), "the launcher waited for the sleeping workers instead of stopping them");
        Assert.Contains("[rank 1] rank 1 failing on purpose", err);
        Assert.Contains("rlhf launch: rank 1 failed first (exit code 7); stopped ranks 0, 2, still running at the time", err);
        var pids = Pids(output);
        Assert.Equal(3, pids.Length);
        Thread.Sleep(200);
        Assert.All(pids, pid => Assert.False(Alive(pid), $"worker pid {pid} outlived the launcher"));
    }

    private static string WeightsOf(string resultFile) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(resultFile)).RootElement.GetProperty("weights").GetRawText();

    [Fact]
    public void With_max_restarts_a_worker_that_kills_itself_restarts_every_worker_and_the_run_ends_with_the_uninterrupted_weights()
    {
        var root = Path.Combine(Path.GetTempPath(), "rlhf-restart-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        try
        {
            var (code, output, err) = Launch(2, Cluster.FreePort(), "restart", $"dir={Path.Combine(root, "ref")}", $"out={Path.Combine(root, "ref.json")}");
            Assert.True(code == 0, output + err);

            // Without restarts the run fails with the worker's death.
            (code, output, err) = Launch(2, Cluster.FreePort(), "restart", $"dir={Path.Combine(root, "once")}", "die=1", "at=4");
            Assert.True(code == 137, $"exit {code}\n{output}\n{err}");
            Assert.DoesNotContain("restarting", err);

            (code, output, err) = Launch(2, Cluster.FreePort(), ["--max-restarts", "2"], "restart", $"dir={Path.Combine(root, "run")}", $"out={Path.Combine(root, "run.json")}", "die=1", "at=4");
            Assert.True(code == 0, $"exit {code}\n{output}\n{err}");
            Assert.Contains("[rank 1] killing myself after step 4", output);
            Assert.Contains("rlhf launch: rank 1 failed first (exit code 137, killed by SIGKILL); stopped rank 0, still running at the time", err);
            Assert.Contains("rlhf launch: restarting all 2 workers (restart 1 of 2, RLHF_RESTART_COUNT=1, port ", err);
            Assert.DoesNotContain("restart 2 of 2", err);
            // Both ranks resumed from the checkpoint of step 3 (step 4 was trained but not saved), and finished.
            Assert.Contains("[rank 0] resumed global_step3 at restart 1", output);
            Assert.Contains("[rank 1] resumed global_step3 at restart 1", output);
            Assert.Contains("[rank 0] OK restart rank 0 of 2 at restart 1", output);
            Assert.Equal(WeightsOf(Path.Combine(root, "ref.json")), WeightsOf(Path.Combine(root, "run.json")));
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
