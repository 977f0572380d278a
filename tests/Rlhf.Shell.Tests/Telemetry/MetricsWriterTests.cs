using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Settings;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Tests.Io;

namespace Rlhf.Shell.Tests.Telemetry;

/// <summary>metrics.jsonl and metrics.csv: contents, the union of keys in a stable order, late keys, flushing and resuming after a crash.</summary>
public class MetricsWriterTests
{
    private static MetricsRecord R(long step, params (string Key, double Value)[] values) =>
        new(step, step * 8, values.ToDictionary(v => v.Key, v => v.Value));

    [Fact]
    public void Jsonl_has_one_object_per_step_with_step_episode_and_the_metrics()
    {
        using var dir = new TempDir();
        var path = dir.File("logs/metrics.jsonl");
        using (var w = new JsonlMetricsWriter(path))
        {
            w.Write(R(1, ("objective/kl", 0.1), ("objective/scores", -2.5)));
            w.Write(R(2, ("objective/kl", 1.0 / 3)));
        }
        var lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        using var first = JsonDocument.Parse(lines[0]);
        Assert.Equal(["step", "episode", "objective/kl", "objective/scores"], first.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(1, first.RootElement.GetProperty("step").GetInt64());
        Assert.Equal(8, first.RootElement.GetProperty("episode").GetInt64());
        Assert.Equal(-2.5, first.RootElement.GetProperty("objective/scores").GetDouble());
        using var second = JsonDocument.Parse(lines[1]);
        Assert.Equal(1.0 / 3, second.RootElement.GetProperty("objective/kl").GetDouble());   // round-trip precision
    }

    [Fact]
    public void Jsonl_writes_nan_as_python_does_and_rejects_reserved_names()
    {
        using var dir = new TempDir();
        using var w = new JsonlMetricsWriter(dir.File("m.jsonl"));
        w.Write(R(1, ("a", double.NaN), ("b", double.NegativeInfinity)));
        Assert.Equal("{\"step\": 1, \"episode\": 8, \"a\": NaN, \"b\": -Infinity}\n", ReadShared(dir.File("m.jsonl")));
        Assert.Throws<ArgumentException>(() => w.Write(R(2, ("step", 1))));
    }

    [Fact]
    public void Each_jsonl_line_is_on_disk_when_write_returns()
    {
        using var dir = new TempDir();
        using var w = new JsonlMetricsWriter(dir.File("m.jsonl"));
        w.Write(R(1, ("a", 1)));
        Assert.Equal("{\"step\": 1, \"episode\": 8, \"a\": 1}\n", ReadShared(dir.File("m.jsonl")));
    }

    [Fact]
    public void Reopening_after_a_crash_drops_the_torn_last_line_and_continues()
    {
        using var dir = new TempDir();
        var path = dir.File("m.jsonl");
        File.WriteAllText(path, "{\"step\": 1, \"episode\": 8, \"a\": 1}\n{\"step\": 2, \"epis");
        using (var w = new JsonlMetricsWriter(path)) w.Write(R(2, ("a", 2)));
        Assert.Equal("{\"step\": 1, \"episode\": 8, \"a\": 1}\n{\"step\": 2, \"episode\": 16, \"a\": 2}\n", File.ReadAllText(path));
    }

    [Fact]
    public void Csv_columns_are_the_union_in_first_seen_order_and_a_late_key_rewrites_the_header()
    {
        using var dir = new TempDir();
        var path = dir.File("metrics.csv");
        using (var w = new CsvMetricsWriter(path))
        {
            w.Write(R(1, ("objective/kl", 0.5), ("loss/policy_avg", 2)));
            Assert.Equal("step,episode,objective/kl,loss/policy_avg\n1,8,0.5,2\n", ReadShared(path));
            w.Write(R(2, ("loss/policy_avg", 1.5)));
            w.Write(R(3, ("timing/train_s", 0.25), ("objective/kl", 0.4)));   // a late key
            w.Write(R(4, ("objective/kl", 0.3)));
        }
        Assert.Equal(
            "step,episode,objective/kl,loss/policy_avg,timing/train_s\n" +
            "1,8,0.5,2,\n" +
            "2,16,,1.5,\n" +
            "3,24,0.4,,0.25\n" +
            "4,32,0.3,,\n", File.ReadAllText(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void Csv_resumes_an_existing_file_and_quotes_odd_names()
    {
        using var dir = new TempDir();
        var path = dir.File("metrics.csv");
        using (var w = new CsvMetricsWriter(path)) w.Write(R(1, ("a,b", 1)));
        File.AppendAllText(path, "2,16,");   // a torn row
        using (var w = new CsvMetricsWriter(path))
        {
            Assert.Equal(["a,b"], w.Columns);
            w.Write(R(2, ("a,b", 2), ("say \"hi\"", 3)));
        }
        Assert.Equal("step,episode,\"a,b\",\"say \"\"hi\"\"\"\n1,8,1,\n2,16,2,3\n", File.ReadAllText(path));
        var parsed = CsvMetricsWriter.Parse(File.ReadAllText(path));
        Assert.Equal(["step", "episode", "a,b", "say \"hi\""], parsed[0]);
    }

    [Fact]
    public void Sinks_follow_the_logging_settings()
    {
        using var dir = new TempDir();
        using (var sinks = MetricsSinks.From(new LoggingSettings { Jsonl = true, Csv = true, Tensorboard = true }, dir.Path))
        {
            Assert.Equal(3, sinks.Sinks.Count);
            sinks.Write(R(1, ("a", 1)));
        }
        Assert.True(File.Exists(dir.File("metrics.jsonl")));
        Assert.True(File.Exists(dir.File("metrics.csv")));
        Assert.Single(Directory.GetFiles(dir.Path, "events.out.tfevents.*"));
        using var none = MetricsSinks.From(new LoggingSettings { Jsonl = false, Csv = false, Tensorboard = false }, dir.File("x"));
        Assert.Empty(none.Sinks);
    }

    private static string ReadShared(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(fs).ReadToEnd();
    }

    [Fact]
    public void Metrics_read_back_equal_what_was_written() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(
            Arb.From(Gen.Elements("objective/kl", "loss/policy_avg", "a,b", "quote\"d", "ünïcode", "NaN: x").ArrayOf()),
            Arb.From(Gen.Elements(0.0, -1.5, 1e-300, double.MaxValue, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1.0 / 3).ArrayOf()),
            (keys, values) =>
            {
                using var dir = new TempDir();
                var path = dir.File("m.jsonl");
                var written = new List<MetricsRecord>();
                using (var w = new JsonlMetricsWriter(path))
                    for (var s = 0; s < 3; s++)
                    {
                        var d = new Dictionary<string, double>();
                        for (var i = 0; i < Math.Min(keys.Length, values.Length); i++) d[keys[i]] = values[(i + s) % values.Length];
                        var r = new MetricsRecord(s, 10L * s, d);
                        w.Write(r);
                        written.Add(r);
                    }
                File.AppendAllText(path, "{\"step\": 3, \"epi");   // a torn line is ignored
                var read = MetricsLog.Read(path);
                Assert.Equal(written.Count, read.Count);
                for (var i = 0; i < read.Count; i++)
                {
                    Assert.Equal((written[i].Step, written[i].Episode), (read[i].Step, read[i].Episode));
                    Assert.Equal(written[i].Values.ToArray(), read[i].Values.ToArray());
                }
            }));

    [Fact]
    public void A_bad_metrics_line_names_the_file_and_line()
    {
        using var dir = new TempDir();
        var path = dir.File("m.jsonl");
        File.WriteAllText(path, "{\"step\": 1, \"episode\": 8}\n{\"step\": 2}\n");
        Assert.Equal($"{path}:2: expected \"step\" and \"episode\"", Assert.Throws<InvalidDataException>(() => MetricsLog.Read(path)).Message);
    }

    [Fact]
    public void Text_sink_writes_one_plain_line_per_step()
    {
        var text = new StringWriter();
        using var sink = new TextMetricsSink(text, ["objective/kl", "missing", "objective/scores"]);
        sink.Write(R(5, ("objective/scores", -1.5), ("objective/kl", 0.123456), ("other", 1)));
        Assert.Equal("step 5 episode 40 objective/kl=0.1235 objective/scores=-1.5" + Environment.NewLine, text.ToString());
        Assert.Equal("step 1 episode 8 b=2 a=1", new TextMetricsSink(new StringWriter()).Line(R(1, ("b", 2), ("a", 1))));
    }
}
