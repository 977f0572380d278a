namespace Rlhf.Shell.Telemetry;

/// <summary>One named series of points (a metric against the step, or one quantity against another).</summary>
public sealed record PlotSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>A chart to draw: title, axis labels, series, and whether points are joined by lines.</summary>
public sealed record PlotSpec(string Title, string XLabel, string YLabel, IReadOnlyList<PlotSeries> Series, bool Lines = true);

/// <summary>
/// Charts as PNG and SVG with ScottPlot 5 (rendered by SkiaSharp; the Linux native assets without system dependencies
/// make it work on a bare Debian): metrics against the step (several series, a legend, axis labels) and scatter
/// plots such as gold reward against KL. Points that are not finite are left out.
/// </summary>
public static class Plots
{
    /// <summary>Default image width in pixels.</summary>
    public const int Width = 800;

    /// <summary>Default image height in pixels.</summary>
    public const int Height = 500;

    /// <summary>Writes <paramref name="spec"/> to <c>PATH_STEM.png</c> and <c>PATH_STEM.svg</c>; returns both paths.</summary>
    public static (string Png, string Svg) Save(PlotSpec spec, string pathStem, int width = Width, int height = Height)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(pathStem))!);
        var plot = Build(spec);
        var png = pathStem + ".png";
        var svg = pathStem + ".svg";
        plot.SavePng(png, width, height);
        plot.SaveSvg(svg, width, height);
        return (png, svg);
    }

    /// <summary>One series per metric key against the step, from logged records (steps that did not log a key are skipped).</summary>
    public static PlotSpec MetricsVsStep(IReadOnlyList<MetricsRecord> records, IReadOnlyList<string> keys, string title, string yLabel) =>
        new(title, "step", yLabel, keys.Select(k => new PlotSeries(k,
            records.Where(r => r.Values.ContainsKey(k)).Select(r => (double)r.Step).ToArray(),
            records.Where(r => r.Values.ContainsKey(k)).Select(r => r.Values[k]).ToArray())).ToArray());

    private static ScottPlot.Plot Build(PlotSpec spec)
    {
        var plot = new ScottPlot.Plot();
        foreach (var s in spec.Series)
        {
            if (s.X.Count != s.Y.Count) throw new ArgumentException($"plot \"{spec.Title}\": series \"{s.Name}\" has {s.X.Count} x values but {s.Y.Count} y values");
            var keep = Enumerable.Range(0, s.X.Count).Where(i => double.IsFinite(s.X[i]) && double.IsFinite(s.Y[i])).ToArray();
            var scatter = plot.Add.Scatter(keep.Select(i => s.X[i]).ToArray(), keep.Select(i => s.Y[i]).ToArray());
            scatter.LegendText = s.Name;
            scatter.LineWidth = spec.Lines ? 2 : 0;
            scatter.MarkerSize = spec.Lines ? 3 : 6;
        }
        plot.Title(spec.Title);
        plot.XLabel(spec.XLabel);
        plot.YLabel(spec.YLabel);
        if (spec.Series.Count > 0) plot.ShowLegend();
        return plot;
    }
}
