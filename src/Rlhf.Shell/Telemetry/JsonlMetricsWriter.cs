using System.Text;
using System.Text.Json;

namespace Rlhf.Shell.Telemetry;

/// <summary>
/// <c>metrics.jsonl</c>: one JSON object per logged step, <c>{"step": …, "episode": …, "objective/kl": …, …}</c>, keys in
/// the order given. Each line goes out in one write and is flushed to disk; reopening a file (a resumed run) first drops
/// a last line left without its newline by a crash, then appends. NaN and ±Infinity are written bare, as Python's json
/// module writes and reads them.
/// </summary>
public sealed class JsonlMetricsWriter : IMetricsSink
{
    /// <summary>The file's name in a run directory.</summary>
    public const string FileName = "metrics.jsonl";

    private readonly FileStream _stream;

    /// <summary>Appends to <paramref name="path"/> (created with its directory when missing).</summary>
    public JsonlMetricsWriter(string path)
    {
        Path = path;
        _stream = MetricText.OpenForAppend(path);
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public void Write(MetricsRecord record)
    {
        var sb = new StringBuilder();
        sb.Append("{\"step\": ").Append(record.Step).Append(", \"episode\": ").Append(record.Episode);
        foreach (var (key, value) in record.Values)
        {
            MetricText.CheckKey(key);
            sb.Append(", ").Append(JsonSerializer.Serialize(key)).Append(": ").Append(MetricText.Number(value));
        }
        sb.Append("}\n");
        _stream.Write(Encoding.UTF8.GetBytes(sb.ToString()));
        _stream.Flush(flushToDisk: true);
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
