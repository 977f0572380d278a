using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Telemetry;

namespace Rlhf.Shell.Training;

/// <summary>
/// The run directory every stage writes (<c>training.output_dir</c>):
/// <list type="bullet">
/// <item><c>config.resolved.yaml</c> — the config as it ran, every default filled in;</item>
/// <item><c>metrics.jsonl</c>, <c>metrics.csv</c>, TensorBoard <c>events.out.tfevents.*</c> — one record per logged step (as <c>logging</c> selects);</item>
/// <item><c>checkpoints/</c> — engine checkpoints (<c>global_stepN/</c> and <c>latest</c>; <c>checkpointing.dir</c> moves them), each with the stage's <see cref="TrainerState"/>;</item>
/// <item><c>final/</c> — the trained model as a Hugging Face directory (and <c>final/reward_model</c>, <c>final/value_model</c> where one was trained).</item>
/// </list>
/// <see cref="Open"/> checks that the directory is writable before any model loads, so a bad path fails in a second, not
/// after minutes of loading; nothing already in the directory is removed (a failed run leaves earlier outputs intact).
/// A resumed run (<c>rlhf train … --resume</c>) reopens the same directory: the metrics files keep the records up to the
/// checkpoint's step and are appended to from there.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    /// <summary>File name of the resolved config.</summary>
    public const string ResolvedConfigFile = "config.resolved.yaml";

    private readonly IMetricsSink metrics;

    private TrainingRun(RlhfConfig config, string directory, IMetricsSink metrics, TrainerState? resumed)
    {
        Config = config;
        Directory = directory;
        this.metrics = metrics;
        Resumed = resumed;
    }

    /// <summary>The resolved config of the run.</summary>
    public RlhfConfig Config { get; }

    /// <summary>The run directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>Where engine checkpoints go: <c>checkpointing.dir</c> when set, else <c>checkpoints/</c> in the run directory.</summary>
    public string CheckpointsDirectory => CheckpointsOf(Config, Directory);

    /// <summary>
    /// The trainer state of the checkpoint the run resumes from (the one <c>latest</c> names when the run was opened with
    /// <c>resume</c>); null for a fresh run. The stage loads the engine from the same checkpoint and continues at
    /// <c>Resumed.Step + 1</c>.
    /// </summary>
    public TrainerState? Resumed { get; }

    /// <summary>The tag the resumed checkpoint was read under (null for a fresh run).</summary>
    public string? ResumedTag { get; private init; }

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
    /// Throws <see cref="IOException"/> naming the directory when it cannot be written. With <paramref name="resume"/> it
    /// reads the trainer state of the checkpoint <c>latest</c> names (verified; <see cref="CheckpointException"/> when there
    /// is none) and drops the metrics records logged after that checkpoint's step, so the resumed steps are not counted twice.
    /// </summary>
    public static TrainingRun Open(RlhfConfig config, string? directory = null, IMetricsSink? console = null, bool resume = false)
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
        TrainerState? resumed = null;
        string? tag = null;
        if (resume)
        {
            var checkpoints = CheckpointsOf(config, dir);
            if (!File.Exists(Path.Combine(checkpoints, Checkpoint.LatestFile)))
                throw new CheckpointException(Path.Combine(checkpoints, Checkpoint.LatestFile),
                    "nothing to resume: no checkpoint was written in this run directory (training.save_steps sets how often a run saves)");
            tag = Checkpoint.ReadLatest(checkpoints);
            // The online loop keeps its own state (queued rollouts and all) and reads it itself; the offline stages' is read here.
            // Only rank 0 (which logs) rewrites the metrics: another rank's rewrite, a rename, would orphan rank 0's open file.
            var logs = Engine.DistributedEnvironment.FromProcess().Rank == 0;
            if (Checkpoint.ReadClientFile(checkpoints, tag, Online.OnlineState.FileName) is { } online)
            {
                var step = Online.OnlineState.StepOf(online, Path.Combine(checkpoints, tag, Online.OnlineState.FileName));
                if (logs) MetricsSinks.DropAfter(dir, step);
            }
            else
            {
                resumed = TrainerState.Read(checkpoints, tag);
                if (logs) MetricsSinks.DropAfter(dir, resumed.Step);
            }
        }
        WriteAtomically(Path.Combine(dir, ResolvedConfigFile), ConfigLoader.ToYaml(config));
        var sinks = MetricsSinks.From(config.Logging, dir);
        IMetricsSink all = console is null ? sinks : new MetricsSinks([.. sinks.Sinks, console]);
        return new TrainingRun(config, dir, all, resumed) { ResumedTag = tag };
    }

    /// <summary>True when the run directory of <paramref name="config"/> (or <paramref name="directory"/>) holds a checkpoint to resume (<c>latest</c> exists).</summary>
    public static bool HasCheckpoint(RlhfConfig config, string? directory = null) =>
        File.Exists(Path.Combine(CheckpointsOf(config, Path.GetFullPath(directory ?? config.Training.OutputDir)), Checkpoint.LatestFile));

    private static string CheckpointsOf(RlhfConfig config, string dir) =>
        config.Checkpointing.Dir is { Length: > 0 } d ? Path.GetFullPath(d) : Path.Combine(dir, "checkpoints");

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

/// <summary>
/// A run that stopped early because <see cref="TrainingRun.Stopping"/> was set (SIGINT, SIGTERM): the step in progress was
/// finished and a checkpoint written; <c>rlhf train … --resume</c> continues from it.
/// </summary>
public sealed class TrainingStoppedException(long step, string checkpoint)
    : OperationCanceledException($"stopped after step {step}; checkpoint {checkpoint}")
{
    /// <summary>The last optimizer step done.</summary>
    public long Step { get; } = step;

    /// <summary>The checkpoint written at the stop (a directory).</summary>
    public string Checkpoint { get; } = checkpoint;
}

/// <summary>
/// A run that stopped because <c>training.max_consecutive_skipped_steps</c> optimizer steps in a row had a non-finite loss or
/// gradient norm; a checkpoint of the state before the bad steps' updates (none was applied) was written first.
/// </summary>
public sealed class TrainingDivergedException(string message, string checkpoint) : Exception(message)
{
    /// <summary>The checkpoint written before stopping.</summary>
    public string Checkpoint { get; } = checkpoint;
}
