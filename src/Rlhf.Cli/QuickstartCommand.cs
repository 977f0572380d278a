using System.CommandLine;
using System.Globalization;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training.Quickstart;
using Spectre.Console;

namespace Rlhf.Cli;

/// <summary>
/// <c>rlhf quickstart [--algorithm A] [--sync] [--quick] [--sweep staleness] [--output DIR] [--config DIR] [--quiet]</c>: the
/// async_rlhf paper in miniature (SFT → reward model on gold-labelled SFT samples → online training against it →
/// evaluation with the gold reward), live progress on a terminal, a before → after table at the end.
/// </summary>
public static class QuickstartCommand
{
    /// <summary>Where the stage configs live, relative to the repository root.</summary>
    public const string ConfigFolder = "configs/quickstart";

    /// <summary>Builds the command.</summary>
    public static Command Build()
    {
        var algorithm = new Option<string?>("--algorithm") { Description = "Online algorithm instead of online DPO: ppo, rloo, bok, grpo, reinforce_pp (or online_dpo)." };
        algorithm.AcceptOnlyFromAmong(QuickstartPipeline.Algorithms);
        var sync = new Option<bool>("--sync") { Description = "Run the synchronous online loop (training.async=false) instead of the asynchronous one." };
        var quick = new Option<bool>("--quick") { Description = "Reduced budget for tests and CI (configs/quickstart/quick/*.yaml): under two minutes." };
        var sweep = new Option<string?>("--sweep") { Description = "'staleness': also train online DPO, PPO, RLOO and best-of-K at staleness 0, 1, 2, 4, 8 and plot final gold win-rate against it." };
        sweep.AcceptOnlyFromAmong("staleness");
        var output = new Option<string?>("--output") { Description = "Run directory (default runs/quickstart-TIMESTAMP)." };
        var config = new Option<string?>("--config") { Description = $"Folder of the stage configs (default {ConfigFolder})." };
        var quiet = new Option<bool>("--quiet") { Description = "One plain line per logged step instead of live progress bars." };
        var cmd = new Command("quickstart", "SFT → reward model → online DPO against it → gold evaluation, on a built-in task, in minutes on a CPU.")
        {
            algorithm, sync, quick, sweep, output, config, quiet,
        };
        cmd.SetAction(r => Run(new QuickstartOptions(
                r.GetValue(config) ?? DefaultConfigDirectory(),
                r.GetValue(output) ?? DefaultOutput(),
                r.GetValue(quick), r.GetValue(sync), r.GetValue(algorithm), r.GetValue(sweep) == "staleness"),
            r.GetValue(quiet), r.InvocationConfiguration.Output));
        return cmd;
    }

    /// <summary><c>configs/quickstart</c> under the working directory, else under the first parent of the program's folder that has one.</summary>
    public static string DefaultConfigDirectory()
    {
        if (Directory.Exists(ConfigFolder)) return ConfigFolder;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, ConfigFolder))) return Path.Combine(d.FullName, ConfigFolder);
        return ConfigFolder;   // the pipeline says it is missing, and what to do
    }

    /// <summary><c>runs/quickstart-yyyyMMdd-HHmmss</c> (UTC).</summary>
    public static string DefaultOutput() => Path.Combine("runs", "quickstart-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));

    /// <summary>Runs the pipeline with live progress when <paramref name="output"/> is the terminal (and not <paramref name="quiet"/>), plain lines otherwise.</summary>
    public static int Run(QuickstartOptions options, bool quiet, TextWriter output)
    {
        var live = !quiet && ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        QuickstartResult result;
        try
        {
            if (live)
            {
                QuickstartResult? r = null;
                AnsiConsole.Progress().AutoClear(false).HideCompleted(false).Columns(SpectreRunProgress.Columns())
                    .Start(ctx => r = QuickstartPipeline.Run(options, new SpectreRunProgress(AnsiConsole.Console, ctx)));
                result = r!;
            }
            else
            {
                using var plain = new PlainRunProgress(output);
                result = QuickstartPipeline.Run(options, plain);
            }
        }
        catch (Exception e) when (IsOutOfMemory(e))
        {
            throw new InsufficientMemoryException(
                $"not enough memory ({CliErrors.Describe(e)}); close other programs or shrink the run: fewer prompts per step (training.per_device_train_batch_size), a smaller model (model.hidden_size) or generation.kv_cache_memory_mb in {options.ConfigDirectory}", e);
        }
        PrintSummary(result, live, output);
        return 0;
    }

    private static bool IsOutOfMemory(Exception e) =>
        e is OutOfMemoryException || e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase);

    private static void PrintSummary(QuickstartResult r, bool live, TextWriter output)
    {
        var s = r.Summary;
        string[] header = ["metric (held-out prompts)", "SFT", s.Algorithm];
        if (live)
        {
            var table = new Table().Title("SFT policy → final policy").AddColumns(header.Select(h => new TableColumn(Markup.Escape(h))).ToArray());
            foreach (var row in s.BeforeAfterRows()) table.AddRow(row.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
        }
        else output.Write(TextTable.Render(header, s.BeforeAfterRows()));
        var ci = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(ci, $"reward model held-out pair accuracy {s.RewardModelAccuracy:0.000} on {s.RewardPairs} gold-labelled pairs of SFT samples; {s.EvalPrompts} evaluation prompts; {s.WallSeconds:0} s in all"));
        foreach (var p in r.Sweep)
            output.WriteLine(p.GoldWinRate is double w
                ? string.Create(ci, $"sweep {p.Algorithm} staleness {p.Staleness}: gold win-rate {w:0.000}")
                : $"sweep {p.Algorithm} staleness {p.Staleness}: skipped ({p.Skipped})");
        output.WriteLine($"run directory: {r.Directory} (report.html, summary.json, plots/, sft/, reward_model/, online/)");
        output.Flush();
    }
}
