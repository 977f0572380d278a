using System.Globalization;
using System.Text;

namespace Rlhf.Shell.Telemetry;

/// <summary>
/// <c>metrics.csv</c>: a header <c>step,episode,KEY…</c> whose columns are the union of every key logged, in the order
/// first seen, then one row per step (an empty cell where a step did not log a key). Rows are appended and flushed per
/// step; a key that first appears late rewrites the file with the wider header (to a temporary file, then renamed over
/// the old one, so a crash leaves either the old or the new file). Reopening a file continues it. Names holding commas,
/// quotes or line breaks are quoted as RFC 4180 says.
/// </summary>
public sealed class CsvMetricsWriter : IMetricsSink
{
    /// <summary>The file's name in a run directory.</summary>
    public const string FileName = "metrics.csv";

    private readonly List<string> _columns = [];
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly List<string[]> _rows = [];
    private FileStream _stream;

    /// <summary>Appends to <paramref name="path"/> (created with its directory when missing).</summary>
    public CsvMetricsWriter(string path)
    {
        Path = path;
        _stream = MetricText.OpenForAppend(path);
        Load();
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The metric columns after step and episode, in order.</summary>
    public IReadOnlyList<string> Columns => _columns;

    /// <inheritdoc />
    public void Write(MetricsRecord record)
    {
        var widened = false;
        foreach (var key in record.Values.Keys)
        {
            MetricText.CheckKey(key);
            if (_index.ContainsKey(key)) continue;
            _index[key] = _columns.Count;
            _columns.Add(key);
            widened = true;
        }
        var row = new string[2 + _columns.Count];
        row[0] = record.Step.ToString(CultureInfo.InvariantCulture);
        row[1] = record.Episode.ToString(CultureInfo.InvariantCulture);
        for (var i = 2; i < row.Length; i++) row[i] = "";
        foreach (var (key, value) in record.Values) row[2 + _index[key]] = MetricText.Number(value);
        _rows.Add(row);
        if (widened || _stream.Length == 0) Rewrite();
        else
        {
            _stream.Write(Encoding.UTF8.GetBytes(Line(row)));
            _stream.Flush(flushToDisk: true);
        }
    }

    private void Rewrite()
    {
        var tmp = Path + ".tmp";
        using (var w = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            var sb = new StringBuilder(Line(["step", "episode", .. _columns]));
            foreach (var r in _rows) sb.Append(Line(r));
            w.Write(Encoding.UTF8.GetBytes(sb.ToString()));
            w.Flush(flushToDisk: true);
        }
        _stream.Dispose();
        File.Move(tmp, Path, overwrite: true);
        _stream = MetricText.OpenForAppend(Path);
    }

    private string Line(string[] row)
    {
        var cells = new string[2 + _columns.Count];
        for (var i = 0; i < cells.Length; i++) cells[i] = i < row.Length ? Quote(row[i]) : "";
        return string.Join(",", cells) + "\n";
    }

    private static string Quote(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) < 0 ? cell : "\"" + cell.Replace("\"", "\"\"") + "\"";

    /// <summary>Reads an existing file (header and rows) so a resumed run continues it.</summary>
    private void Load()
    {
        if (_stream.Length == 0) return;
        _stream.Position = 0;
        var text = new StreamReader(_stream, Encoding.UTF8, false, 1 << 16, leaveOpen: true).ReadToEnd();
        _stream.Position = _stream.Length;
        var records = Parse(text);
        if (records.Count == 0) return;
        var header = records[0];
        if (header.Length < 2 || header[0] != "step" || header[1] != "episode")
            throw new InvalidDataException($"{Path}: line 1: expected a header starting with step,episode; found {string.Join(",", header)}");
        foreach (var key in header.Skip(2)) { _index[key] = _columns.Count; _columns.Add(key); }
        for (var i = 1; i < records.Count; i++)
        {
            if (records[i].Length != header.Length)
                throw new InvalidDataException($"{Path}: row {i + 1}: expected {header.Length} cells, found {records[i].Length}");
            _rows.Add(records[i]);
        }
    }

    /// <summary>RFC 4180 records of a text whose every record ends with a newline.</summary>
    internal static List<string[]> Parse(string text)
    {
        var records = new List<string[]>();
        var cells = new List<string>();
        var cell = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c != '"') cell.Append(c);
                else if (i + 1 < text.Length && text[i + 1] == '"') { cell.Append('"'); i++; }
                else quoted = false;
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { cells.Add(cell.ToString()); cell.Clear(); }
            else if (c == '\n') { cells.Add(cell.ToString()); cell.Clear(); records.Add([.. cells]); cells.Clear(); }
            else if (c != '\r') cell.Append(c);
        }
        return records;
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();
}
