using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Rlhf.Settings;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>One file of a checkpoint as its manifest records it when written: name, size and SHA-256 (lower-case hex).</summary>
public sealed record CheckpointFile(string Name, long Bytes, string Sha256);

/// <summary>
/// What <c>engine_state.json</c> (the checkpoint's manifest) records: the tag and counters it was written at, the layout
/// the shards were cut with, and every shard's size and checksum.
/// </summary>
public sealed record CheckpointState(
    string Tag, ZeroStage Stage, int WorldSize, IReadOnlyList<FlatParam> Params,
    long GlobalSteps, long MicroSteps, long SkippedSteps, bool Bf16, string Scheduler, IReadOnlyList<CheckpointFile>? Files = null)
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
/// <c>zero_pp_rank_&lt;r&gt;_mp_rank_00_model_states.pt</c> shards at stage 3), <c>engine_state.json</c> (the manifest:
/// tag, counters, layout, and every file's size and SHA-256), and <c>&lt;dir&gt;/latest</c> naming the tag.
/// <para>
/// Verified: loading and consolidating check the manifest's tag against the directory and every file's size and checksum
/// before libtorch reads a byte, so a flipped byte, a truncated or empty shard, or a shard copied from another checkpoint is
/// a <see cref="CheckpointException"/> naming the file.
/// </para>
/// <para>
/// Atomic for new and re-used tags: every rank writes into <c>.&lt;tag&gt;.tmp</c>, rank 0 adds the manifest last and
/// commits. A new tag is a rename of the finished directory, then <c>latest</c> is replaced (write-and-rename). A re-used tag
/// never moves the live checkpoint aside first: the new one is renamed to a fresh hidden version <c>.&lt;tag&gt;.v&lt;id&gt;</c>
/// and <c>&lt;tag&gt;</c> becomes a symbolic link to it, swapped atomically by <c>rename(2)</c> (a plain directory left by a
/// first save is retired only after <c>latest</c> names the new version). So <c>latest</c> names a complete checkpoint
/// whatever moment the writer dies at. Leftovers of killed saves are removed by the next save.
/// </para>
/// Loads at any world size.
/// </summary>
public static class Checkpoint
{
    /// <summary>The file naming the newest tag.</summary>
    public const string LatestFile = "latest";
    /// <summary>The manifest: layout, counters and checksums.</summary>
    public const string StateFile = "engine_state.json";
    /// <summary>Stages 0–2: rank 0's full 16-bit weights.</summary>
    public const string ModelStatesFile = "mp_rank_00_model_states.pt";

    /// <summary>Largest manifest read (64 MiB: a layout of millions of parameters); a larger one is refused as corrupt. With the model-file limits in <see cref="Io.InputLimits"/>.</summary>
    public const long MaxStateFileBytes = 64L << 20;

    /// <summary>Rank <paramref name="rank"/>'s optimizer-state shard.</summary>
    public static string OptimStatesFile(int rank) => $"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt";

    /// <summary>Stage 3: rank <paramref name="rank"/>'s parameter shard.</summary>
    public static string ModelShardFile(int rank) => $"zero_pp_rank_{rank}_mp_rank_00_model_states.pt";

    /// <summary>Test seam: runs on every rank after its files are written and before the checkpoint is committed.</summary>
    public static Action<int>? BeforeCommit { get; set; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    internal static string Save(ZeroEngine e, string dir, string? tag, Action<string>? clientState = null)
    {
        tag ??= $"global_step{e.GlobalSteps}";
        if (tag.Length == 0 || tag.StartsWith('.') || tag.IndexOfAny(['/', '\\']) >= 0 || tag == LatestFile)
            throw new ArgumentException($"checkpoint tag '{tag}' must be a plain, non-hidden directory name");
        AgreeOnTag(e, tag);
        var tmp = Path.Combine(dir, $".{tag}.tmp");
        var optimizer = e.Optimizer ?? throw new InvalidOperationException("a frozen engine has no training state to checkpoint: save its weights with Save16BitModel");
        void Barrier() => e.Comm.Barrier();

        if (e.Rank == 0)
        {
            Directory.CreateDirectory(dir);
            RemoveLeftovers(dir);
            Directory.CreateDirectory(tmp);
        }
        Barrier();

        using (var scope = Torch.NewScope())
        {
            if (e.Stage != ZeroStage.Disabled || e.Rank == 0)
                WriteFile(Path.Combine(tmp, OptimStatesFile(e.Rank)), [new("fp32_master", optimizer.Master), new("exp_avg", optimizer.ExpAvg), new("exp_avg_sq", optimizer.ExpAvgSq)]);
            foreach (var (file, tensors) in e.State.ModelStateFiles())
                WriteFile(Path.Combine(tmp, file), tensors);
        }
        // DeepSpeed's client_state: the caller's own files (trainer state, RNGs, queued rollouts) join the checkpoint and its manifest.
        clientState?.Invoke(tmp);
        Barrier();
        if (e.Rank == 0)
        {
            // The manifest comes last, once every rank's shards are complete, with each shard's size and checksum.
            var files = Directory.EnumerateFiles(tmp).Select(Path.GetFileName)
                .Where(n => n != StateFile && !n!.StartsWith('.') && !n.EndsWith(".part", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal).Select(n => Describe(Path.Combine(tmp, n!))).ToList();
            var (gs, ms, ss) = e.Counters;
            var state = new CheckpointState(tag, e.Stage, e.WorldSize, e.Layout.Params, gs, ms, ss, e.Settings.Bf16.Enabled,
                e.Settings.Scheduler is { } sc ? SchedulerTypeYaml.ToYaml(sc.Type) : "Constant", files);
            WriteText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, Json));
        }
        BeforeCommit?.Invoke(e.Rank);
        if (e.Rank == 0)
        {
            Commit(dir, tag, tmp);
            RemoveLeftovers(dir);     // now latest names this tag: versions a killed save left behind are no longer live
        }
        Barrier();
        return tag;
    }

    /// <summary>Size and SHA-256 of one written file.</summary>
    private static CheckpointFile Describe(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return new CheckpointFile(Path.GetFileName(path), fs.Length, Convert.ToHexStringLower(SHA256.HashData(fs)));
    }

    /// <summary>Moves the finished <paramref name="tmp"/> into place as <paramref name="tag"/> and points <c>latest</c> at it (see the class summary).</summary>
    private static void Commit(string dir, string tag, string tmp)
    {
        var final = Path.Combine(dir, tag);
        var latest = Path.Combine(dir, LatestFile);
        var existing = new FileInfo(final);
        var isLink = existing.LinkTarget is not null;
        if (!isLink && !Directory.Exists(final))
        {
            Directory.Move(tmp, final);
            WriteText(latest, tag);
            return;
        }
        var version = $".{tag}.v{Guid.NewGuid():N}";
        Directory.Move(tmp, Path.Combine(dir, version));
        var link = Path.Combine(dir, $".{tag}.link");
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null) File.Delete(link);
        File.CreateSymbolicLink(link, version);
        if (isLink)
        {
            var previous = existing.LinkTarget!;
            Rename(link, final);                   // atomic: <tag> names the old version, then the new one
            WriteText(latest, tag);
            DeleteVersion(dir, previous);
        }
        else
        {
            // A plain directory from a first save: a link cannot replace it atomically, so latest names the complete new
            // version while the old directory is retired and the link takes its place.
            WriteText(latest, version);
            var old = Path.Combine(dir, $".{tag}.old-{Guid.NewGuid():N}");
            Directory.Move(final, old);
            Rename(link, final);
            WriteText(latest, tag);
            Directory.Delete(old, recursive: true);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int RenameNative([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string from,
        [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string to);

    /// <summary>POSIX <c>rename(2)</c>: atomically replaces <paramref name="to"/> (a file or symbolic link) with <paramref name="from"/>.</summary>
    private static void Rename(string from, string to)
    {
        if (RenameNative(from, to) != 0)
            throw new IOException($"cannot rename {from} to {to}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    private static void DeleteVersion(string dir, string name)
    {
        var p = Path.Combine(dir, name);
        if (Path.GetDirectoryName(Path.GetFullPath(p)) == Path.GetFullPath(dir).TrimEnd('/') && Path.GetFileName(p).StartsWith('.') && Directory.Exists(p))
            Directory.Delete(p, recursive: true);
    }

    /// <summary>
    /// Removes what killed saves leave behind: <c>.&lt;tag&gt;.tmp</c> and <c>.&lt;tag&gt;.old-*</c> directories, <c>.&lt;tag&gt;.link</c>
    /// links, <c>latest.part</c>, and hidden versions that neither a tag's link nor <c>latest</c> names.
    /// </summary>
    private static void RemoveLeftovers(string dir)
    {
        var live = new HashSet<string>(StringComparer.Ordinal);
        var latest = Path.Combine(dir, LatestFile);
        if (File.Exists(latest)) live.Add(File.ReadAllText(latest).Trim());
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
            if (entry.LinkTarget is { } target && !entry.Name.StartsWith('.')) live.Add(target);
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
        {
            var n = entry.Name;
            if (n == LatestFile + ".part" || (n.StartsWith('.') && n.EndsWith(".link", StringComparison.Ordinal)))
                File.Delete(entry.FullName);
            else if (n.StartsWith('.') && entry.LinkTarget is null && entry is DirectoryInfo d
                     && (n.EndsWith(".tmp", StringComparison.Ordinal) || n.Contains(".old-", StringComparison.Ordinal)
                         || (System.Text.RegularExpressions.Regex.IsMatch(n, @"\.v[0-9a-f]{32}$") && !live.Contains(n))))
                d.Delete(recursive: true);
        }
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
        if (!File.Exists(p)) throw new CheckpointException(p, $"no '{LatestFile}' file: not a checkpoint directory, or nothing was saved yet");
        if (new FileInfo(p).Length > 4096) throw new CheckpointException(p, "longer than 4096 bytes: expected one tag name");
        var tag = File.ReadAllText(p).Trim();
        if (tag.Length == 0 || tag.IndexOfAny(['/', '\\', '\n', '\0']) >= 0 || tag is "." or "..")
            throw new CheckpointException(p, $"expected one tag name (a directory beside it), found '{tag}'");
        return tag;
    }

    /// <summary>Reads <c>engine_state.json</c> of a checkpoint (not verified: see <see cref="Verify"/>).</summary>
    public static CheckpointState ReadState(string dir, string? tag = null)
    {
        tag ??= ReadLatest(dir);
        var p = Path.Combine(dir, tag, StateFile);
        if (!Directory.Exists(Path.Combine(dir, tag))) throw new CheckpointException(Path.Combine(dir, tag), "no such checkpoint directory");
        if (!File.Exists(p)) throw new CheckpointException(p, "missing: the checkpoint is incomplete (its save did not finish)");
        if (new FileInfo(p).Length > MaxStateFileBytes) throw new CheckpointException(p, $"larger than {MaxStateFileBytes} bytes (Checkpoint.MaxStateFileBytes): corrupt");
        CheckpointState? state;
        try { state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(p), Json); }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or DecoderFallbackException)
        {
            throw new CheckpointException(p, $"not a valid manifest: {ex.Message}", ex);
        }
        if (state is null || state.Tag is null || state.Params is null)
            throw new CheckpointException(p, "not a valid manifest: expected an object with Tag, Params and the counters");
        if (state.WorldSize < 1) throw new CheckpointException(p, $"WorldSize {state.WorldSize}: expected at least 1");
        return state;
    }

    /// <summary>
    /// Reads the manifest of checkpoint <paramref name="tag"/> (default: latest) and checks it before any shard is read: the tag
    /// it records is the directory's, every shard the layout needs is listed, and every listed file has the recorded size and
    /// SHA-256. Throws <see cref="CheckpointException"/> naming the first file at fault.
    /// </summary>
    public static CheckpointState Verify(string dir, string? tag = null)
    {
        tag ??= ReadLatest(dir);
        var state = ReadState(dir, tag);
        var manifest = Path.Combine(dir, tag, StateFile);
        // A re-saved tag's hidden version (.<tag>.v<id>) may be named by latest while the link is being swapped.
        if (state.Tag != tag && !tag.StartsWith($".{state.Tag}.v", StringComparison.Ordinal))
            throw new CheckpointException(manifest, $"records tag '{state.Tag}' (step {state.GlobalSteps}) but lies in '{tag}': copied from another checkpoint");
        if (state.Files is not { Count: > 0 } files)
            throw new CheckpointException(manifest, "records no shard checksums: written by an older version or edited; cannot be verified");
        var listed = files.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var ranks = state.Stage == ZeroStage.Disabled ? 1 : state.WorldSize;
        for (var r = 0; r < ranks; r++)
            if (!listed.ContainsKey(OptimStatesFile(r)))
                throw new CheckpointException(manifest, $"does not list rank {r}'s optimizer shard {OptimStatesFile(r)}");
        foreach (var f in files)
        {
            if (f.Name is null || f.Name.Length == 0 || f.Name != Path.GetFileName(f.Name) || f.Name.StartsWith('.'))
                throw new CheckpointException(manifest, $"lists file '{f.Name}': expected a plain file name");
            var path = Path.Combine(dir, tag, f.Name);
            if (!File.Exists(path)) throw new CheckpointException(path, "missing: the manifest lists it");
            var length = new FileInfo(path).Length;
            if (length == 0) throw new CheckpointException(path, $"is empty (0 bytes); the manifest recorded {f.Bytes} bytes");
            if (length != f.Bytes)
                throw new CheckpointException(path, $"is {length} bytes; the manifest recorded {f.Bytes}: {(length < f.Bytes ? "truncated" : "overwritten or from another checkpoint")}");
            var actual = Describe(path).Sha256;
            if (!string.Equals(actual, f.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new CheckpointException(path, $"SHA-256 {actual} does not match the manifest's {f.Sha256} (step {state.GlobalSteps}, tag '{state.Tag}'): corrupt, or copied from another checkpoint");
        }
        return state;
    }

    /// <summary>
    /// The bytes of a client file (written by <see cref="ZeroEngine.SaveCheckpoint"/>'s <c>clientState</c>) of checkpoint
    /// <paramref name="tag"/>, after checking that the manifest lists it and that its size and SHA-256 match;
    /// <c>null</c> when the checkpoint has no such file.
    /// </summary>
    public static byte[]? ReadClientFile(string dir, string tag, string name)
    {
        var state = ReadState(dir, tag);
        var entry = state.Files?.FirstOrDefault(f => f.Name == name);
        var path = Path.Combine(dir, tag, name);
        if (entry is null) return null;
        if (!File.Exists(path)) throw new CheckpointException(path, "missing: the manifest lists it");
        var bytes = File.ReadAllBytes(path);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (bytes.LongLength != entry.Bytes || !string.Equals(sha, entry.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new CheckpointException(path, $"{bytes.LongLength} bytes with SHA-256 {sha}; the manifest recorded {entry.Bytes} bytes, {entry.Sha256}: corrupt, or copied from another checkpoint");
        return bytes;
    }

    /// <summary>
    /// Rebuilds the full fp32 masters and Adam moments of every parameter from all ranks' shards, whatever the
    /// stage and world size they were saved at (the core of <c>zero_to_fp32</c>), after <see cref="Verify"/>. Tensors join the current scope.
    /// </summary>
    public static FullTrainingState ReadFull(string dir, string? tag = null)
    {
        tag ??= ReadLatest(dir);
        var state = Verify(dir, tag);
        var layout = state.Layout;
        var masters = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var m = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var v = layout.Params.Select(p => Torch.Zeros([p.NumEl])).ToArray();
        var ranks = state.Stage == ZeroStage.Disabled ? 1 : state.WorldSize;
        for (var r = 0; r < ranks; r++)
        {
            using var scope = Torch.NewScope();
            var path = Path.Combine(dir, tag, OptimStatesFile(r));
            Dictionary<string, Tensor> d;
            try { d = ShardFile.Load(path).ToDictionary(kv => kv.Key, kv => kv.Value); }
            catch (Exception ex) when (ex is not CheckpointException) { throw new CheckpointException(path, $"unreadable shard: {ex.Message}", ex); }
            foreach (var key in new[] { "fp32_master", "exp_avg", "exp_avg_sq" })
            {
                if (!d.TryGetValue(key, out var t)) throw new CheckpointException(path, $"has no '{key}'");
                if (t.NumEl != layout.OwnedLength) throw new CheckpointException(path, $"'{key}' has {t.NumEl} elements, the layout says {layout.OwnedLength}");
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
        return full.State.Tag;
    }
}
