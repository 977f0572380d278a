using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Where a ZeRO engine keeps its working parameters and gradients, chosen once from the stage:
/// <see cref="FlatState"/> (stages 0–2: one flat parameter buffer on every rank) or <see cref="ShardedState"/>
/// (stage 3: each rank keeps one chunk of every parameter and gathers a layer's parameters just before use).
/// A frozen state (reference and reward models) has no gradient buffers. The owned elements
/// (<see cref="PartitionLayout.OwnedLength"/>) are what the optimizer state covers.
/// </summary>
internal abstract class PartitionedState : IDisposable
{
    private readonly List<Tensor> buffers = [];
    private long gatheredBytes, peakGatheredBytes;

    protected PartitionedState(PartitionLayout layout, ScalarType dtype, Device device, Communicator comm, bool trainable)
    {
        Layout = layout;
        Dtype = dtype;
        Device = device;
        Comm = comm;
        Trainable = trainable;
    }

    /// <summary>Builds the state for <paramref name="layout"/>'s stage.</summary>
    public static PartitionedState Create(PartitionLayout layout, ScalarType dtype, Device device, Communicator comm, bool trainable,
        long persistenceThreshold, long reduceBucketSize) =>
        layout.Stage == ZeroStage.Parameters
            ? new ShardedState(layout, dtype, device, comm, trainable, persistenceThreshold)
            : new FlatState(layout, dtype, device, comm, trainable, reduceBucketSize);

    /// <summary>What each rank owns.</summary>
    public PartitionLayout Layout { get; }
    /// <summary>Parameter and gradient dtype (bf16 or fp32).</summary>
    public ScalarType Dtype { get; }
    /// <summary>Where parameters and gradients live.</summary>
    public Device Device { get; }
    /// <summary>The collectives.</summary>
    public Communicator Comm { get; }
    /// <summary>False for a frozen model: no gradient buffers, no reductions.</summary>
    public bool Trainable { get; }
    /// <summary>Bytes of gathered parameters alive now (stage 3; persistent ones included).</summary>
    public long GatheredBytes => gatheredBytes;
    /// <summary>Most gathered parameter bytes alive at once since the last <see cref="ResetPeak"/>.</summary>
    public long PeakGatheredBytes => peakGatheredBytes;

    protected Tensor Own(Tensor t)
    {
        t.DetachFromScope();
        buffers.Add(t);
        return t;
    }

    protected void Gathered(long bytes)
    {
        gatheredBytes += bytes;
        peakGatheredBytes = Math.Max(peakGatheredBytes, gatheredBytes);
    }

    /// <summary>Gathered tensors of <paramref name="bytes"/> were freed.</summary>
    public void Released(long bytes) => gatheredBytes -= bytes;

    /// <summary>Restarts the peak counter from what is gathered now.</summary>
    public void ResetPeak() => peakGatheredBytes = gatheredBytes;

    /// <summary>The owned slice of the working parameters (a view: stages 0–2 of the flat buffer, stage 3 of the shard).</summary>
    public abstract Tensor OwnedParameters();

    /// <summary>Every working-parameter element this rank holds: the flat buffer (0–2) or the shard (3).</summary>
    public abstract Tensor WorkingParameters { get; }

    /// <summary>Writes parameter <paramref name="j"/>'s full value into this rank's buffers (stage 3 broadcasts rank 0's first when asked).</summary>
    public abstract void SetFullParameter(int j, Tensor value, bool broadcast);

    /// <summary>After every parameter was set from the same seed: makes every rank hold rank 0's values.</summary>
    public abstract void BroadcastInitialWeights();

    /// <summary>
    /// Parameter <paramref name="j"/> in full, for a forward: a view of the flat buffer, a persistent tensor, or a freshly
    /// all-gathered one (in the current scope; add its <paramref name="gathered"/> bytes to <see cref="Released"/> when freed).
    /// </summary>
    public abstract Tensor Parameter(int j, out long gathered);

    /// <summary>
    /// Adds one layer's gradients — its own parameters' run (consecutive indices from <paramref name="first"/>) and
    /// the shared ones it read — into the gradient buffers, reducing now when the stage partitions gradients.
    /// </summary>
    public abstract void AccumulateLayer(int first, IReadOnlyList<Tensor?> ownGrads, IReadOnlyList<(int Param, Tensor? Grad)> shared);

    /// <summary>At the accumulation boundary: the averaged gradients of the owned elements (reducing first where the stage waits until now).</summary>
    public abstract Tensor OwnedGradients();

    /// <summary>True when the owned gradients are all of them (stage 0), so the local norm is the global one.</summary>
    public virtual bool OwnsEverything => false;

    /// <summary>After the owned working parameters were updated: makes every rank's working parameters agree again.</summary>
    public abstract void RefreshAfterUpdate();

    /// <summary>Zeroes the gradient buffers.</summary>
    public abstract void ZeroGradients();

    /// <summary>Test seam (one process): parameter <paramref name="j"/>'s accumulated gradient, shaped like it.</summary>
    public abstract Tensor LocalGradient(int j);

    /// <summary>Bytes of the working parameters this rank holds.</summary>
    public long ParameterBytes => WorkingParameters.NumBytes;
    /// <summary>Bytes of the gradient buffers this rank holds.</summary>
    public abstract long GradientBytes { get; }
    /// <summary>Bytes of parameters kept gathered (stage 3).</summary>
    public virtual long PersistentBytes => 0;

    /// <summary>
    /// Copies every parameter in full into <paramref name="destination"/> [Ψ] (flat layout offsets), taking this rank's
    /// elements from <paramref name="owned"/> [OwnedLength] (the working parameters or the fp32 masters). A collective.
    /// </summary>
    public abstract void GatherFullInto(Tensor owned, Tensor destination);

    /// <summary>A view of every full parameter in this rank's own working storage when it holds them all (stages 0–2), else null.</summary>
    public abstract Tensor? FullWorkingView { get; }

    /// <summary>The model-states files this rank writes into a checkpoint: (file name, named tensors).</summary>
    public abstract IEnumerable<(string File, List<KeyValuePair<string, Tensor>> Tensors)> ModelStateFiles();

    /// <summary>Releases every buffer.</summary>
    public virtual void Dispose()
    {
        foreach (var t in buffers) t.Dispose();
        buffers.Clear();
    }
}
