using System.Text.Json;

namespace Rlhf.Shell.Telemetry;

/// <summary>One stage of a run directory: a folder holding <c>metrics.jsonl</c>, with its logged records.</summary>
/// <param name="Name">The folder's path relative to the run (<c>.</c> for the run itself).</param>
/// <param name="Records">The records, in file order.</param>
public sealed record RunStage(string Name, IReadOnlyList<MetricsRecord> Records)
{
    /// <summary>The last logged value of every metric.</summary>
    public IReadOnlyDictionary<string, double> Last()
    {
        var last = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var r in Records)
            foreach (var (k, v) in r.Values) last[k] = v;
        return last;
    }

    /// <summary>The highest step logged (0 when nothing was).</summary>
    public long Steps => Records.Count == 0 ? 0 : Records.Max(r => r.Step);
}

/// <summary>
/// A past run as <c>rlhf runs</c> reads it: the numbers of its <c>summary.json</c> (the quickstart writes one) and the stages
/// below it that hold a <c>metrics.jsonl</c> (every training run writes one).
/// </summary>
/// <param name="Directory">The run directory (absolute).</param>
/// <param name="Summary">Every number of <c>summary.json</c> (nested objects flattened as <c>a.b</c>), empty when there is none.</param>
/// <param name="Labels">Every string and boolean of <c>summary.json</c> (e.g. the algorithm).</param>
/// <param name="Stages">The stages, the run's own metrics first, then sub-folders by name.</param>
public sealed record RunInfo(string Directory, IReadOnlyDictionary<string, double> Summary, IReadOnlyDictionary<string, string> Labels, IReadOnlyList<RunStage> Stages)
{
    /// <summary>The summary's file name.</summary>
    public const string SummaryFile = "summary.json";

    /// <summary>Whether <paramref name="dir"/> looks like a run: a summary.json or a metrics.jsonl in it or in a sub-folder.</summary>
    public static bool IsRun(string dir) =>
        File.Exists(Path.Combine(dir, SummaryFile)) || File.Exists(Path.Combine(dir, JsonlMetricsWriter.FileName))
        || System.IO.Directory.EnumerateDirectories(dir).Any(d => File.Exists(Path.Combine(d, JsonlMetricsWriter.FileName)));

    /// <summary>
    /// Reads the run in <paramref name="dir"/>. A missing directory, or one that is not a run, is an error saying what a run
    /// directory holds; a malformed summary.json or metrics.jsonl names the file.
    /// </summary>
    public static RunInfo Read(string dir)
    {
        var full = Path.GetFullPath(dir);
        if (!System.IO.Directory.Exists(full)) throw new DirectoryNotFoundException($"{dir}: no such run directory");
        if (!IsRun(full))
            throw new ArgumentException($"{dir}: not a run directory (no {SummaryFile} and no metrics.jsonl in it or its sub-folders); give a directory that rlhf quickstart or rlhf train wrote");
        var numbers = new Dictionary<string, double>(StringComparer.Ordinal);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var summary = Path.Combine(full, SummaryFile);
        if (File.Exists(summary))
        {
            JsonDocument doc;
            try { doc = JsonDocument.Parse(File.ReadAllText(summary)); }
            catch (JsonException e) { throw new InvalidDataException($"{summary}: not valid JSON ({e.Message})"); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{summary}: expected a JSON object");
                Flatten(doc.RootElement, "", numbers, labels);
            }
        }
        var stages = new List<RunStage>();
        if (File.Exists(Path.Combine(full, JsonlMetricsWriter.FileName))) stages.Add(new RunStage(".", MetricsLog.Read(Path.Combine(full, JsonlMetricsWriter.FileName))));
        foreach (var sub in System.IO.Directory.EnumerateDirectories(full).Order(StringComparer.Ordinal))
        {
            var m = Path.Combine(sub, JsonlMetricsWriter.FileName);
            if (File.Exists(m)) stages.Add(new RunStage(Path.GetFileName(sub), MetricsLog.Read(m)));
        }
        return new RunInfo(full, numbers, labels, stages);
    }

    /// <summary>The runs in <paramref name="root"/>: itself when it is one, else its sub-folders that are, by name.</summary>
    public static IReadOnlyList<RunInfo> List(string root)
    {
        if (!System.IO.Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: no such directory (runs go where --output or training.output_dir points; rlhf quickstart writes under runs/)");
        if (File.Exists(Path.Combine(root, SummaryFile))) return [Read(root)];
        return System.IO.Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal).Where(IsRun).Select(Read).ToArray();
    }

    private static void Flatten(JsonElement e, string prefix, Dictionary<string, double> numbers, Dictionary<string, string> labels)
    {
        foreach (var p in e.EnumerateObject())
        {
            var key = prefix + p.Name;
            switch (p.Value.ValueKind)
            {
                case JsonValueKind.Number: numbers[key] = p.Value.GetDouble(); break;
                case JsonValueKind.String:
                    if (double.TryParse(p.Value.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var named) && !double.IsFinite(named))
                        numbers[key] = named;
                    else labels[key] = p.Value.GetString()!;
                    break;
                case JsonValueKind.True or JsonValueKind.False: labels[key] = p.Value.GetBoolean() ? "true" : "false"; break;
                case JsonValueKind.Object: Flatten(p.Value, key + ".", numbers, labels); break;
            }
        }
    }
}
