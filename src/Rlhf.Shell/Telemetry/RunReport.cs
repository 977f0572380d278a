using System.Net;
using System.Text;

namespace Rlhf.Shell.Telemetry;

/// <summary>A table for a report: column headers and rows of cells.</summary>
public sealed record ReportTable(string Caption, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows);

/// <summary>A figure in a report: a PNG shown inline and its SVG linked, both by paths relative to the report.</summary>
public sealed record ReportFigure(string Caption, string PngPath, string? SvgPath);

/// <summary><c>report.html</c>: one self-contained page (no scripts, no network) with the run's summary tables and its plots.</summary>
public static class RunReport
{
    /// <summary>The file's name in a run directory.</summary>
    public const string FileName = "report.html";

    /// <summary>
    /// Writes <c>report.html</c> in <paramref name="directory"/>. Figure paths are relative to the directory and must exist
    /// (an error otherwise: the page would show a broken image); every text is HTML-escaped.
    /// </summary>
    public static string Write(string directory, string title, IReadOnlyList<ReportTable> tables, IReadOnlyList<ReportFigure> figures)
    {
        foreach (var f in figures)
            foreach (var p in new[] { f.PngPath, f.SvgPath }.OfType<string>())
            {
                if (Path.IsPathRooted(p)) throw new ArgumentException($"report figure \"{f.Caption}\": path {p} must be relative to {directory}");
                if (!File.Exists(Path.Combine(directory, p))) throw new FileNotFoundException($"report figure \"{f.Caption}\": {Path.Combine(directory, p)} does not exist");
            }
        static string E(string s) => WebUtility.HtmlEncode(s);
        static string Href(string p) => E(string.Join("/", p.Replace('\\', '/').Split('/').Select(Uri.EscapeDataString)));
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>").Append(E(title)).Append("</title>\n")
          .Append("<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}")
          .Append("td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}")
          .Append("figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}</style>\n</head>\n<body>\n")
          .Append("<h1>").Append(E(title)).Append("</h1>\n");
        foreach (var t in tables)
        {
            sb.Append("<table>\n<caption>").Append(E(t.Caption)).Append("</caption>\n<tr>");
            foreach (var c in t.Columns) sb.Append("<th>").Append(E(c)).Append("</th>");
            sb.Append("</tr>\n");
            foreach (var row in t.Rows)
            {
                if (row.Count != t.Columns.Count) throw new ArgumentException($"report table \"{t.Caption}\": a row has {row.Count} cells for {t.Columns.Count} columns");
                sb.Append("<tr>");
                foreach (var c in row) sb.Append("<td>").Append(E(c)).Append("</td>");
                sb.Append("</tr>\n");
            }
            sb.Append("</table>\n");
        }
        foreach (var f in figures)
        {
            sb.Append("<figure>\n<img src=\"").Append(Href(f.PngPath)).Append("\" alt=\"").Append(E(f.Caption)).Append("\">\n<figcaption>").Append(E(f.Caption));
            if (f.SvgPath is { } svg) sb.Append(" (<a href=\"").Append(Href(svg)).Append("\">SVG</a>)");
            sb.Append("</figcaption>\n</figure>\n");
        }
        sb.Append("</body>\n</html>\n");
        var path = Path.Combine(directory, FileName);
        File.WriteAllText(path, sb.ToString(), new UTF8Encoding(false));
        return path;
    }
}
