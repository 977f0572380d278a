using System.Globalization;
using System.Text;

namespace Rlhf.Shell.Telemetry;

/// <summary>
/// What a multi-stage run tells the person watching it: a stage begins (name and steps), each logged step of it, a line
/// of news between stages. The console program renders it live (Spectre.Console) on a terminal and as
/// <see cref="PlainRunProgress"/> lines otherwise.
/// </summary>
public interface IRunProgress : IDisposable
{
    /// <summary>A stage starts; the sink it returns receives the stage's logged steps (and must not be disposed by the caller's run).</summary>
    IMetricsSink BeginStage(string stage, long totalSteps);

    /// <summary>The current stage ended.</summary>
    void EndStage();

    /// <summary>One line of news between steps (a stage's result, where files went).</summary>
    void Note(string line);
}

/// <summary>The metric keys a progress line shows, in order of preference for each column.</summary>
public static class ProgressKeys
{
    /// <summary>Reward column: the online proxy score, else the reward model's accuracy, else nothing.</summary>
    public static readonly string[] Reward = ["objective/scores", "accuracy", "eval/gold_reward"];

    /// <summary>KL column (online stages).</summary>
    public static readonly string[] Kl = ["objective/kl"];

    /// <summary>Loss column (offline stages).</summary>
    public static readonly string[] Loss = ["loss"];

    /// <summary>Gold column: the gold reward of the training rollouts.</summary>
    public static readonly string[] Gold = ["gold/reward"];

    /// <summary>The first of <paramref name="keys"/> that <paramref name="values"/> holds.</summary>
    public static (string Key, double Value)? First(IReadOnlyDictionary<string, double> values, IReadOnlyList<string> keys)
    {
        foreach (var k in keys)
            if (values.TryGetValue(k, out var v)) return (k, v);
        return null;
    }

    /// <summary>
    /// The words of one step: <c>episodes 640 · reward objective/scores=0.52 · gold 0.81 · KL 0.13 · 1,234 tokens/s · ETA 1m02s</c>
    /// (the parts the record holds). <paramref name="eta"/> is the estimated time left, when known.
    /// </summary>
    public static string Describe(MetricsRecord r, TimeSpan? eta)
    {
        var ci = CultureInfo.InvariantCulture;
        var parts = new List<string> { $"episodes {r.Episode}" };
        if (First(r.Values, Loss) is var (_, loss)) parts.Add(string.Create(ci, $"loss {loss:0.###}"));
        if (First(r.Values, Reward) is var (rk, rv)) parts.Add(string.Create(ci, $"{(rk == "objective/scores" ? "reward" : rk)} {rv:0.###}"));
        if (First(r.Values, Gold) is var (_, gold)) parts.Add(string.Create(ci, $"gold {gold:0.###}"));
        if (First(r.Values, Kl) is var (_, kl)) parts.Add(string.Create(ci, $"KL {kl:0.###}"));
        if (r.Values.TryGetValue("tokens_per_s", out var tps)) parts.Add(string.Create(ci, $"{tps:N0} tokens/s"));
        if (eta is { } e) parts.Add($"ETA {Duration(e)}");
        return string.Join(" · ", parts);
    }

    /// <summary>A duration as <c>42s</c>, <c>3m05s</c> or <c>1h02m</c>.</summary>
    public static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{Math.Max(0, (int)Math.Round(t.TotalSeconds))}s";
}

/// <summary>
/// Progress as one plain line per logged step (<c>[sft 20/600] episodes 640 · loss 1.2 · 3,456 tokens/s · ETA 1m30s</c>), for
/// logs that are not a terminal and for <c>--quiet</c>: CI logs stay readable and grep-able.
/// </summary>
public sealed class PlainRunProgress(TextWriter writer, TimeProvider? time = null) : IRunProgress
{
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    /// <inheritdoc />
    public IMetricsSink BeginStage(string stage, long totalSteps)
    {
        writer.WriteLine($"== {stage}: {totalSteps} steps");
        writer.Flush();
        return new StageLines(this, stage, totalSteps, clock.GetTimestamp());
    }

    /// <inheritdoc />
    public void EndStage() { }

    /// <inheritdoc />
    public void Note(string line)
    {
        writer.WriteLine(line);
        writer.Flush();
    }

    /// <summary>Leaves the writer open: it belongs to the caller.</summary>
    public void Dispose() { }

    private sealed class StageLines(PlainRunProgress owner, string stage, long total, long started) : IMetricsSink
    {
        public void Write(MetricsRecord record)
        {
            var elapsed = owner.clock.GetElapsedTime(started);
            TimeSpan? eta = record.Step > 0 && record.Step <= total ? elapsed * ((double)(total - record.Step) / record.Step) : null;
            owner.Note($"[{stage} {record.Step}/{total}] {ProgressKeys.Describe(record, eta)}");
        }

        public void Dispose() { }
    }
}

/// <summary>A fixed-width text table (the before → after summary where there is no terminal to draw on).</summary>
public static class TextTable
{
    /// <summary>The rows under a header, columns padded to their widest cell, the first left-aligned and the rest right-aligned.</summary>
    public static string Render(IReadOnlyList<string> header, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        var sb = new StringBuilder();
        void Line(IReadOnlyList<string> cells) =>
            sb.Append(string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd()).Append('\n');
        Line(header);
        sb.Append(string.Join("  ", widths.Select(w => new string('-', w)))).Append('\n');
        foreach (var r in rows) Line(r);
        return sb.ToString();
    }
}
