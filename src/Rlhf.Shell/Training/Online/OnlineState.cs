using System.Text.Json;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Training.Online;

/// <summary>
/// The online loop's own part of a checkpoint (DeepSpeed's <c>client_state</c>), written beside the engine's shards as
/// <see cref="FileName"/>: where the run is, and in the asynchronous loop the rollouts already generated for the next steps
/// with the versions that sampled them (their weights are gone after the save, so they are kept, not regenerated). The data
/// order and the shuffles are functions of (seed, step) (<see cref="OnlineRng"/>) and need no state. Under many ranks each rank
/// writes its own file (<see cref="FileNameOf"/>): the loop's position is the same on every rank, the queued rollouts are the
/// rank's share of each step's prompts.
/// </summary>
/// <param name="Step">Steps completed.</param>
/// <param name="Episode">Rollouts trained on so far.</param>
/// <param name="PromptCursor">Prompts drawn for the completed steps.</param>
/// <param name="DroppedStale">Rollouts dropped as older than <c>training.max_staleness</c> so far.</param>
/// <param name="Async">Whether the run is asynchronous (<c>training.async</c>).</param>
/// <param name="Ahead">Steps the generator runs ahead of the trainer (0 when synchronous).</param>
/// <param name="Queued">The generated steps after <paramref name="Step"/> that were waiting to be trained on.</param>
/// <param name="ConsecutiveSkippedSteps">Optimizer steps skipped in a row up to <paramref name="Step"/> (<see cref="SkippedStepGuard"/>).</param>
public sealed record OnlineState(long Step, long Episode, long PromptCursor, long DroppedStale, bool Async, long Ahead, QueuedRollouts[] Queued,
    long ConsecutiveSkippedSteps = 0)
{
    /// <summary>The client file's name in a checkpoint directory (rank 0's).</summary>
    public const string FileName = "online_state.json";

    /// <summary>Rank <paramref name="rank"/>'s client file: <see cref="FileName"/> for rank 0, <c>online_state_rank&lt;r&gt;.json</c> for the others.</summary>
    public static string FileNameOf(int rank) => rank == 0 ? FileName : $"online_state_rank{rank}.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>The state as UTF-8 JSON.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>The step an online state was written at (for the run directory to keep the metrics up to it); checks nothing else.</summary>
    public static long StepOf(byte[] bytes, string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(nameof(Step), out var v) && v.TryGetInt64(out var step) && step >= 0)
                return step;
        }
        catch (JsonException e) { throw new CheckpointException(path, $"not a valid online state: {e.Message}", e); }
        throw new CheckpointException(path, "not a valid online state: expected an object with a non-negative Step");
    }

    /// <summary>Reads <paramref name="bytes"/> (from <paramref name="path"/>, named in errors) and checks it against the run resuming it.</summary>
    public static OnlineState Parse(byte[] bytes, string path, bool isAsync, long ahead, long steps)
    {
        OnlineState? s;
        try { s = JsonSerializer.Deserialize<OnlineState>(bytes, Json); }
        catch (JsonException e) { throw new CheckpointException(path, $"not a valid online state: {e.Message}", e); }
        if (s is null || s.Queued is null) throw new CheckpointException(path, "not a valid online state: expected an object with Step, Episode, Queued");
        if (s.Step < 0 || s.Step > steps) throw new CheckpointException(path, $"Step {s.Step}: expected 0 … {steps} (the run's steps)");
        if (s.Async != isAsync)
            throw new CheckpointException(path, $"Async {s.Async}: the checkpoint was written by a{(s.Async ? "n asynchronous" : " synchronous")} run; set training.async={(s.Async ? "true" : "false")} to resume it");
        if (s.Ahead != ahead)
            throw new CheckpointException(path, $"Ahead {s.Ahead}: the checkpoint's generator ran {s.Ahead} steps ahead; this run would run {ahead} (training.max_staleness must match)");
        var expected = Math.Max(0, Math.Min(steps, s.Step + ahead) - s.Step);
        if (s.Queued.Length != expected || s.Queued.Select((q, i) => q.Step != s.Step + 1 + i).Any(b => b))
            throw new CheckpointException(path, $"Queued: expected the generated steps {s.Step + 1} … {s.Step + expected}, found [{string.Join(", ", s.Queued.Select(q => q.Step))}]");
        foreach (var q in s.Queued) q.Check(path);
        return s;
    }
}

/// <summary>One generated step kept in a checkpoint: its rows' prompt groups, completions and generator logprobs, and the version that sampled them.</summary>
/// <param name="Step">The step the rollouts are for.</param>
/// <param name="Version">The policy version (optimizer steps) that sampled them.</param>
/// <param name="Groups">Each row's prompt index in the step.</param>
/// <param name="Completions">Each row's generated ids.</param>
/// <param name="Logprobs">Each row's generator logprobs.</param>
public sealed record QueuedRollouts(long Step, long Version, int[] Groups, int[][] Completions, float[][] Logprobs)
{
    /// <summary>The rows of <paramref name="g"/>.</summary>
    public static QueuedRollouts From(GeneratedStep g) =>
        new(g.Step, g.Version, g.Rows.Select(r => r.Group).ToArray(), g.Rows.Select(r => r.Completion).ToArray(), g.Rows.Select(r => r.Logprobs).ToArray());

    /// <summary>Back to a generated step over <paramref name="prompts"/> (this rank's share of the step's prompts, drawn again), <paramref name="samplesPerPrompt"/> rows each.</summary>
    public GeneratedStep ToGenerated(PromptExample[] prompts, long samplesPerPrompt, string path)
    {
        if (Groups.Length != prompts.Length * samplesPerPrompt)
            throw new CheckpointException(path,
                $"Queued step {Step}: {Groups.Length} rows, expected {prompts.Length} prompts × {samplesPerPrompt} samples (this rank's share of a step); was the checkpoint written with another distributed.world_size or batch size?");
        if (Groups.Any(g => g >= prompts.Length))
            throw new CheckpointException(path, $"Queued step {Step}: a group index ≥ the step's {prompts.Length} prompts");
        var rows = Groups.Select((g, i) => new RolloutRow(prompts[g], Completions[i], g, Logprobs[i])).ToArray();
        return new GeneratedStep(Step, prompts, rows, Version, 0);
    }

    /// <summary>Checks the arrays agree.</summary>
    public void Check(string path)
    {
        if (Groups is null || Completions is null || Logprobs is null || Completions.Length != Groups.Length || Logprobs.Length != Groups.Length)
            throw new CheckpointException(path, $"Queued step {Step}: Groups, Completions and Logprobs must be arrays of one length");
        for (var i = 0; i < Groups.Length; i++)
            if (Groups[i] < 0 || Completions[i] is null || Logprobs[i] is null || Completions[i].Length != Logprobs[i].Length)
                throw new CheckpointException(path, $"Queued step {Step}, row {i}: a negative group, or completion and logprobs of different lengths");
    }
}
