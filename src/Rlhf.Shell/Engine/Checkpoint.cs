using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Rlhf.Settings;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>What <c>engine_state.json</c> records: the layout the shards were cut with, and the counters.</summary>
public sealed record CheckpointState(
    string Tag, ZeroStage Stage, int WorldSize, IReadOnlyList<FlatParam> Params,
    long GlobalSteps, long MicroSteps, long SkippedSteps, bool Bf16, string Scheduler)
{
    /// <summary>The partition layout of the saved shards.</summary>
    public PartitionLayout Layout => new(Stage, WorldSize, Params);
}

/// <summary>Full fp32 training state rebuilt from a checkpoint's shards, per parameter in layout order.</summary>
public sealed record FullTrainingState(CheckpointState State, IReadOnlyList<Tensor> Masters, IReadOnlyList<Tensor> ExpAvg, IReadOnlyList<Tensor> ExpAvgSq);

/// <summary>
/// Sharded checkpoints in DeepSpeed's layout: <c>&lt;dir&gt;/global_step&lt;N&gt;/</c> holding
/// <c>zero_pp_rank_&lt;r&gt;_mp_rank_00_optim_states.pt</c> (each rank's fp32 masters and Adam moments),
/// model states (<c>mp_rank_00_model_states.pt</c> with the 16-bit weights, or per-rank
/// <c>zero_pp_rank_&lt;r&gt;_mp_rank_00_model_states.pt</c> shards at stage 3), <c>engine_state.json</c>,
/// and <c>&lt;dir&gt;/latest</c> naming the tag. Written atomically: every rank writes into
/// <c>.&lt;tag&gt;.tmp</c>, then rank 0 renames it into place and replaces <c>latest</c> last, so a crash
/// mid-save leaves the previous checkpoint and <c>latest</c> intact. Loads at any world size.
/// </summary>
public static class Checkpoint
{
    /// <summary>The file naming the newest tag.</summary>
    public const string LatestFile = "latest";
    /// <summary>The layout and counters file.</summary>
    public const string StateFile = "engine_state.json";
    /// <summary>Stages 0–2: rank 0's full 16-bit weights.</summary>
    public const string ModelStatesFile = "mp_rank_00_model_states.pt";

    /// <summary>Rank <paramref name="rank"/>'s optimizer-state shard.</summary>
    public static string OptimStatesFile(int rank) => $"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt";

    /// <summary>Stage 3: rank <paramref name="rank"/>'s parameter shard.</summary>
    public static string ModelShardFile(int rank) => $"zero_pp_rank_{rank}_mp_rank_00_model_states.pt";

    /// <summary>Test seam: runs on every rank after its files are written and before the checkpoint is committed.</summary>
    public static Action<int>? BeforeCommit { get; set; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    internal static string Save(ZeroEngine e, string dir, string? tag)
    {
        tag ??= $"global_step{e.GlobalSteps}";
        if (tag.Length == 0 || tag.StartsWith('.') || tag.IndexOfAny(['/', '\\']) >= 0 || tag == LatestFile)
            throw new ArgumentException($"checkpoint tag '{tag}' must be a plain, non-hidden directory name");
        AgreeOnTag(e, tag);
        var final = Path.Combine(dir, tag);
        var tmp = Path.Combine(dir, $".{tag}.tmp");
        var optimizer = e.Optimizer ?? throw new InvalidOperationException("a frozen engine has no training state to checkpoint: save its weights with Save16BitModel");
        void Barrier() => e.Comm.Barrier();

        if (e.Rank == 0)
        {
            Directory.CreateDirectory(dir);
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            Directory.CreateDirectory(tmp);
        }
        Barrier();

        using (var scope = Torch.NewScope())
        {
            if (e.Stage != ZeroStage.Disabled || e.Rank == 0)
                WriteFile(Path.Combine(tmp, OptimStatesFile(e.Rank)), [new("fp32_master", optimizer.Master), new("exp_avg", optimizer.ExpAvg), new("exp_avg_sq", optimizer.ExpAvgSq)]);
            foreach (var (file, tensors) in e.State.ModelStateFiles())
                WriteFile(Path.Combine(tmp, file), tensors);
            if (e.Rank == 0)
            {
                var (gs, ms, ss) = e.Counters;
                var state = new CheckpointState(tag, e.Stage, e.WorldSize, e.Layout.Params, gs, ms, ss, e.Settings.Bf16.Enabled, e.Settings.Scheduler is { } sc ? SchedulerTypeYaml.ToYaml(sc.Type) : "Constant");
                WriteText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, Json));
            }
        }
        Barrier();
        BeforeCommit?.Invoke(e.Rank);

        if (e.Rank == 0)
        {
            string? old = null;
            if (Directory.Exists(final))
            {
                old = Path.Combine(dir, $".{tag}.old-{Guid.NewGuid():N}");
                Directory.Move(final, old);
            }
            Directory.Move(tmp, final);
            WriteText(Path.Combine(dir, LatestFile), tag);
            if (old is not null) Directory.Delete(old, recursive: true);
        }
        Barrier();
        return tag;
    }

    /// <summary>Every rank must save under the same tag: compare a hash of it across ranks (all-reduce MIN and MAX).</summary>
    private static void AgreeOnTag(ZeroEngine e, string tag)
    {
        if (!e.Comm.Active) return;
        var h = SHA256.HashData(Encoding.UTF8.GetBytes(tag));
        var parts = Enumerable.Range(0, 4).Select(i => (double)BitConverter.ToUInt16(h, 2 * i)).ToArray();
        using var scope = Torch.NewScope();
        var max = Torch.From(parts, 4);
        var min = Torch.From(parts, 4);
        e.Comm.Run(g => g.AllReduce(max, ReduceOp.Max));
        e.Comm.Run(g => g.AllReduce(min, ReduceOp.Min));
        if (!max.Equal(min))
            throw new InvalidOperationException($"rank {e.Rank}: ranks disagree on the checkpoint tag (this rank has '{tag}'); every rank must save the same tag");
    }

    private static void WriteFile(string path, IReadOnlyList<KeyValuePair<string, Tensor>> tensors)
    {
        var part = path + ".part";
        ShardFile.Save(part, tensors);
        Fsync(part);
        File.Move(part, path, overwrite: true);
    }

    private static void WriteText(string path, string text)
    {
        var part = path + ".part";
        File.WriteAllText(part, text);
        Fsync(part);
        File.Move(part, path, overwrite: true);
    }

    private static void Fsync(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>The tag <c>&lt;dir&gt;/latest</c> names.</summary>
    public static string ReadLatest(string dir)
    {
        var p = Path.Combine(dir, LatestFile);
        if (!File.Exists(p)) throw new FileNotFoundException($"no '{LatestFile}' file in {dir}: not a checkpoint directory, or nothing was saved yet", p);
        return File.ReadAllText(p).Trim();
    }

    /// <summary>Reads <c>engine_state.json</c> of a checkpoint.</summary>
    public static CheckpointState ReadState(string dir, string? tag = null)
    {
        tag ??= ReadLatest(dir);
        var p = Path.Combine(dir, tag, StateFile);
        if (!File.Exists(p)) throw new FileNotFoundException($"checkpoint {Path.Combine(dir, tag)} has no {StateFile}", p);
        return JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(p), Json) ?? throw new InvalidDataException($"{p} is empty");
    }

    /// <summary>
    /// Rebuilds the full fp32 masters and Adam moments of every parameter from all ranks' shards, whatever the
    /// stage and world size they were saved at (the core of <c>zero_to_fp32</c>). Tensors join the current scope.
    /// </summary>
    public static FullTrainingState ReadFull(string dir, string? tag = null)
    {
        tag ??= ReadLatest(dir);
        var state = ReadState(dir, tag);
        var layout = state.Layout;
        var masters = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var m = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var v = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var ranks = state.Stage == ZeroStage.Disabled ? 1 : state.WorldSize;
        for (var r = 0; r < ranks; r++)
        {
            using var scope = Torch.NewScope();
            var path = Path.Combine(dir, tag, OptimStatesFile(r));
            if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint {tag} lacks rank {r}'s optimizer shard", path);
            var d = ShardFile.Load(path).ToDictionary(kv => kv.Key, kv => kv.Value);
            foreach (var key in new[] { "fp32_master", "exp_avg", "exp_avg_sq" })
            {
                if (!d.TryGetValue(key, out var t)) throw new InvalidDataException($"{path} has no '{key}'");
                if (t.NumEl != layout.OwnedLength) throw new InvalidDataException($"{path}: '{key}' has {t.NumEl} elements, the layout says {layout.OwnedLength}");
            }
            foreach (var piece in layout.Pieces(r))
            {
                masters[piece.Param].Narrow(0, piece.ParamOffset, piece.Length).Copy_(d["fp32_master"].Narrow(0, piece.OwnedOffset, piece.Length));
                m[piece.Param].Narrow(0, piece.ParamOffset, piece.Length).Copy_(d["exp_avg"].Narrow(0, piece.OwnedOffset, piece.Length));
                v[piece.Param].Narrow(0, piece.ParamOffset, piece.Length).Copy_(d["exp_avg_sq"].Narrow(0, piece.OwnedOffset, piece.Length));
            }
        }
        Tensor[] Shape(Tensor[] ts) => ts.Select((t, j) => t.View(layout.Params[j].Shape)).ToArray();
        return new FullTrainingState(state, Shape(masters), Shape(m), Shape(v));
    }

    /// <summary>DeepSpeed's <c>zero_to_fp32</c>: the full fp32 weights of a checkpoint, by parameter name (converted to <paramref name="dtype"/>).</summary>
    public static List<KeyValuePair<string, Tensor>> Consolidate(string dir, string? tag = null, ScalarType dtype = ScalarType.Float32)
    {
        var full = ReadFull(dir, tag);
        return full.State.Params.Select((p, j) => new KeyValuePair<string, Tensor>(p.Name, dtype == ScalarType.Float32 ? full.Masters[j] : full.Masters[j].To(dtype))).ToList();
    }

    internal static string Load(ZeroEngine e, string dir, string? tag)
    {
        tag ??= ReadLatest(dir);
        using var scope = Torch.NewScope();
        var full = ReadFull(dir, tag);
        var saved = full.State.Params;
        var mine = e.Layout.Params;
        var problems = new List<string>();
        if (saved.Count != mine.Count) problems.Add($"{saved.Count} parameters saved, the model has {mine.Count}");
        for (var j = 0; j < Math.Min(saved.Count, mine.Count); j++)
            if (saved[j].Name != mine[j].Name || !saved[j].Shape.SequenceEqual(mine[j].Shape))
                problems.Add($"#{j}: saved {saved[j].Name} [{string.Join(",", saved[j].Shape)}], model {mine[j].Name} [{string.Join(",", mine[j].Shape)}]");
        if (problems.Count > 0) throw new InvalidDataException($"checkpoint {Path.Combine(dir, tag)} does not fit this model:\n  " + string.Join("\n  ", problems));
        var optimizer = e.Optimizer ?? throw new InvalidOperationException("a frozen engine has no training state to load");
        using (Torch.NoGrad())
        {
            // Each rank keeps the elements its own layout owns and rebuilds its working parameters from the full masters
            // (every rank read them all, so no communication is needed).
            optimizer.Load(e.Layout.Pieces(e.Rank), full.Masters, full.ExpAvg, full.ExpAvgSq);
            for (var j = 0; j < mine.Count; j++) e.State.SetFullParameter(j, full.Masters[j].To(e.State.Dtype), broadcast: false);
            e.State.ZeroGradients();
        }
        e.Counters = (full.State.GlobalSteps, full.State.MicroSteps, full.State.SkippedSteps);
        e.StateReplaced();
        e.Comm.Barrier();
        return tag;
    }
}
