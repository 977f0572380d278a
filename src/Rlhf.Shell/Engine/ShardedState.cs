using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Stage 3 (DeepSpeed's <c>stage3.py</c>, v0.16): every parameter padded to a multiple of the world size, rank r
/// keeping chunk r. A layer's parameters are all-gathered just before it runs (forward, and again in the
/// recomputation of backward) and freed after; parameters under <c>stage3_param_persistence_threshold</c>
/// elements stay gathered. Gradients are reduce-scattered per layer; there is no all-gather after the step.
/// </summary>
internal sealed class ShardedState : PartitionedState
{
    private readonly Tensor paramShard;   // [Σ chunks] dtype
    private readonly Tensor? gradShard;   // [Σ chunks] dtype
    private readonly Tensor?[] persistent;
    private readonly long[] shardOffsets;
    private readonly long persistenceThreshold;
    private long persistentBytes;

    public ShardedState(PartitionLayout layout, ScalarType dtype, Device device, Communicator comm, bool trainable, long persistenceThreshold)
        : base(layout, dtype, device, comm, trainable)
    {
        this.persistenceThreshold = persistenceThreshold;
        paramShard = Own(Torch.Zeros([layout.OwnedLength], dtype, device));
        if (trainable) gradShard = Own(Torch.Zeros([layout.OwnedLength], dtype, device));
        persistent = new Tensor?[layout.Params.Count];
        shardOffsets = new long[layout.Params.Count];
        for (long j = 0, s = 0; j < layout.Params.Count; j++) { shardOffsets[j] = s; s += layout.Chunk((int)j); }
    }

    public override Tensor WorkingParameters => paramShard;

    public override Tensor OwnedParameters() => paramShard.Narrow(0, 0, Layout.OwnedLength);

    private bool IsPersistent(int j) => Layout.Params[j].NumEl < persistenceThreshold;

    private Tensor Chunk(Tensor shard, int j) => shard.Narrow(0, shardOffsets[j], Layout.Chunk(j));

    /// <summary>All-gathers parameter <paramref name="j"/> from <paramref name="shard"/>'s chunks: [chunk × ws] (padding at the end).</summary>
    private Tensor Gather(Tensor shard, int j)
    {
        var c = Layout.Chunk(j);
        var full = Torch.Empty([c * Comm.WorldSize], shard.Dtype, Device);
        var mine = Chunk(shard, j).To(Device).Contiguous();
        if (Comm.Active) Comm.Run(g => g.AllGather(mine, full));
        else full.Copy_(mine);
        return full;
    }

    public override void SetFullParameter(int j, Tensor value, bool broadcast)
    {
        using var scope = Torch.NewScope();
        var p = Layout.Params[j];
        var c = Layout.Chunk(j);
        var full = Torch.Zeros([c * Comm.WorldSize], Dtype, Device);
        full.Narrow(0, 0, p.NumEl).Copy_(value.Reshape(-1));
        if (broadcast) Comm.Run(g => g.Broadcast(full, 0));
        Chunk(paramShard, j).Copy_(full.Narrow(0, Comm.Rank * c, c));
        if (!IsPersistent(j)) return;
        if (persistent[j] is { } old) old.Dispose();
        else
        {
            persistentBytes += p.NumEl * full.ElementSize;
            Gathered(p.NumEl * full.ElementSize);
        }
        persistent[j] = full.Narrow(0, 0, p.NumEl).View(p.Shape).Contiguous().DetachFromScope();
    }

    public override void BroadcastInitialWeights() { } // SetFullParameter broadcast each parameter already

    public override Tensor Parameter(int j, out long gathered)
    {
        gathered = 0;
        if (persistent[j] is { } pt) return pt.Detach();
        var p = Layout.Params[j];
        var full = Gather(paramShard, j);
        gathered = full.NumBytes;
        Gathered(gathered);
        return full.Narrow(0, 0, p.NumEl).View(p.Shape);
    }

    public override void AccumulateLayer(int first, IReadOnlyList<Tensor?> ownGrads, IReadOnlyList<(int Param, Tensor? Grad)> shared)
    {
        for (var k = 0; k < ownGrads.Count; k++) ReduceScatter(first + k, ownGrads[k]);
        foreach (var (j, g) in shared) ReduceScatter(j, g);
    }

    /// <summary>Reduce-scatters parameter <paramref name="j"/>'s gradient (averaged over ranks) into this rank's chunk.</summary>
    private void ReduceScatter(int j, Tensor? grad)
    {
        var p = Layout.Params[j];
        var c = Layout.Chunk(j);
        var dst = Chunk(gradShard!, j);
        if (!Comm.Active)
        {
            if (grad is not null) dst.Narrow(0, 0, p.NumEl).Add_(grad.Reshape(-1));
            return;
        }
        var padded = Torch.Zeros([c * Comm.WorldSize], Dtype, Device); // a rank without this gradient still takes part
        if (grad is not null) padded.Narrow(0, 0, p.NumEl).Copy_(grad.Reshape(-1));
        var mine = Torch.Empty([c], Dtype, Device);
        Comm.Run(g => g.ReduceScatter(padded, mine));
        dst.Add_(mine.Div_(Comm.WorldSize));
    }

    public override Tensor OwnedGradients() => gradShard!;

    public override void RefreshAfterUpdate()
    {
        for (var j = 0; j < Layout.Params.Count; j++)
        {
            if (persistent[j] is not { } pt) continue;
            using var scope = Torch.NewScope();
            var p = Layout.Params[j];
            pt.Copy_(Gather(paramShard, j).Narrow(0, 0, p.NumEl).View(p.Shape));
        }
    }

    public override void ZeroGradients() => gradShard?.Zero_();

    public override Tensor LocalGradient(int j)
    {
        var p = Layout.Params[j];
        return Chunk(gradShard!, j).Narrow(0, 0, p.NumEl).View(p.Shape);
    }

    public override long GradientBytes => gradShard?.NumBytes ?? 0;

    public override long PersistentBytes => persistentBytes;

    public override void GatherFullInto(Tensor owned, Tensor destination)
    {
        for (var j = 0; j < Layout.Params.Count; j++)
        {
            using var scope = Torch.NewScope();
            var p = Layout.Params[j];
            destination.Narrow(0, p.Offset, p.NumEl).Copy_(Gather(owned, j).Narrow(0, 0, p.NumEl));
        }
    }

    public override Tensor? FullWorkingView => null;

    public override IEnumerable<(string File, List<KeyValuePair<string, Tensor>> Tensors)> ModelStateFiles()
    {
        yield return (Checkpoint.ModelShardFile(Comm.Rank), [new("param_shard", paramShard)]);
    }

    public override void Dispose()
    {
        foreach (var t in persistent) t?.Dispose();
        base.Dispose();
    }
}
