using System.Buffers.Binary;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Tests.Io;

namespace Rlhf.Shell.Tests.Telemetry;

/// <summary>Plots as PNG and SVG, and report.html.</summary>
public class PlotTests
{
    private static readonly MetricsRecord[] Records = Enumerable.Range(1, 20).Select(s => new MetricsRecord(s, 8L * s, new Dictionary<string, double>
    {
        ["gold_reward"] = 0.5 + 0.02 * s,
        ["proxy_reward"] = 0.5 + 0.03 * s,
        ["objective/kl"] = s == 7 ? double.NaN : 0.01 * s * s,
    })).ToArray();

    [Fact]
    public void Line_plot_png_decodes_to_the_requested_size_and_svg_names_every_series()
    {
        using var dir = new TempDir();
        var spec = Plots.MetricsVsStep(Records, ["gold_reward", "proxy_reward"], "Gold vs proxy reward", "reward");
        var (png, svg) = Plots.Save(spec, dir.File("plots/reward"), 640, 400);

        var bytes = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(bytes, 12, 4));
        Assert.Equal(640u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16)));
        Assert.Equal(400u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20)));
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal((640, 400), (bitmap.Width, bitmap.Height));
        // Not a blank canvas: a rendered chart has many colours.
        Assert.True(bitmap.Pixels.Distinct().Count() > 10);

        var doc = XDocument.Load(svg);
        Assert.Equal("svg", doc.Root!.Name.LocalName);
        var text = string.Concat(doc.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value));
        foreach (var s in new[] { "gold_reward", "proxy_reward", "Gold vs proxy reward", "step", "reward" }) Assert.Contains(s, text);
    }

    [Fact]
    public void Scatter_of_gold_reward_against_kl_skips_non_finite_points()
    {
        using var dir = new TempDir();
        var spec = new PlotSpec("Gold reward vs KL", "KL to the SFT policy", "gold reward",
            [new PlotSeries("online_dpo", Records.Select(r => r.Values["objective/kl"]).ToArray(), Records.Select(r => r.Values["gold_reward"]).ToArray())], Lines: false);
        var (png, svg) = Plots.Save(spec, dir.File("gold_vs_kl"));
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.Equal((Plots.Width, Plots.Height), (bitmap.Width, bitmap.Height));
        Assert.Contains("online_dpo", XDocument.Load(svg).ToString());
        Assert.Throws<ArgumentException>(() => Plots.Save(new PlotSpec("t", "x", "y", [new PlotSeries("s", [1, 2], [1])]), dir.File("bad")));
    }

    [Fact]
    public void Report_references_only_files_that_exist_and_escapes_text()
    {
        using var dir = new TempDir();
        Plots.Save(Plots.MetricsVsStep(Records, ["objective/kl"], "KL", "kl"), dir.File("plots/kl"));
        var table = new ReportTable("Before → after", ["metric", "SFT", "final"], [["gold win-rate", "50%", "81%"], ["<script>", "a&b", "1"]]);
        var path = RunReport.Write(dir.Path, "Quickstart <run>", [table], [new ReportFigure("KL vs step", "plots/kl.png", "plots/kl.svg")]);
        var html = File.ReadAllText(path);
        Assert.Contains("<title>Quickstart &lt;run&gt;</title>", html);
        Assert.Contains("<td>&lt;script&gt;</td>", html);
        Assert.Contains("<td>81%</td>", html);
        var refs = Regex.Matches(html, "(?:src|href)=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToArray();
        Assert.Equal(["plots/kl.png", "plots/kl.svg"], refs);
        foreach (var r in refs) Assert.True(File.Exists(Path.Combine(dir.Path, r)), r);

        Assert.Throws<FileNotFoundException>(() => RunReport.Write(dir.Path, "t", [], [new ReportFigure("missing", "plots/none.png", null)]));
    }
}
