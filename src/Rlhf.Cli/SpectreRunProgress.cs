using Rlhf.Shell.Telemetry;
using Spectre.Console;

namespace Rlhf.Cli;

/// <summary>
/// Live progress on a terminal with Spectre.Console: one bar per stage (stage, bar, step/total, ETA), the
/// stage's label carrying the latest episodes, reward, gold reward, KL and tokens/s; notes between stages print above the bars.
/// </summary>
public sealed class SpectreRunProgress(IAnsiConsole console, ProgressContext context) : IRunProgress
{
    private ProgressTask? current;

    /// <summary>The columns of the live display.</summary>
    public static ProgressColumn[] Columns() =>
    [
        new DescriptionColumn(), new ProgressBarColumn { Width = 24 }, new StepColumn(), new RemainingTimeColumn(), new SpinnerColumn(),
    ];

    /// <inheritdoc />
    public IMetricsSink BeginStage(string stage, long totalSteps)
    {
        current = context.AddTask(Markup.Escape(stage), maxValue: Math.Max(1, totalSteps));
        return new StageSink(stage, current);
    }

    /// <inheritdoc />
    public void EndStage()
    {
        if (current is { } t) { t.Value = t.MaxValue; t.StopTask(); }
        current = null;
    }

    /// <inheritdoc />
    public void Note(string line) => console.MarkupLine(Markup.Escape(line));

    /// <summary>Nothing to release: the console belongs to the caller.</summary>
    public void Dispose() { }

    private sealed class StageSink(string stage, ProgressTask task) : IMetricsSink
    {
        public void Write(MetricsRecord record)
        {
            task.Value = Math.Min(task.MaxValue, record.Step);
            // The stage and its latest numbers, folded over as many lines as the terminal needs.
            task.Description = $"[bold]{Markup.Escape(stage)}[/] [grey]{Markup.Escape(ProgressKeys.Describe(record, null))}[/]";
        }

        public void Dispose() { }
    }

    /// <summary>The task's description as markup that may wrap and hold line breaks (Spectre's own column keeps one line and cuts it).</summary>
    private sealed class DescriptionColumn : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Markup(task.Description) { Overflow = Overflow.Fold };
    }

    /// <summary>step/total of a task.</summary>
    private sealed class StepColumn : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Markup($"{task.Value:0}/{task.MaxValue:0}");
    }
}
