using System.Globalization;

namespace Rlhf.Shell.Telemetry;

/// <summary>One logged step: the optimiser step, the episodes (rollouts) seen so far, and metrics under TRL's names (<c>objective/kl</c>, …).</summary>
public sealed record MetricsRecord(long Step, long Episode, IReadOnlyDictionary<string, double> Values);

/// <summary>Where logged steps go. Every write is flushed before it returns, so a crash loses at most the step being written.</summary>
public interface IMetricsSink : IDisposable
{
    /// <summary>Writes one step.</summary>
    void Write(MetricsRecord record);
}

/// <summary>Writes each step to several sinks (JSONL, CSV, TensorBoard, a console).</summary>
public sealed class MetricsSinks(IReadOnlyList<IMetricsSink> sinks) : IMetricsSink
{
    /// <summary>The sinks the logging settings turn on, in <paramref name="directory"/>: <c>metrics.jsonl</c>, <c>metrics.csv</c>, TensorBoard event files.</summary>
    public static MetricsSinks From(Rlhf.Settings.LoggingSettings logging, string directory)
    {
        var sinks = new List<IMetricsSink>();
        if (logging.Jsonl) sinks.Add(new JsonlMetricsWriter(Path.Combine(directory, JsonlMetricsWriter.FileName)));
        if (logging.Csv) sinks.Add(new CsvMetricsWriter(Path.Combine(directory, CsvMetricsWriter.FileName)));
        if (logging.Tensorboard) sinks.Add(new TensorBoardWriter(directory));
        return new MetricsSinks(sinks);
    }

    /// <summary>The sinks.</summary>
    public IReadOnlyList<IMetricsSink> Sinks { get; } = sinks;

    /// <summary>
    /// For a resumed run: keeps only the records of steps up to <paramref name="step"/> in <paramref name="directory"/>'s
    /// <c>metrics.jsonl</c> and <c>metrics.csv</c> (the CSV's header stays), so the steps a killed run logged after its last
    /// checkpoint are logged once, by the resumed run, which then appends. Each file is rewritten through a temporary file
    /// and a rename. TensorBoard event files are left as they are (TensorBoard shows the newest event of a step).
    /// </summary>
    public static void DropAfter(string directory, long step)
    {
        Keep(Path.Combine(directory, JsonlMetricsWriter.FileName), header: false, line =>
            System.Text.RegularExpressions.Regex.Match(line, @"^\{""step"": (-?\d+)") is { Success: true } m && long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) <= step);
        Keep(Path.Combine(directory, CsvMetricsWriter.FileName), header: true, line =>
            long.TryParse(line.Split(',')[0], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var s) && s <= step);
    }

    // Rewrites path with its complete lines that pass keep (the first line always, when header); a last line without its newline goes.
    private static void Keep(string path, bool header, Func<string, bool> keep)
    {
        if (!File.Exists(path)) return;
        var text = File.ReadAllText(path, System.Text.Encoding.UTF8);
        var lines = text.Split('\n');
        var complete = lines.Take(lines.Length - 1);     // the piece after the last newline is empty or a torn line
        var kept = complete.Where((l, i) => (header && i == 0) || keep(l)).ToList();
        var tmp = path + ".resume-tmp";
        File.WriteAllText(tmp, string.Concat(kept.Select(l => l + "\n")), new System.Text.UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    /// <inheritdoc />
    public void Write(MetricsRecord record) { foreach (var s in Sinks) s.Write(record); }

    /// <inheritdoc />
    public void Dispose() { foreach (var s in Sinks) s.Dispose(); }
}

/// <summary>Number formatting shared by the text sinks: round-trip doubles, and NaN/±Infinity spelled as Python's json writes them.</summary>
internal static class MetricText
{
    public static string Number(double v) =>
        double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "Infinity" : double.IsNegativeInfinity(v) ? "-Infinity"
        : v.ToString("R", CultureInfo.InvariantCulture);

    public static void CheckKey(string key)
    {
        if (string.IsNullOrEmpty(key)) throw new ArgumentException("a metric name cannot be empty");
        if (key is "step" or "episode") throw new ArgumentException($"metric name '{key}' is reserved for the record's own {key}");
    }

    /// <summary>Opens <paramref name="path"/> for appending after dropping a last line that a crash left without its newline.</summary>
    public static FileStream OpenForAppend(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        var end = fs.Length;
        var keep = end;
        while (keep > 0)
        {
            fs.Position = keep - 1;
            if (fs.ReadByte() == '\n') break;
            keep--;
        }
        fs.SetLength(keep);
        fs.Position = keep;
        return fs;
    }
}
