using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training;
using Xunit;

namespace Rlhf.Shell.Tests.Training;

public class TrainingRunTests
{
    private static RlhfConfig Load(string dir) =>
        ConfigLoader.LoadText($"training: {{ algorithm: online_dpo, total_episodes: 64, output_dir: '{dir}' }}\ndata: {{ task: sort }}\n", "run.yaml")
            .Match(c => c, errors => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(errors)));

    private static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "rlhf-run-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    [Fact]
    public void Open_writes_the_resolved_config_that_loads_back_equal()
    {
        var root = TempDir();
        var dir = Path.Combine(root, "run");
        var config = Load(dir);
        using (var run = TrainingRun.Open(config))
        {
            Assert.Equal(Path.GetFullPath(dir), run.Directory);
            Assert.Equal(Path.Combine(run.Directory, "checkpoints"), run.CheckpointsDirectory);
            Assert.Equal(Path.Combine(run.Directory, "final"), run.FinalDirectory);
        }
        var written = Path.Combine(dir, TrainingRun.ResolvedConfigFile);
        Assert.True(File.Exists(written));
        var back = ConfigLoader.Load(written).Match(c => c, errors => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(errors)));
        Assert.Equal(ConfigLoader.ToYaml(config), ConfigLoader.ToYaml(back));
        Assert.Empty(Directory.GetFiles(dir, ".write-test-*"));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Log_reaches_every_sink_and_the_history()
    {
        var root = TempDir();
        var console = new StringWriter();
        using (var run = TrainingRun.Open(Load(root), console: new TextMetricsSink(console)))
        {
            run.Log(1, 16, new Dictionary<string, double> { ["objective/scores"] = 0.25 });
            run.Log(2, 32, new Dictionary<string, double> { ["objective/scores"] = 0.5, ["lr"] = 3e-6 });
            Assert.Equal([1L, 2L], run.History.Select(r => r.Step));
        }
        var lines = File.ReadAllLines(Path.Combine(root, JsonlMetricsWriter.FileName));
        Assert.Equal(2, lines.Length);
        Assert.Contains("\"objective/scores\":0.5", lines[1].Replace(" ", ""));
        Assert.Contains("objective/scores", console.ToString());
        Directory.Delete(root, true);
    }

    [Fact]
    public void An_unwritable_output_directory_fails_before_anything_loads_and_names_it()
    {
        var root = TempDir();
        var file = Path.Combine(root, "not-a-dir");
        File.WriteAllText(file, "x");
        var target = Path.Combine(file, "run");                       // a directory below a regular file cannot exist
        var e = Assert.Throws<IOException>(() => TrainingRun.Open(Load(target)));
        Assert.Contains(target, e.Message);
        Assert.Contains("training.output_dir", e.Message);
        Directory.Delete(root, true);
    }
}
