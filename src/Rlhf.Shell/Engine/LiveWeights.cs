using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>How an engine publishes its full weights to a generator.</summary>
public enum LiveWeightsMode
{
    /// <summary>
    /// Generation and training alternate in one process: stages 0–2 hand out views of the engine's own parameter
    /// storage (no copy); stage 3 gathers into one persistent buffer after each step. A lease must be released
    /// before the next optimizer step (which throws otherwise).
    /// </summary>
    Shared,
    /// <summary>
    /// A generator runs concurrently: preallocated buffers (two by default; more when several versions are held at once, as
    /// an asynchronous loop running ahead by several steps holds them); on each publish the new weights are copied (stage 3:
    /// gathered) into one no reader holds and become the current version — one copy per publish, no allocation. A reader
    /// keeps its version's values while training continues.
    /// </summary>
    Snapshot,
}

/// <summary>A held version of the engine's full weights; dispose it to release the version.</summary>
public sealed class WeightsLease : IDisposable
{
    private readonly Action release;
    private int released;

    internal WeightsLease(long version, IReadOnlyList<KeyValuePair<string, Tensor>> weights, Action release)
    {
        Version = version;
        Weights = weights;
        this.release = release;
    }

    /// <summary>The optimizer steps the weights include (<see cref="ZeroEngine.GlobalSteps"/> when they were published).</summary>
    public long Version { get; }

    /// <summary>Every parameter in full (training dtype, layout order), as views the lease owns; valid until disposed.</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Weights { get; }

    /// <summary>Releases the version (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref released, 1) != 0) return;
        foreach (var kv in Weights) kv.Value.Dispose();
        release();
    }
}

/// <summary>
/// The engine's published weights: versioned, thread-safe to acquire and release. Publishing happens on the training
/// thread after each optimizer step (a collective at stage 3, since it gathers); acquiring may happen on any thread.
/// </summary>
internal sealed class LiveWeights : IDisposable
{
    private readonly PartitionedState state;
    private readonly LiveWeightsMode mode;
    private readonly Tensor?[] buffers;     // [Ψ] dtype: none (shared, stages 0–2), one (shared, stage 3) or two (snapshot)
    private readonly int[] readers;
    private readonly object gate = new();
    private int current;
    private long version;

    public LiveWeights(PartitionedState state, LiveWeightsMode mode, long version, int snapshots = 2, bool publishOnStep = true)
    {
        if (mode == LiveWeightsMode.Snapshot && snapshots < 2)
            throw new ArgumentOutOfRangeException(nameof(snapshots), snapshots, "snapshot mode needs at least two buffers (one to read, one to write)");
        this.state = state;
        this.mode = mode;
        PublishesOnStep = publishOnStep;
        var count = mode == LiveWeightsMode.Snapshot ? snapshots : state.FullWorkingView is null ? 1 : 0;
        buffers = new Tensor?[Math.Max(count, 1)];
        for (var b = 0; b < count; b++) buffers[b] = Torch.Zeros([state.Layout.Total], state.Dtype, state.Device).DetachFromScope();
        readers = new int[buffers.Length];
        Publish(version, force: true);
    }

    /// <summary>Whether every optimizer step publishes (else only explicit <see cref="ZeroEngine.PublishWeights"/> calls do).</summary>
    public bool PublishesOnStep { get; }

    /// <summary>Snapshot buffers (0 in shared mode).</summary>
    public int Snapshots => mode == LiveWeightsMode.Snapshot ? buffers.Length : 0;

    /// <summary>Publishes that were skipped because readers held every buffer but the current one (snapshot mode).</summary>
    public long SkippedPublishes { get; private set; }

    /// <summary>Shared mode: the optimizer is about to overwrite what readers see, so none may hold a lease.</summary>
    public void BeforeUpdate()
    {
        if (mode != LiveWeightsMode.Shared) return;
        lock (gate)
            if (readers[0] > 0)
                throw new InvalidOperationException($"live weights version {version} are still held: in shared mode release them before Step (or use LiveWeightsMode.Snapshot)");
    }

    /// <summary>
    /// After an optimizer step: makes <paramref name="newVersion"/> current. Snapshot mode writes into a buffer other than the
    /// current one that no reader holds (skipping, and counting, when readers hold all of them) — unless <paramref name="force"/>,
    /// used at start and after a checkpoint load, which may rewrite the current buffer when no reader holds it.
    /// </summary>
    public void Publish(long newVersion, bool force = false)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        if (mode == LiveWeightsMode.Shared)
        {
            if (buffers[0] is { } b) Fill(b); // stage 3: gather into the persistent buffer (collective)
            lock (gate) version = newVersion;
            return;
        }
        int back;
        lock (gate)
        {
            back = force && readers[current] == 0 ? current : FreeBuffer();
            if (back < 0 || readers[back] > 0)
            {
                if (force) throw new InvalidOperationException("live weights are held while the engine state is replaced");
                SkippedPublishes++;
                if (state.FullWorkingView is null) { using var s = Torch.NewScope(); Fill(Torch.Empty([state.Layout.Total], state.Dtype, state.Device)); } // stage 3: every rank must take part in the gather
                return;
            }
        }
        Fill(buffers[back]!);
        lock (gate)
        {
            current = back;
            version = newVersion;
        }
    }

    /// <summary>The first buffer after the current one (cyclically) that no reader holds, or −1.</summary>
    private int FreeBuffer()
    {
        for (var i = 1; i < buffers.Length; i++)
        {
            var b = (current + i) % buffers.Length;
            if (readers[b] == 0) return b;
        }
        return -1;
    }

    /// <summary>Copies the full working parameters into <paramref name="buffer"/> [Ψ] (stage 3: gathers them).</summary>
    private void Fill(Tensor buffer)
    {
        if (state.FullWorkingView is { } v) buffer.Copy_(v);
        else state.GatherFullInto(state.OwnedParameters(), buffer);
    }

    /// <summary>The current version as a lease over its storage.</summary>
    public WeightsLease Acquire()
    {
        lock (gate)
        {
            var b = current;
            var storage = buffers[b] ?? state.FullWorkingView!;
            readers[b]++;
            var weights = state.Layout.Params
                .Select(p => new KeyValuePair<string, Tensor>(p.Name, storage.Narrow(0, p.Offset, p.NumEl).View(p.Shape).DetachFromScope()))
                .ToList();
            if (buffers[b] is null) storage.Dispose();
            return new WeightsLease(version, weights, () => { lock (gate) readers[b]--; });
        }
    }

    public void Dispose()
    {
        foreach (var b in buffers) b?.Dispose();
    }
}
