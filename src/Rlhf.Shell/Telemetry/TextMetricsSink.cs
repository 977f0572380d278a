using System.Globalization;
using System.Text;

namespace Rlhf.Shell.Telemetry;

/// <summary>
/// One plain line per logged step on a text writer, for logs that are not a terminal (CI, <c>--quiet</c>):
/// <c>step 5 episode 40 objective/kl=0.1234 objective/scores=-1.5</c> — the chosen keys (all, in record order, when
/// none are chosen) with four significant digits.
/// </summary>
public sealed class TextMetricsSink(TextWriter writer, IReadOnlyList<string>? keys = null) : IMetricsSink
{
    /// <summary>The line written for <paramref name="record"/>.</summary>
    public string Line(MetricsRecord record)
    {
        var sb = new StringBuilder().Append("step ").Append(record.Step).Append(" episode ").Append(record.Episode);
        foreach (var key in keys ?? record.Values.Keys.ToArray())
            if (record.Values.TryGetValue(key, out var v))
                sb.Append(' ').Append(key).Append('=').Append(v.ToString("G4", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <inheritdoc />
    public void Write(MetricsRecord record)
    {
        writer.WriteLine(Line(record));
        writer.Flush();
    }

    /// <summary>Leaves the writer open: it belongs to the caller.</summary>
    public void Dispose() { }
}
