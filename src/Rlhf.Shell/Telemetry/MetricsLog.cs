using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Rlhf.Shell.Telemetry;

/// <summary>Reads a run's <c>metrics.jsonl</c> back (for plots, reports and comparing runs).</summary>
public static class MetricsLog
{
    /// <summary>
    /// The records of <paramref name="path"/>, in file order. Bare <c>NaN</c>/<c>Infinity</c>/<c>-Infinity</c> values are
    /// accepted (as <see cref="JsonlMetricsWriter"/> and Python's json write them); a last line without its newline (a
    /// crash mid-write) is ignored; any other bad line is an error naming the file and line.
    /// </summary>
    public static IReadOnlyList<MetricsRecord> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no metrics file (a run writes metrics.jsonl in its output directory)", path);
        var text = File.ReadAllText(path, Encoding.UTF8);
        var lines = text.Split('\n');
        var records = new List<MetricsRecord>();
        // The element after the last '\n' is either empty or a torn line.
        for (var i = 0; i < lines.Length - 1; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            records.Add(Parse(lines[i], path, i + 1));
        }
        return records;
    }

    private static MetricsRecord Parse(string line, string path, int lineNo)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(QuoteNamedNumbers(line)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}:{lineNo}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}:{lineNo}: expected a JSON object");
            long? step = null, episode = null;
            var values = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                var v = p.Value;
                double d;
                if (v.ValueKind == JsonValueKind.Number) d = v.GetDouble();
                else if (v.ValueKind == JsonValueKind.String && double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var named) && !double.IsFinite(named)) d = named;
                else throw new InvalidDataException($"{path}:{lineNo}: \"{p.Name}\": expected a number, found {v.ValueKind}");
                if (p.Name == "step") step = (long)d;
                else if (p.Name == "episode") episode = (long)d;
                else values[p.Name] = d;
            }
            if (step is null || episode is null) throw new InvalidDataException($"{path}:{lineNo}: expected \"step\" and \"episode\"");
            return new MetricsRecord(step.Value, episode.Value, values);
        }
    }

    /// <summary>Wraps bare NaN, Infinity and -Infinity outside strings in quotes so a strict JSON parser accepts the line.</summary>
    private static string QuoteNamedNumbers(string line)
    {
        var sb = new StringBuilder(line.Length + 8);
        var inString = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < line.Length) sb.Append(line[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            var named = new[] { "-Infinity", "Infinity", "NaN" }.FirstOrDefault(n => string.CompareOrdinal(line, i, n, 0, n.Length) == 0);
            if (named is null) { sb.Append(c); continue; }
            sb.Append('"').Append(named).Append('"');
            i += named.Length - 1;
        }
        return sb.ToString();
    }
}
