using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Rlhf.Cli.Tests;

/// <summary><c>rlhf launch</c> as a real process tree with small bash workers: failures, signals, SIGKILL of the launcher, huge lines.</summary>
public class LauncherProcessTests
{
    private static string Worker(string name) => Path.Combine(AppContext.BaseDirectory, "Workers", name);

    /// <summary>A running launcher (outside any rendezvous environment) with its output collected.</summary>
    private sealed class Launch(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
        : RlhfProcess("the launcher", ["launch", .. args],
            ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PET_NNODES", "PET_NPROC_PER_NODE", "SLURM_NNODES", "SLURM_NODEID", "NODE_RANK"], env)
    {
        // Waits until stdout holds `count` matches of `pattern`.
        public List<int> WaitForPids(string pattern, int count, TimeSpan guard)
        {
            var deadline = DateTime.UtcNow + guard;
            while (DateTime.UtcNow < deadline)
            {
                var pids = Regex.Matches(Out, pattern).Select(m => int.Parse(m.Groups[1].Value)).ToList();
                if (pids.Count >= count) return pids;
                if (P.HasExited) break;
                Thread.Sleep(50);
            }
            Assert.Fail($"the workers did not report {count} pids\n{Out}\n{Err}");
            return [];
        }
    }

    private static bool Alive(int pid)
    {
        // A zombie (state Z) has ended; only its parent has not reaped it yet.
        var stat = $"/proc/{pid}/stat";
        try { return File.Exists(stat) && File.ReadAllText(stat).Split(") ").Last().Split(' ')[0] != "Z"; }
        catch (IOException) { return false; }
    }

    private static void AssertAllGone(IEnumerable<int> pids, TimeSpan within, string context)
    {
        var deadline = DateTime.UtcNow + within;
        var left = pids.ToList();
        while (DateTime.UtcNow < deadline && (left = left.Where(Alive).ToList()).Count > 0) Thread.Sleep(50);
        foreach (var p in left) try { Process.GetProcessById(p).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        Assert.True(left.Count == 0, $"processes {string.Join(", ", left)} outlived the launcher\n{context}");
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString()]);
        kill.WaitForExit();
    }

    [Fact]
    public void The_rank_that_failed_first_is_reported_and_the_others_are_stopped_with_their_children()
    {
        using var l = new Launch(["--nproc-per-node", "3", "--", "bash", Worker("fail.sh")],
            new Dictionary<string, string> { ["FAIL_RANK"] = "1", ["FAIL_CODE"] = "7", ["FAIL_DELAY"] = "5" });
        var children = l.WaitForPids(@"child (\d+)", 2, TimeSpan.FromSeconds(30));
        var code = l.Wait(TimeSpan.FromSeconds(30));
        Assert.True(code == 7, $"exit {code}\n{l.Out}\n{l.Err}");
        Assert.Contains("[rank 1] rank 1 failing on purpose", l.Err);
        var report = l.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
        Assert.Equal("rlhf launch: rank 1 failed first (exit code 7); stopped ranks 0, 2, still running at the time", report);
        var pids = Regex.Matches(l.Out, @"pid (\d+)").Select(m => int.Parse(m.Groups[1].Value));
        AssertAllGone(pids.Concat(children), TimeSpan.FromSeconds(5), l.Out + l.Err);
    }

    [Fact]
    public void A_hung_rank_is_listed_as_still_running_not_as_the_failure()
    {
        // Rank 0 gives up (as a rank does when a collective times out) while rank 1 hangs.
        using var l = new Launch(["--nproc-per-node", "2", "--grace-period", "1", "--", "bash", Worker("fail.sh")],
            new Dictionary<string, string> { ["FAIL_RANK"] = "0", ["FAIL_CODE"] = "1", ["FAIL_DELAY"] = "5" });
        var code = l.Wait(TimeSpan.FromSeconds(30));
        Assert.Equal(1, code);
        Assert.EndsWith("rlhf launch: rank 0 failed first (exit code 1); stopped rank 1, still running at the time\n", l.Err);
        Assert.DoesNotContain("rank 1 failed", l.Err);
    }

    [Fact]
    public void Sigkill_of_the_launcher_leaves_no_worker_and_no_worker_child_running()
    {
        using var l = new Launch(["--nproc-per-node", "2", "--", "bash", Worker("wait.sh")]);
        var pids = l.WaitForPids(@"pid (\d+) child", 2, TimeSpan.FromSeconds(30));
        var children = Regex.Matches(l.Out, @"child (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.All(pids.Concat(children), p => Assert.True(Alive(p), $"pid {p} is not running before the kill"));
        l.P.Kill(); // SIGKILL to the launcher alone: it can do nothing about it
        l.P.WaitForExit();
        AssertAllGone(pids.Concat(children), TimeSpan.FromSeconds(10), l.Out + l.Err);
    }

    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public void A_signal_to_the_launcher_is_forwarded_to_every_worker(string signal, int expectedCode)
    {
        using var l = new Launch(["--nproc-per-node", "2", "--", "bash", Worker("wait.sh")]);
        var pids = l.WaitForPids(@"pid (\d+) child", 2, TimeSpan.FromSeconds(30));
        Signal(l.P.Id, signal);
        var code = l.Wait(TimeSpan.FromSeconds(30));
        Assert.True(code == expectedCode, $"exit {code}\n{l.Out}\n{l.Err}");
        Assert.Contains($"[rank 0] rank 0 got {signal}", l.Out);
        Assert.Contains($"[rank 1] rank 1 got {signal}", l.Out);
        Assert.EndsWith($"rlhf launch: received SIG{signal}, forwarded it to the workers; stopped ranks 0, 1, still running at the time\n", l.Err);
        AssertAllGone(pids, TimeSpan.FromSeconds(5), l.Out + l.Err);
    }

    [Fact]
    public void Workers_that_ignore_sigterm_are_killed_after_the_grace_period()
    {
        using var l = new Launch(["--nproc-per-node", "2", "--grace-period", "1", "--", "bash", Worker("wait.sh")],
            new Dictionary<string, string> { ["IGNORE_TERM"] = "1" });
        var pids = l.WaitForPids(@"pid (\d+) child", 2, TimeSpan.FromSeconds(30));
        var sw = Stopwatch.StartNew();
        Signal(l.P.Id, "TERM");
        var code = l.Wait(TimeSpan.FromSeconds(30));
        Assert.Equal(143, code);
        Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(0.9), "the launcher did not wait the grace period before SIGKILL");
        AssertAllGone(pids, TimeSpan.FromSeconds(5), l.Out + l.Err);
    }

    [Fact]
    public void One_enormous_line_is_forwarded_in_bounded_pieces_while_the_other_ranks_keep_flowing()
    {
        const int big = 5_000_000;
        using var l = new Launch(["--nproc-per-node", "2", "--", "bash", Worker("bigline.sh")],
            new Dictionary<string, string> { ["BIG_BYTES"] = big.ToString() });
        var code = l.Wait(TimeSpan.FromSeconds(60));
        Assert.True(code == 0, l.Err);
        var lines = l.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var pieces = lines.Where(x => x.StartsWith("[rank 0] x")).ToList();
        Assert.Equal(big, pieces.Sum(p => p.Length - "[rank 0] ".Length));
        Assert.All(pieces, p => Assert.True(p.Length - "[rank 0] ".Length <= 64 * 1024, $"a piece of {p.Length} chars"));
        Assert.True(pieces.Count >= big / (64 * 1024), $"{pieces.Count} pieces");
        Assert.Contains("[rank 0] rank 0 done", lines);
        for (var i = 1; i <= 3; i++) Assert.Contains($"[rank 1] rank 1 line {i}", lines);
    }

    [Fact]
    public void Workers_get_the_torchrun_environment()
    {
        var script = Path.Combine(CommandErrorTests.TempDir(), "env.sh");
        File.WriteAllText(script, "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $NODE_RANK $MASTER_ADDR $MASTER_PORT\"\n");
        using var l = new Launch(["--nproc-per-node", "2", "--nnodes", "3", "--node-rank", "1", "--master-addr", "localhost", "--master-port", "29999", "--", "bash", script]);
        Assert.Equal(0, l.Wait(TimeSpan.FromSeconds(30)));
        Assert.Contains("[rank 2] 2 0 6 2 1 localhost 29999", l.Out);
        Assert.Contains("[rank 3] 3 1 6 2 1 localhost 29999", l.Out);
    }
}
