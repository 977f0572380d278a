using System.CommandLine;
using System.Globalization;
using Rlhf.Shell.Telemetry;

namespace Rlhf.Cli;

/// <summary><c>rlhf runs list [DIR]</c>, <c>rlhf runs show DIR</c>, <c>rlhf runs compare DIR DIR</c>: past runs from their summary.json and metrics.jsonl.</summary>
public static class RunsCommands
{
    /// <summary>The folder <c>runs list</c> looks in by default (where <c>rlhf quickstart</c> writes).</summary>
    public const string DefaultRoot = "runs";

    /// <summary>The summary keys <c>runs list</c> shows, in order.</summary>
    public static readonly string[] ListKeys = ["gold_win_rate", "gold_reward_sft", "gold_reward_final", "kl_to_sft", "reward_model_accuracy", "wall_seconds"];

    /// <summary>Builds the command group.</summary>
    public static Command Build()
    {
        var root = new Argument<string>("dir") { Description = "Folder of runs (default runs).", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => DefaultRoot };
        var list = new Command("list", "One line per run under DIR: algorithm, gold win-rate, gold reward SFT → final, KL, reward-model accuracy, wall time.") { root };
        list.SetAction(r => List(r.GetValue(root)!, r.InvocationConfiguration.Output));
        var one = new Argument<string>("dir") { Description = "A run directory." };
        var show = new Command("show", "A run's summary and, per stage, its steps and last logged metrics.") { one };
        show.SetAction(r => Show(r.GetValue(one)!, r.InvocationConfiguration.Output));
        var a = new Argument<string>("a") { Description = "First run directory." };
        var b = new Argument<string>("b") { Description = "Second run directory." };
        var compare = new Command("compare", "Two runs side by side: every summary number (else the last metrics of each stage), and the difference.") { a, b };
        compare.SetAction(r => Compare(r.GetValue(a)!, r.GetValue(b)!, r.InvocationConfiguration.Output));
        return new Command("runs", "Summarise past runs from their run directories.") { list, show, compare };
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("0.####", CultureInfo.InvariantCulture) : v.ToString(CultureInfo.InvariantCulture);

    /// <summary>Prints one row per run under <paramref name="root"/>.</summary>
    public static int List(string root, TextWriter output)
    {
        var runs = RunInfo.List(root);
        if (runs.Count == 0)
        {
            output.WriteLine($"no runs in {root} (a run holds summary.json or metrics.jsonl; `rlhf quickstart` writes one under runs/)");
            return 0;
        }
        var rows = runs.Select(r => (IReadOnlyList<string>)
        [
            Path.GetRelativePath(Environment.CurrentDirectory, r.Directory),
            r.Labels.GetValueOrDefault("algorithm", "-"),
            .. ListKeys.Select(k => r.Summary.TryGetValue(k, out var v) ? F(v) : "-"),
            string.Join(",", r.Stages.Select(s => $"{s.Name}:{s.Steps}")),
        ]).ToArray();
        output.Write(TextTable.Render(["run", "algorithm", .. ListKeys, "stages:steps"], rows));
        return 0;
    }

    /// <summary>Prints a run's summary and its stages.</summary>
    public static int Show(string dir, TextWriter output)
    {
        var run = RunInfo.Read(dir);
        output.WriteLine($"run {run.Directory}");
        foreach (var (k, v) in run.Labels) output.WriteLine($"  {k}: {v}");
        if (run.Summary.Count > 0) output.Write(TextTable.Render(["summary", "value"], run.Summary.Select(kv => (IReadOnlyList<string>)[kv.Key, F(kv.Value)]).ToArray()));
        foreach (var s in run.Stages)
        {
            output.WriteLine($"stage {s.Name}: {s.Records.Count} records, last step {s.Steps}");
            output.Write(TextTable.Render(["metric", "first", "last"], s.Last().Select(kv => (IReadOnlyList<string>)
                [kv.Key, F(s.Records.First(r => r.Values.ContainsKey(kv.Key)).Values[kv.Key]), F(kv.Value)]).ToArray()));
        }
        return 0;
    }

    /// <summary>Prints two runs side by side with the difference (b − a).</summary>
    public static int Compare(string a, string b, TextWriter output)
    {
        var ra = RunInfo.Read(a);
        var rb = RunInfo.Read(b);
        var va = Values(ra);
        var vb = Values(rb);
        var keys = va.Keys.Union(vb.Keys).ToArray();
        output.WriteLine($"a = {ra.Directory}\nb = {rb.Directory}");
        foreach (var label in ra.Labels.Keys.Union(rb.Labels.Keys))
            output.WriteLine($"  {label}: {ra.Labels.GetValueOrDefault(label, "-")} | {rb.Labels.GetValueOrDefault(label, "-")}");
        output.Write(TextTable.Render(["metric", "a", "b", "b - a"], keys.Select(k => (IReadOnlyList<string>)
        [
            k, va.TryGetValue(k, out var x) ? F(x) : "-", vb.TryGetValue(k, out var y) ? F(y) : "-",
            va.ContainsKey(k) && vb.ContainsKey(k) ? F(vb[k] - va[k]) : "-",
        ]).ToArray()));
        return 0;
    }

    /// <summary>The summary's numbers when there is a summary, else each stage's last metrics as <c>stage/metric</c>.</summary>
    private static Dictionary<string, double> Values(RunInfo r) =>
        r.Summary.Count > 0
            ? new Dictionary<string, double>(r.Summary)
            : r.Stages.SelectMany(s => s.Last().Select(kv => (Key: s.Name == "." ? kv.Key : $"{s.Name}/{kv.Key}", kv.Value))).ToDictionary(p => p.Key, p => p.Value);
}
