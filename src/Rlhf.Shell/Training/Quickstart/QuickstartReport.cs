using System.Globalization;
using Rlhf.Shell.Telemetry;

namespace Rlhf.Shell.Training.Quickstart;

/// <summary>
/// The quickstart's plots (PNG and SVG under <c>plots/</c>) and <c>report.html</c>: gold and proxy reward of the training
/// rollouts against the step (the gap between them is Goodhart's law at work), KL to the SFT policy against the step, gold
/// reward against KL (the paper's frontier), the SFT and reward-model curves, and — after a sweep — final gold win-rate
/// against staleness per algorithm (the async_rlhf paper's central figure).
/// </summary>
public static class QuickstartReport
{
    /// <summary>Plot file stems under the run directory.</summary>
    public const string RewardPlot = "plots/reward_vs_step", KlPlot = "plots/kl_vs_step", GoldKlPlot = "plots/gold_vs_kl",
        SftPlot = "plots/sft_loss", RewardModelPlot = "plots/reward_model_accuracy", SweepPlot = "plots/staleness_sweep";

    /// <summary>Writes the plots and <c>report.html</c> into <paramref name="directory"/>; returns the files written, relative to it.</summary>
    public static IReadOnlyList<string> Write(string directory, QuickstartSummary summary, IReadOnlyList<MetricsRecord> sft,
        IReadOnlyList<MetricsRecord> rewardModel, IReadOnlyList<MetricsRecord> online, IReadOnlyList<SweepPoint> sweep)
    {
        var figures = new List<ReportFigure>();
        void Plot(string stem, PlotSpec spec, string caption)
        {
            Plots.Save(spec, Path.Combine(directory, stem));
            figures.Add(new ReportFigure(caption, stem + ".png", stem + ".svg"));
        }

        Plot(RewardPlot, Plots.MetricsVsStep(online, [GoldMetricsSink.GoldReward, "objective/scores"], "Gold and proxy reward of the training rollouts", "reward"),
            "Gold reward (the task's) and proxy reward (the learned reward model's) of the online stage's rollouts, per step.");
        Plot(KlPlot, Plots.MetricsVsStep(online, ["objective/kl"], "KL to the SFT policy", "KL (sum over tokens)"),
            "KL of the rollouts to the SFT (reference) policy, per step.");
        var withBoth = online.Where(r => r.Values.ContainsKey("objective/kl") && r.Values.ContainsKey(GoldMetricsSink.GoldReward)).ToArray();
        Plot(GoldKlPlot, new PlotSpec("Gold reward against KL", "KL to SFT", "gold reward",
                [new PlotSeries(summary.Algorithm, withBoth.Select(r => r.Values["objective/kl"]).ToArray(), withBoth.Select(r => r.Values[GoldMetricsSink.GoldReward]).ToArray())], Lines: false),
            "Gold reward of the rollouts against their KL to the SFT policy, one point per logged step.");
        Plot(SftPlot, Plots.MetricsVsStep(sft.Where(r => r.Step > 0 || !r.Values.ContainsKey("loss")).ToArray(), ["loss"], "SFT: completion loss", "loss"),
            "SFT on imperfect demonstrations: the completion loss per step.");
        Plot(RewardModelPlot, Plots.MetricsVsStep(rewardModel, ["accuracy", "eval/accuracy"], "Reward model: pair accuracy", "accuracy"),
            "Reward model on gold-labelled pairs of SFT samples: training and held-out pair accuracy.");
        if (sweep.Any(p => p.GoldWinRate is not null))
            Plot(SweepPlot, new PlotSpec("Final gold win-rate against staleness", "max staleness (policy versions)", "gold win-rate vs SFT",
                    sweep.GroupBy(p => p.Algorithm).Select(g => g.Where(p => p.GoldWinRate is not null).ToArray())
                        .Where(g => g.Length > 0)
                        .Select(g => new PlotSeries(g[0].Algorithm, g.Select(p => (double)p.Staleness).ToArray(), g.Select(p => p.GoldWinRate!.Value).ToArray())).ToArray()),
                "The staleness sweep: final gold win-rate over the SFT policy against the staleness bound, per algorithm.");

        static string F(double v) => double.IsFinite(v) ? v.ToString("0.000", CultureInfo.InvariantCulture) : "n/a";
        var tables = new List<ReportTable>
        {
            new("Held-out prompts: SFT policy → final policy", ["metric", "SFT", summary.Algorithm], summary.BeforeAfterRows()),
            new("Run", ["", "value"],
            [
                ["algorithm", summary.Algorithm + (summary.Async ? $" (asynchronous, max staleness {summary.MaxStaleness})" : " (synchronous)")],
                ["reward model held-out pair accuracy", F(summary.RewardModelAccuracy)],
                ["reward pairs (SFT samples, gold-labelled)", summary.RewardPairs.ToString(CultureInfo.InvariantCulture)],
                ["evaluation prompts", summary.EvalPrompts.ToString(CultureInfo.InvariantCulture)],
                .. summary.StageSeconds.Select(kv => (IReadOnlyList<string>)[$"{kv.Key} seconds", kv.Value.ToString("0.0", CultureInfo.InvariantCulture)]),
                ["wall seconds", summary.WallSeconds.ToString("0.0", CultureInfo.InvariantCulture)],
            ]),
        };
        if (sweep.Count > 0)
            tables.Add(new ReportTable("Staleness sweep: final gold win-rate vs SFT", ["algorithm", .. SweepStalenessColumns(sweep)],
                sweep.GroupBy(p => p.Algorithm).Select(g => (IReadOnlyList<string>)[g.Key, .. g.OrderBy(p => p.Staleness).Select(p => p.GoldWinRate is double w ? F(w) : "skipped")]).ToArray()));
        RunReport.Write(directory, $"Quickstart: {summary.Algorithm} against a learned reward model", tables, figures);
        return [.. figures.SelectMany(f => new[] { f.PngPath, f.SvgPath! }), RunReport.FileName];
    }

    private static IEnumerable<string> SweepStalenessColumns(IReadOnlyList<SweepPoint> sweep) =>
        sweep.Select(p => p.Staleness).Distinct().Order().Select(s => $"staleness {s}");
}
