using System.Diagnostics;
using Rlhf.Shell.Engine;

namespace Rlhf.Engine.Worker;

internal static partial class Scenarios
{
    /// <summary>
    /// A run that survives restarts under <c>rlhf launch --max-restarts</c>: trains to <c>steps</c> optimizer steps with a
    /// checkpoint in <c>dir</c> after each, resuming from <c>dir/latest</c> when there is one; in the first attempt
    /// (<c>RLHF_RESTART_COUNT=0</c>) rank <c>die</c> SIGKILLs itself after training step <c>at</c>, before saving it.
    /// </summary>
    private static int RestartRun(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var rank = pg?.Rank ?? 0;
        var data = Dataset();
        var dir = kv["dir"];
        var steps = int.Parse(kv.GetValueOrDefault("steps", "8"));
        var dieRank = int.Parse(kv.GetValueOrDefault("die", "-1"));
        var at = int.Parse(kv.GetValueOrDefault("at", "4"));
        var restart = int.Parse(Environment.GetEnvironmentVariable(LaunchSpec.RestartCountVariable) ?? "0");
        using var e = Engine(TestMlp.Tiny(), pg, int.Parse(kv.GetValueOrDefault("stage", "2")), false, false, 4 / ws, 1, false);
        if (File.Exists(Path.Combine(dir, Checkpoint.LatestFile)))
            Console.WriteLine($"resumed {e.LoadCheckpoint(dir)} at restart {restart}");
        while (e.GlobalSteps < steps)
        {
            Train(e, data, 1);
            if (restart == 0 && rank == dieRank && e.GlobalSteps == at)
            {
                Console.WriteLine($"killing myself after step {at}");
                Console.Out.Flush();
                Process.GetCurrentProcess().Kill();
            }
            e.SaveCheckpoint(dir);
        }
        WriteResult(pg, kv, new { weights = Weights(e), steps = e.GlobalSteps, restart });
        Console.WriteLine($"OK restart rank {rank} of {ws} at restart {restart}");
        return 0;
    }
}
