using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Telemetry;

namespace Rlhf.Shell.Training;

/// <summary>
/// The run directory every stage writes (<c>training.output_dir</c>):
/// <list type="bullet">
/// <item><c>config.resolved.yaml</c> — the config as it ran, every default filled in;</item>
/// <item><c>metrics.jsonl</c>, <c>metrics.csv</c>, TensorBoard <c>events.out.tfevents.*</c> — one record per logged step (as <c>logging</c> selects);</item>
/// <item><c>checkpoints/</c> — engine checkpoints (<c>global_stepN/</c> and <c>latest</c>);</item>
/// <item><c>final/</c> — the trained model as a Hugging Face directory (and <c>final/reward_model</c>, <c>final/value_model</c> where one was trained).</item>
/// </list>
/// <see cref="Open"/> checks that the directory is writable before any model loads, so a bad path fails in a second, not
/// after minutes of loading; nothing already in the directory is removed (a failed run leaves earlier outputs intact).
/// </summary>
public sealed class TrainingRun : IDisposable
{
    /// <summary>File name of the resolved config.</summary>
    public const string ResolvedConfigFile = "config.resolved.yaml";

    private readonly IMetricsSink metrics;

    private TrainingRun(RlhfConfig config, string directory, IMetricsSink metrics)
    {
        Config = config;
        Directory = directory;
        this.metrics = metrics;
    }

    /// <summary>The resolved config of the run.</summary>
    public RlhfConfig Config { get; }

    /// <summary>The run directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>Where engine checkpoints go (<c>checkpoints/</c>).</summary>
    public string CheckpointsDirectory => Path.Combine(Directory, "checkpoints");

    /// <summary>Where the trained model goes (<c>final/</c>).</summary>
    public string FinalDirectory => Path.Combine(Directory, "final");

    /// <summary>
    /// Set when the run should stop early (SIGINT/SIGTERM, Ctrl-C): every loop checks it between steps, writes a checkpoint
    /// and ends with <see cref="OperationCanceledException"/>. Default: never.
    /// </summary>
    public CancellationToken Stopping { get; set; }

    /// <summary>The records logged so far, in order (what <see cref="Log"/> wrote).</summary>
    public List<MetricsRecord> History { get; } = [];

    /// <summary>
    /// Opens the run directory of <paramref name="config"/> (<c>training.output_dir</c>, or <paramref name="directory"/> when
    /// given): creates it, proves it writable, writes <c>config.resolved.yaml</c> and opens the metrics sinks the
    /// <c>logging</c> section selects, plus <paramref name="console"/> (e.g. a <see cref="TextMetricsSink"/>) when given.
    /// Throws <see cref="IOException"/> naming the directory when it cannot be written.
    /// </summary>
    public static TrainingRun Open(RlhfConfig config, string? directory = null, IMetricsSink? console = null)
    {
        var dir = Path.GetFullPath(directory ?? config.Training.OutputDir);
        try
        {
            System.IO.Directory.CreateDirectory(dir);
            var probe = Path.Combine(dir, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output directory {dir} is not writable ({e.Message}); set training.output_dir to a directory you can write", e);
        }
        WriteAtomically(Path.Combine(dir, ResolvedConfigFile), ConfigLoader.ToYaml(config));
        var sinks = MetricsSinks.From(config.Logging, dir);
        IMetricsSink all = console is null ? sinks : new MetricsSinks([.. sinks.Sinks, console]);
        return new TrainingRun(config, dir, all);
    }

    /// <summary>Writes one logged step to every sink and keeps it in <see cref="History"/>.</summary>
    public void Log(long step, long episode, IReadOnlyDictionary<string, double> values)
    {
        var record = new MetricsRecord(step, episode, values);
        History.Add(record);
        metrics.Write(record);
    }

    /// <summary>Closes the sinks.</summary>
    public void Dispose() => metrics.Dispose();

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> through a temporary file and a rename, so a reader never sees half a file.</summary>
    public static void WriteAtomically(string path, string text)
    {
        var tmp = path + $".tmp-{Environment.ProcessId}";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
