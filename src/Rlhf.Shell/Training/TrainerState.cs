using System.Text;
using System.Text.Json;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Training;

/// <summary>
/// A trainer's own state in a checkpoint, beside the engine's shards (HF Trainer's <c>trainer_state.json</c>, DeepSpeed's
/// <c>client_state</c>): where the loop stands and what it must find unchanged to continue exactly. Written by every stage
/// through <see cref="ZeroEngine.SaveCheckpoint"/>'s client-state hook (so it is checksummed in the manifest and committed
/// with the shards) and read back verified with <see cref="Read"/>.
/// </summary>
/// <param name="Algorithm">The stage that wrote it (<c>training.algorithm</c>, as the config spells it).</param>
/// <param name="Step">Optimizer steps done (skipped ones included): the loop continues at <c>Step + 1</c>.</param>
/// <param name="Episode">Examples (offline) or episodes (online) consumed so far.</param>
/// <param name="DataCursor">Batches drawn from the data stream so far; with <paramref name="DataSeed"/> it fixes every later batch.</param>
/// <param name="DataSeed">The seed of the data order: epoch <c>e</c>'s order is a pure function of (seed, e).</param>
/// <param name="ConsecutiveSkippedSteps">Optimizer steps skipped in a row for a non-finite loss or gradient norm, up to <paramref name="Step"/>.</param>
/// <param name="Fingerprint">What the run must find unchanged to resume (model shape, algorithm, batch arithmetic, data), as key → value.</param>
/// <param name="Rngs">Named random-generator states a stage restores (an opaque string per generator; empty when every draw derives from a seed and a counter).</param>
public sealed record TrainerState(
    string Algorithm, long Step, long Episode, long DataCursor, long DataSeed, long ConsecutiveSkippedSteps,
    IReadOnlyDictionary<string, string> Fingerprint, IReadOnlyDictionary<string, string> Rngs)
{
    /// <summary>The file's name inside a checkpoint (<c>global_stepN/trainer_state.json</c>).</summary>
    public const string FileName = "trainer_state.json";

    /// <summary>Largest trainer-state file read (1 MiB); a larger one is refused as corrupt.</summary>
    public const long MaxBytes = 1L << 20;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Writes the state into <paramref name="checkpointDirectory"/> (the directory a save is writing; call it from the client-state hook on one rank).</summary>
    public void WriteTo(string checkpointDirectory) =>
        File.WriteAllText(Path.Combine(checkpointDirectory, FileName), JsonSerializer.Serialize(this, Json), new UTF8Encoding(false));

    /// <summary>
    /// The trainer state of checkpoint <paramref name="tag"/> (default: the one <c>latest</c> names) in
    /// <paramref name="checkpoints"/>, verified against the manifest. Throws <see cref="CheckpointException"/> naming the file
    /// when it is missing, corrupt or not a trainer state.
    /// </summary>
    public static TrainerState Read(string checkpoints, string? tag = null)
    {
        tag ??= Checkpoint.ReadLatest(checkpoints);
        var path = Path.Combine(checkpoints, tag, FileName);
        var bytes = Checkpoint.ReadClientFile(checkpoints, tag, FileName)
            ?? throw new CheckpointException(path, "missing: the checkpoint holds the engine's state but no trainer state (it was not written by rlhf train), so the run cannot continue exactly");
        if (bytes.LongLength > MaxBytes) throw new CheckpointException(path, $"larger than {MaxBytes} bytes (TrainerState.MaxBytes): corrupt");
        TrainerState? s;
        try { s = JsonSerializer.Deserialize<TrainerState>(bytes, Json); }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException)
        {
            throw new CheckpointException(path, $"not a valid trainer state: {e.Message}", e);
        }
        if (s is null || s.Algorithm is null || s.Fingerprint is null || s.Step < 0 || s.DataCursor < 0)
            throw new CheckpointException(path, "not a valid trainer state: expected an object with Algorithm, Step ≥ 0, DataCursor ≥ 0 and Fingerprint");
        return s with { Rngs = s.Rngs ?? new Dictionary<string, string>() };
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> (one line) naming every key whose value in <paramref name="current"/> differs
    /// from the checkpoint's <see cref="Fingerprint"/> (or is only in one of them); <paramref name="where"/> names the checkpoint.
    /// </summary>
    public void CheckMatches(IReadOnlyDictionary<string, string> current, string where)
    {
        var diffs = Fingerprint.Keys.Union(current.Keys).Order(StringComparer.Ordinal)
            .Select(k => (Key: k, Then: Fingerprint.GetValueOrDefault(k), Now: current.GetValueOrDefault(k)))
            .Where(d => d.Then != d.Now)
            .Select(d => $"{d.Key}: checkpoint {d.Then ?? "(unset)"}, config {d.Now ?? "(unset)"}")
            .ToList();
        if (diffs.Count > 0)
            throw new ArgumentException($"cannot resume from {where}: the config differs from the one it was written with ({string.Join("; ", diffs)}); resume with the run's own config (config.resolved.yaml in its directory) or start a new output_dir");
    }
}
