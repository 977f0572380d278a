using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Stages 0–2 (DeepSpeed's <c>stage_1_and_2.py</c>, v0.16): every rank holds the full flat parameter buffer
/// [Ψ_pad] and owns one slice of it. Stages 0–1 keep a full gradient buffer and all-reduce it at the
/// accumulation boundary; stage 2 reduces each layer's gradients as backward produces them, in buckets of
/// <c>reduce_bucket_size</c>, and keeps only its own slice. After the step the owned slices are all-gathered.
/// </summary>
internal sealed class FlatState : PartitionedState
{
    private readonly Tensor flatParams;   // [Ψ_pad] dtype
    private readonly Tensor? flatGrads;   // [Ψ_pad] dtype (stages 0–1)
    private readonly Tensor? gradSlice;   // [Ψ_pad / ws] dtype (stage 2)
    private readonly long reduceBucket;

    public FlatState(PartitionLayout layout, ScalarType dtype, Device device, Communicator comm, bool trainable, long reduceBucketSize)
        : base(layout, dtype, device, comm, trainable)
    {
        reduceBucket = Math.Max(1, reduceBucketSize);
        flatParams = Own(Torch.Zeros([layout.PaddedTotal], dtype, device));
        if (!trainable) return;
        if (layout.Stage == ZeroStage.Gradients) gradSlice = Own(Torch.Zeros([layout.OwnedLength], dtype, device));
        else flatGrads = Own(Torch.Zeros([layout.PaddedTotal], dtype, device));
    }

    public override Tensor WorkingParameters => flatParams;

    public override Tensor OwnedParameters() => flatParams.Narrow(0, Layout.OwnedStart(Comm.Rank), Layout.OwnedLength);

    public override bool OwnsEverything => Layout.Stage == ZeroStage.Disabled;

    public override void SetFullParameter(int j, Tensor value, bool broadcast)
    {
        var p = Layout.Params[j];
        flatParams.Narrow(0, p.Offset, p.NumEl).Copy_(value.Reshape(-1));
    }

    public override void BroadcastInitialWeights() => Comm.Run(g => g.Broadcast(flatParams, 0));

    public override Tensor Parameter(int j, out long gathered)
    {
        gathered = 0;
        var p = Layout.Params[j];
        return flatParams.Narrow(0, p.Offset, p.NumEl).View(p.Shape);
    }

    public override void AccumulateLayer(int first, IReadOnlyList<Tensor?> ownGrads, IReadOnlyList<(int Param, Tensor? Grad)> shared)
    {
        if (flatGrads is not null)
        {
            for (var k = 0; k < ownGrads.Count; k++) AddTo(first + k, ownGrads[k]);
            foreach (var (j, g) in shared) AddTo(j, g);
            return;
        }
        // Stage 2: the layer's own run of the flat space in one bucketed reduction, each shared parameter in its own.
        if (ownGrads.Count > 0) ReduceRun(Enumerable.Range(0, ownGrads.Count).Select(k => (first + k, ownGrads[k])).ToList());
        foreach (var s in shared) ReduceRun([s]);
    }

    private void AddTo(int j, Tensor? g)
    {
        if (g is null) return;
        var p = Layout.Params[j];
        flatGrads!.Narrow(0, p.Offset, p.NumEl).Add_(g.Reshape(-1));
    }

    /// <summary>
    /// Stage 2: the gradients of a contiguous run of parameters (global indices in flat order), reduced in buckets
    /// (DeepSpeed's all-reduce then keep own runs), averaged, and only this rank's intersection kept.
    /// </summary>
    private void ReduceRun(IReadOnlyList<(int Param, Tensor? Grad)> run)
    {
        var pFirst = Layout.Params[run[0].Param];
        var pLast = Layout.Params[run[^1].Param];
        long a = pFirst.Offset, len = pLast.Offset + pLast.NumEl - a;
        if (len == 0) return;
        var bucket = Torch.Zeros([len], Dtype, Device);
        foreach (var (j, g) in run)
            if (g is not null)
            {
                var p = Layout.Params[j];
                bucket.Narrow(0, p.Offset - a, p.NumEl).Copy_(g.Reshape(-1));
            }
        for (long s = 0; s < len; s += reduceBucket)
        {
            var piece = bucket.Narrow(0, s, Math.Min(reduceBucket, len - s));
            Comm.Run(g => g.AllReduce(piece));
        }
        if (Comm.WorldSize > 1) bucket.Div_(Comm.WorldSize);
        long own = Layout.OwnedStart(Comm.Rank), ownEnd = own + Layout.OwnedLength;
        long lo = Math.Max(a, own), hi = Math.Min(a + len, ownEnd);
        if (hi > lo) gradSlice!.Narrow(0, lo - own, hi - lo).Add_(bucket.Narrow(0, lo - a, hi - lo));
    }

    public override Tensor OwnedGradients()
    {
        if (gradSlice is not null) return gradSlice;
        if (Comm.Active)
        {
            for (long s = 0; s < Layout.PaddedTotal; s += reduceBucket)
            {
                var piece = flatGrads!.Narrow(0, s, Math.Min(reduceBucket, Layout.PaddedTotal - s));
                Comm.Run(g => g.AllReduce(piece));
            }
            flatGrads!.Div_(Comm.WorldSize);
        }
        return flatGrads!.Narrow(0, Layout.OwnedStart(Comm.Rank), Layout.OwnedLength);
    }

    public override void RefreshAfterUpdate()
    {
        if (Layout.Stage == ZeroStage.Disabled || !Comm.Active) return;
        using var scope = Torch.NewScope();
        var mine = OwnedParameters().Clone();
        Comm.Run(g => g.AllGather(mine, flatParams));
    }

    public override void ZeroGradients()
    {
        flatGrads?.Zero_();
        gradSlice?.Zero_();
    }

    public override Tensor LocalGradient(int j)
    {
        var p = Layout.Params[j];
        // One process: stage 2's slice is the whole flat space too.
        return (flatGrads ?? gradSlice!).Narrow(0, p.Offset, p.NumEl).View(p.Shape);
    }

    public override long GradientBytes => (flatGrads?.NumBytes ?? 0) + (gradSlice?.NumBytes ?? 0);

    public override void GatherFullInto(Tensor owned, Tensor destination)
    {
        using var scope = Torch.NewScope();
        var total = Layout.Total;
        if (Layout.Stage == ZeroStage.Disabled) { destination.Copy_(owned.Narrow(0, 0, total)); return; }
        var flat = Torch.Empty([Layout.PaddedTotal], owned.Dtype, Device);
        var mine = owned.To(Device).Contiguous();
        if (Comm.Active) Comm.Run(g => g.AllGather(mine, flat));
        else flat.Copy_(mine);
        destination.Copy_(flat.Narrow(0, 0, total));
    }

    public override Tensor? FullWorkingView => flatParams.Narrow(0, 0, Layout.Total);

    public override IEnumerable<(string File, List<KeyValuePair<string, Tensor>> Tensors)> ModelStateFiles()
    {
        if (Comm.Rank != 0) yield break;
        yield return (Checkpoint.ModelStatesFile,
            Layout.Params.Select(p => new KeyValuePair<string, Tensor>(p.Name, flatParams.Narrow(0, p.Offset, p.NumEl).View(p.Shape))).ToList());
    }
}
