using System.Diagnostics;

namespace Rlhf.Engine.Tests;

/// <summary>c10d collectives across real processes over loopback Gloo.</summary>
public class CollectiveTests
{
    [Fact]
    public void Every_collective_is_correct_on_uneven_padded_sizes_in_fp32_and_bf16_across_three_ranks()
    {
        var ws = Cluster.RunOk(3, "collectives", hangGuard: TimeSpan.FromSeconds(90));
        foreach (var w in ws) Assert.Contains($"OK collectives rank {w.Rank}", w.Stdout);
    }

    [Fact]
    public void A_killed_peer_makes_the_survivor_fail_promptly_naming_its_rank_and_the_operation()
    {
        const int timeout = 30;
        var ws = Cluster.Start(2, "peer-dies", [$"timeout={timeout}"]);
        try
        {
            Assert.True(ws[1].WaitForLine("READY", TimeSpan.FromSeconds(60)), Cluster.Describe(ws));
            Thread.Sleep(300); // let rank 0 enter its all-reduce
            var sw = Stopwatch.StartNew();
            ws[1].Kill();
            Assert.True(ws[0].Process.WaitForExit(TimeSpan.FromSeconds(timeout + 10)), "survivor hung\n" + Cluster.Describe(ws));
            ws[0].Process.WaitForExit();
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(timeout + 10));
            Assert.Contains("FAILED", ws[0].Stdout);
            Assert.Equal(0, ws[0].Process.ExitCode); // 0: the error named "rank 0" and "allreduce"
        }
        finally
        {
            foreach (var w in ws) w.Dispose();
        }
    }

    [Fact]
    public void A_silent_peer_makes_the_collective_time_out_with_an_error_naming_rank_and_operation()
    {
        const int timeout = 4;
        var ws = Cluster.Start(2, "peer-hangs", [$"timeout={timeout}", "sleep=40"]);
        try
        {
            Assert.True(ws[0].Process.WaitForExit(TimeSpan.FromSeconds(60)), "rank 0 did not time out\n" + Cluster.Describe(ws));
            ws[0].Process.WaitForExit();
            var line = ws[0].Stdout.Split('\n').FirstOrDefault(l => l.StartsWith("FAILED")) ?? "";
            Assert.True(line.Length > 0, Cluster.Describe(ws));
            var seconds = double.Parse(line.Split(' ')[2].TrimEnd('s', ':'), System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(seconds, timeout - 1, timeout + 15);
            Assert.Equal(0, ws[0].Process.ExitCode);
        }
        finally
        {
            foreach (var w in ws) w.Dispose();
        }
    }
}
