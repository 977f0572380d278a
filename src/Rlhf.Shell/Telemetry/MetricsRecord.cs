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
