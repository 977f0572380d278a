using System.Diagnostics;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>Per-rank bytes of model states, counted from the engine's own buffers (numel × element size).</summary>
/// <param name="ParameterBytes">16-bit (or fp32) parameters this rank holds: the full flat buffer (stages 0–2) or its shard (3).</param>
/// <param name="GradientBytes">Gradient buffer: full (0–1) or this rank's slice (2–3).</param>
/// <param name="OptimizerBytes">fp32 master copy (when separate from the parameters) + Adam's two moments, for the owned elements.</param>
/// <param name="PersistentParameterBytes">Stage 3: small parameters kept gathered (under the persistence threshold).</param>
/// <param name="PeakGatheredParameterBytes">Stage 3: most parameter bytes gathered at once (persistent ones included).</param>
public sealed record MemoryReport(long ParameterBytes, long GradientBytes, long OptimizerBytes, long PersistentParameterBytes, long PeakGatheredParameterBytes)
{
    /// <summary>Parameters + gradients + optimizer state: what REFERENCE.md's 16Ψ formulas count.</summary>
    public long ModelStateBytes => ParameterBytes + GradientBytes + OptimizerBytes;
}

/// <summary>
/// A ZeRO data-parallel training engine with DeepSpeed's face: <see cref="Forward"/>,
/// <see cref="Backward(Tensor)"/>, <see cref="Step"/>, <see cref="IsGradientAccumulationBoundary"/>,
/// <see cref="Save16BitModel"/>, <see cref="SaveCheckpoint"/> / <see cref="LoadCheckpoint"/>.
/// Stages 0–3 over flat buffers (see <see cref="PartitionLayout"/>), bf16 with fp32 masters,
/// optimizer-state offload to the CPU, gradient accumulation and clipping over shards, DeepSpeed's
/// learning-rate schedules, per-layer activation checkpointing (stage 3 always recomputes: its
/// parameters are gathered per layer in forward and again in backward, then freed).
/// Every rank must call the same methods in the same order (they are collectives).
/// </summary>
public sealed class ZeroEngine : IDisposable
{
    private readonly ILayeredModel model;
    private readonly ProcessGroup? group;
    private readonly PartitionLayout layout;
    private readonly LrSchedule schedule;
    private readonly ScalarType dtype;          // parameters and gradients: bf16 or fp32
    private readonly Device device;
    private readonly Device optimDevice;
    private readonly bool checkpointing;
    private readonly int[] layerFirstParam;     // global index of each layer's first parameter
    private readonly int[][] layerShared;       // global indices of the parameters each layer reads from other layers (tied weights)
    private readonly List<Tensor> owned = [];   // every buffer the engine allocated (disposed at the end)

    // stages 0–2
    private readonly Tensor? flatParams;        // [Ψ_pad] dtype
    private readonly Tensor? flatGrads;         // [Ψ_pad] dtype (stages 0–1)
    // stages 2–3
    private readonly Tensor? gradShard;         // [owned] dtype
    // stage 3
    private readonly Tensor? paramShard;        // [Σ chunks] dtype
    private readonly Tensor?[] persistent;      // full tensors of persistent parameters (stage 3)
    // optimizer (owned elements)
    private readonly Tensor master;             // fp32 masters (a view of the parameters when they are fp32 already)
    private readonly bool masterIsSeparate;
    private readonly Tensor expAvg, expAvgSq;

    private readonly List<PendingForward> pending = [];
    private long gatheredBytes, peakGatheredBytes, persistentBytes;
    private readonly Stopwatch commClock = new();

    /// <summary>This rank.</summary>
    public int Rank { get; }
    /// <summary>Data-parallel world size.</summary>
    public int WorldSize { get; }
    /// <summary>The settings the engine runs with.</summary>
    public EngineSettings Settings { get; }
    /// <summary>Batch sizes after DeepSpeed's rule.</summary>
    public BatchSizes Batch { get; }
    /// <summary>ZeRO stage.</summary>
    public ZeroStage Stage => layout.Stage;
    /// <summary>The partition layout (what each rank owns).</summary>
    public PartitionLayout Layout => layout;
    /// <summary>Optimizer steps taken (DeepSpeed <c>global_steps</c>).</summary>
    public long GlobalSteps { get; private set; }
    /// <summary>Micro-steps taken (calls to <see cref="Step"/>).</summary>
    public long MicroSteps { get; private set; }
    /// <summary>Steps skipped because the gradient norm was not finite.</summary>
    public long SkippedSteps { get; private set; }
    /// <summary>Global gradient norm of the last optimizer step (before clipping).</summary>
    public double LastGradNorm { get; private set; }
    /// <summary>Learning rate of the last optimizer step.</summary>
    public double LastLearningRate { get; private set; }
    /// <summary>Seconds spent inside collectives since the engine started (issue + wait).</summary>
    public double CommSeconds => commClock.Elapsed.TotalSeconds;
    /// <summary>True when the next <see cref="Step"/> applies the optimizer: <c>(micro_step + 1) % gas == 0</c>.</summary>
    public bool IsGradientAccumulationBoundary => (MicroSteps + 1) % Batch.GradientAccumulationSteps == 0;

    /// <summary>Fully-qualified parameter names, in layout order.</summary>
    public IReadOnlyList<string> ParameterNames => layout.Params.Select(p => p.Name).ToList();

    /// <summary>
    /// Builds the engine: lays out and allocates the buffers, initialises the weights on every rank from
    /// <see cref="EngineSettings.Seed"/> and broadcasts rank 0's. <paramref name="group"/> null means one process.
    /// </summary>
    public ZeroEngine(ILayeredModel model, EngineSettings settings, ProcessGroup? group, Device? device = null)
    {
        if (settings.Fp16) throw new NotSupportedException("fp16.enabled: use bf16 (fp16 with dynamic loss scaling is not implemented)");
        if (settings.Zero.OffloadParamDevice is not ("none" or ""))
            throw new NotSupportedException($"zero_optimization.offload_param.device {settings.Zero.OffloadParamDevice} is not implemented (none)");
        this.model = model;
        this.group = group;
        Settings = settings;
        Rank = group?.Rank ?? 0;
        WorldSize = group?.Size ?? 1;
        Batch = settings.ResolveBatch(WorldSize);
        dtype = settings.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        this.device = device ?? Device.Cpu;
        optimDevice = settings.Zero.OffloadOptimizer ? Device.Cpu : this.device;
        checkpointing = settings.Zero.Stage == ZeroStage.Parameters || !settings.DisableGradientCheckpointing;
        schedule = LrSchedule.From(settings.Scheduler, settings.Optimizer.Lr);

        var specs = new List<(string Name, long[] Shape)>();
        layerFirstParam = new int[model.Layers.Count];
        foreach (var (layer, i) in model.Layers.Select((l, i) => (l, i)))
        {
            layerFirstParam[i] = specs.Count;
            foreach (var p in layer.Parameters) specs.Add((layer.QualifiedName(p), p.Shape));
        }
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var j = 0; j < specs.Count; j++)
            if (!index.TryAdd(specs[j].Name, j)) throw new ArgumentException($"parameter name '{specs[j].Name}' is declared twice", nameof(model));
        layerShared = model.Layers.Select((layer, i) => layer.SharedParameters.Select(name =>
        {
            if (!index.TryGetValue(name, out var j)) throw new ArgumentException($"layer {layer.Name} shares parameter '{name}', which no layer declares", nameof(model));
            if (j >= layerFirstParam[i] && j < layerFirstParam[i] + layer.Parameters.Count) throw new ArgumentException($"layer {layer.Name} shares its own parameter '{name}'", nameof(model));
            return j;
        }).ToArray()).ToArray();
        foreach (var (shared, i) in layerShared.Select((s, i) => (s, i)))
            if (shared.Distinct().Count() != shared.Length) throw new ArgumentException($"layer {model.Layers[i].Name} lists a shared parameter twice", nameof(model));
        layout = PartitionLayout.Create(settings.Zero.Stage, WorldSize, specs);
        persistent = new Tensor?[layout.Params.Count];

        var ownedLen = layout.OwnedLength;
        if (Stage == ZeroStage.Parameters)
        {
            paramShard = Own(Torch.Zeros([ownedLen], dtype, this.device));
            gradShard = Own(Torch.Zeros([ownedLen], dtype, this.device));
        }
        else
        {
            flatParams = Own(Torch.Zeros([layout.PaddedTotal], dtype, this.device));
            if (Stage == ZeroStage.Gradients) gradShard = Own(Torch.Zeros([ownedLen], dtype, this.device));
            else flatGrads = Own(Torch.Zeros([layout.PaddedTotal], dtype, this.device));
        }

        InitializeWeights();

        var ownedParams = OwnedParams();
        masterIsSeparate = dtype != ScalarType.Float32 || optimDevice != this.device;
        master = masterIsSeparate ? Own(ownedParams.To(ScalarType.Float32).To(optimDevice).Clone()) : Own(ownedParams);
        expAvg = Own(Torch.Zeros([ownedLen], ScalarType.Float32, optimDevice));
        expAvgSq = Own(Torch.Zeros([ownedLen], ScalarType.Float32, optimDevice));
        if (masterIsSeparate) ownedParams.Dispose();
    }

    private Tensor Own(Tensor t)
    {
        t.DetachFromScope();
        owned.Add(t);
        return t;
    }

    // ------------------------------------------------------------------ collectives

    private void Comm(Func<ProcessGroup, Work> op)
    {
        if (group is null || WorldSize == 1) return;
        commClock.Start();
        try { op(group).Wait(); }
        finally { commClock.Stop(); }
    }

    /// <summary>Mean of <paramref name="value"/> over all ranks (fp64 all-reduce); for logging losses.</summary>
    public double AllReduceMean(double value)
    {
        if (WorldSize == 1) return value;
        using var scope = Torch.NewScope();
        var t = Torch.From([value], 1);
        Comm(g => g.AllReduce(t));
        return t.Item() / WorldSize;
    }

    // ------------------------------------------------------------------ parameters

    /// <summary>The owned slice of the parameters (stages 0–2: a view of the flat buffer; stage 3: the shard).</summary>
    private Tensor OwnedParams() =>
        Stage == ZeroStage.Parameters ? paramShard!.Narrow(0, 0, layout.OwnedLength) : flatParams!.Narrow(0, layout.OwnedStart(Rank), layout.OwnedLength);

    private void InitializeWeights()
    {
        var gen = new Generator(Settings.Seed);
        try
        {
            var j = 0;
            using (Torch.NoGrad())
                foreach (var layer in model.Layers)
                {
                    using var scope = Torch.NewScope();
                    var values = layer.Initialize(gen);
                    if (values.Length != layer.Parameters.Count) throw new InvalidOperationException($"layer {layer.Name} initialised {values.Length} tensors for {layer.Parameters.Count} parameters");
                    for (var k = 0; k < values.Length; k++, j++)
                    {
                        if (!values[k].Shape.SequenceEqual(layout.Params[j].Shape))
                            throw new InvalidOperationException($"{layout.Params[j].Name}: initialised with shape [{string.Join(",", values[k].Shape)}], declared [{string.Join(",", layout.Params[j].Shape)}]");
                        SetFullParam(j, values[k], broadcast: true);
                    }
                }
        }
        finally { gen.Dispose(); }
        if (Stage != ZeroStage.Parameters) Comm(g => g.Broadcast(flatParams!, 0));
    }

    /// <summary>Writes a full parameter value into this rank's buffers (stage 3: broadcasting it from rank 0 first when asked).</summary>
    private void SetFullParam(int j, Tensor value, bool broadcast)
    {
        var p = layout.Params[j];
        if (Stage != ZeroStage.Parameters)
        {
            flatParams!.Narrow(0, p.Offset, p.NumEl).Copy_(value.Reshape(-1));
            return;
        }
        using var scope = Torch.NewScope();
        var c = layout.Chunk(j);
        var full = Torch.Zeros([c * WorldSize], dtype, device);
        full.Narrow(0, 0, p.NumEl).Copy_(value.Reshape(-1));
        if (broadcast) Comm(g => g.Broadcast(full, 0));
        paramShard!.Narrow(0, layout.ShardOffset(j), c).Copy_(full.Narrow(0, Rank * c, c));
        if (IsPersistent(j))
        {
            persistent[j]?.Dispose();
            if (persistent[j] is null) { persistentBytes += p.NumEl * full.ElementSize; gatheredBytes += p.NumEl * full.ElementSize; }
            persistent[j] = full.Narrow(0, 0, p.NumEl).View(p.Shape).Contiguous().DetachFromScope();
            peakGatheredBytes = Math.Max(peakGatheredBytes, gatheredBytes);
        }
    }

    private bool IsPersistent(int j) => Stage == ZeroStage.Parameters && layout.Params[j].NumEl < Settings.Zero.Stage3ParamPersistenceThreshold;

    /// <summary>
    /// The parameters of layer <paramref name="i"/> (its own, then the ones it shares) as tensors the forward can use: views of the flat buffer
    /// (stages 0–2), persistent tensors, or freshly all-gathered ones (stage 3, released by <see cref="Release"/>).
    /// With <paramref name="leaves"/> each is a new autograd leaf sharing the storage.
    /// </summary>
    private (Tensor[] Params, long Gathered) Materialize(int i, bool leaves)
    {
        var layer = model.Layers[i];
        var own = layer.Parameters.Count;
        var r = new Tensor[own + layerShared[i].Length];
        long gathered = 0;
        for (var k = 0; k < r.Length; k++)
        {
            var j = k < own ? layerFirstParam[i] + k : layerShared[i][k - own];
            var p = layout.Params[j];
            Tensor t;
            if (Stage != ZeroStage.Parameters) t = flatParams!.Narrow(0, p.Offset, p.NumEl).View(p.Shape);
            else if (persistent[j] is { } pt) t = pt.Detach();
            else
            {
                var c = layout.Chunk(j);
                var full = Torch.Empty([c * WorldSize], dtype, device);
                var shard = paramShard!.Narrow(0, layout.ShardOffset(j), c);
                if (WorldSize == 1) full.Copy_(shard);
                else Comm(g => g.AllGather(shard, full));
                gathered += c * WorldSize * full.ElementSize;
                t = full.Narrow(0, 0, p.NumEl).View(p.Shape);
            }
            r[k] = leaves ? t.Detach().RequiresGrad_(true) : t;
        }
        gatheredBytes += gathered;
        peakGatheredBytes = Math.Max(peakGatheredBytes, gatheredBytes);
        return (r, gathered);
    }

    private void Release(long gathered) => gatheredBytes -= gathered;

    // ------------------------------------------------------------------ forward / backward

    private sealed class PendingForward : IDisposable
    {
        public Tensor[]? Inputs;     // checkpointed: each layer's input (owned handles)
        public Tensor? Output;       // checkpointed: the leaf whose grad starts the recomputation
        public Tensor[][]? Leaves;   // not checkpointed: each layer's parameter leaves
        public LayerContext? Context; // checkpointed: the engine's handles on the forward's context, reused by the recomputation

        public void Dispose()
        {
            Context?.Release();
            if (Inputs is not null) foreach (var t in Inputs) t?.Dispose();
            Output?.Dispose();
            if (Leaves is not null) foreach (var l in Leaves) foreach (var t in l) t.Dispose();
        }
    }

    /// <summary>
    /// Runs the model on <paramref name="input"/> and returns the last layer's output (in the caller's scope).
    /// Every layer receives <paramref name="context"/> (positions and attention mask for transformers; see
    /// <see cref="LayerContext"/>). With gradients enabled the call is remembered for <see cref="Backward(Tensor)"/>:
    /// checkpointed, only each layer's input and the context are kept (recomputed in backward with that same
    /// context); otherwise the whole graph is.
    /// </summary>
    public Tensor Forward(Tensor input, LayerContext? context = null)
    {
        var training = Torch.IsGradEnabled;
        if (!training || checkpointing)
        {
            var rec = training ? new PendingForward { Inputs = new Tensor[model.Layers.Count], Context = context?.Retain() } : null;
            Tensor x = input;
            using (Torch.NoGrad())
                for (var i = 0; i < model.Layers.Count; i++)
                {
                    if (rec is not null) rec.Inputs![i] = (i == 0 ? x.Detach() : x).DetachFromScope();
                    Tensor y;
                    using (var scope = Torch.NewScope())
                    {
                        var (ps, gathered) = Materialize(i, leaves: false);
                        y = model.Layers[i].Forward(ps, x, context).MoveToOuter();
                        Release(gathered);
                    }
                    if (rec is null && i > 0) x.Dispose();
                    x = y;
                }
            if (rec is null) return x;
            rec.Output = x.Detach().RequiresGrad_(true).DetachFromScope();
            pending.Add(rec);
            return rec.Output.View(rec.Output.Shape); // a view: the caller's scope may dispose it, the leaf stays ours
        }
        else
        {
            var rec = new PendingForward { Leaves = new Tensor[model.Layers.Count][] };
            Tensor x = input;
            for (var i = 0; i < model.Layers.Count; i++)
            {
                var (ps, _) = Materialize(i, leaves: true);
                foreach (var p in ps) p.DetachFromScope();
                rec.Leaves[i] = ps;
                x = model.Layers[i].Forward(ps, x, context);
            }
            pending.Add(rec);
            return x;
        }
    }

    /// <summary>Backward of <paramref name="loss"/> scaled by 1/gas, then this engine's gradient epilogue.</summary>
    public void Backward(Tensor loss) => Backward(loss, this);

    /// <summary>
    /// One backward over a loss shared by several engines (PPO's policy and value): the loss is scaled by
    /// 1/gas and differentiated once, then each engine runs its gradient epilogue (recompute, reduce).
    /// </summary>
    public static void Backward(Tensor loss, params ZeroEngine[] engines)
    {
        if (engines.Length == 0) throw new ArgumentException("no engines");
        var gas = engines[0].Batch.GradientAccumulationSteps;
        if (engines.Any(e => e.Batch.GradientAccumulationSteps != gas))
            throw new ArgumentException("engines sharing a loss must use the same gradient_accumulation_steps");
        using (var scope = Torch.NewScope())
        {
            var scaled = gas == 1 ? loss : loss * (1.0 / gas);
            scaled.Backward();
        }
        foreach (var e in engines) e.GradientEpilogue();
    }

    /// <summary>
    /// After the caller's backward reached this engine's outputs: recompute each remembered forward layer by
    /// layer in reverse (checkpointed) and hand each layer's parameter gradients to the stage's reduction.
    /// </summary>
    public void GradientEpilogue()
    {
        for (var f = pending.Count - 1; f >= 0; f--)
        {
            var rec = pending[f];
            try
            {
                if (rec.Leaves is not null)
                {
                    for (var i = model.Layers.Count - 1; i >= 0; i--)
                    {
                        using var scope = Torch.NewScope();
                        AccumulateLayer(i, rec.Leaves[i].Select(p => p.Grad).ToArray());
                    }
                    continue;
                }
                var g = rec.Output!.Grad?.DetachFromScope();
                if (g is null) continue; // this output did not reach the loss
                for (var i = model.Layers.Count - 1; i >= 0; i--)
                {
                    Tensor? gNext = null;
                    using (var scope = Torch.NewScope())
                    using (Torch.GradEnabled(true))
                    {
                        var (ps, gathered) = Materialize(i, leaves: true);
                        var x = rec.Inputs![i];
                        var needInputGrad = i > 0 && x.Dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64;
                        var xr = needInputGrad ? x.Detach().RequiresGrad_(true) : x;
                        var y = model.Layers[i].Forward(ps, xr, rec.Context);
                        y.Backward(g);
                        if (needInputGrad) gNext = xr.Grad?.DetachFromScope();
                        AccumulateLayer(i, ps.Select(p => p.Grad).ToArray());
                        Release(gathered);
                    }
                    g.Dispose();
                    if (gNext is null) break;
                    g = gNext;
                }
                g?.Dispose();
            }
            finally { rec.Dispose(); }
        }
        pending.Clear();
    }

    /// <summary>
    /// Adds one layer's parameter gradients (its own, then its shared ones, as <see cref="Materialize"/> ordered them)
    /// into the stage's gradient buffer, reducing now for stages 2–3. A shared (tied) parameter's gradient is added
    /// once per reader, which sums them.
    /// </summary>
    private void AccumulateLayer(int i, Tensor?[] grads)
    {
        using var noGrad = Torch.NoGrad();
        var first = layerFirstParam[i];
        var own = model.Layers[i].Parameters.Count;
        int Index(int k) => k < own ? first + k : layerShared[i][k - own];
        switch (Stage)
        {
            case ZeroStage.Disabled:
            case ZeroStage.OptimizerStates:
                for (var k = 0; k < grads.Length; k++)
                    if (grads[k] is { } gk)
                    {
                        var p = layout.Params[Index(k)];
                        flatGrads!.Narrow(0, p.Offset, p.NumEl).Add_(gk.Reshape(-1));
                    }
                break;

            case ZeroStage.Gradients:
                // The layer's own run of the flat space in one bucketed reduction, each shared parameter in its own.
                if (own > 0) ReduceRun(Enumerable.Range(0, own).Select(k => (first + k, grads[k])).ToList());
                for (var k = own; k < grads.Length; k++) ReduceRun([(Index(k), grads[k])]);
                break;

            case ZeroStage.Parameters:
                for (var k = 0; k < grads.Length; k++)
                {
                    var j = Index(k);
                    var p = layout.Params[j];
                    var c = layout.Chunk(j);
                    var dst = gradShard!.Narrow(0, layout.ShardOffset(j), c);
                    if (grads[k] is not { } gk) { if (WorldSize == 1) continue; gk = Torch.Zeros(p.Shape, dtype, device); }
                    if (WorldSize == 1) { dst.Narrow(0, 0, p.NumEl).Add_(gk.Reshape(-1)); continue; }
                    var padded = Torch.Zeros([c * WorldSize], dtype, device);
                    padded.Narrow(0, 0, p.NumEl).Copy_(gk.Reshape(-1));
                    var mine = Torch.Empty([c], dtype, device);
                    Comm(g => g.ReduceScatter(padded, mine));
                    dst.Add_(mine.Div_(WorldSize));
                }
                break;
        }
    }

    /// <summary>
    /// Stage 2: the gradients of a contiguous run of parameters (global indices in flat order), reduced in buckets
    /// (DeepSpeed's all-reduce then keep own runs), averaged, and only this rank's intersection kept.
    /// </summary>
    private void ReduceRun(IReadOnlyList<(int Param, Tensor? Grad)> run)
    {
        var pFirst = layout.Params[run[0].Param];
        var pLast = layout.Params[run[^1].Param];
        long a = pFirst.Offset, len = pLast.Offset + pLast.NumEl - a;
        if (len == 0) return;
        var bucket = Torch.Zeros([len], dtype, device);
        foreach (var (j, g) in run)
            if (g is not null)
            {
                var p = layout.Params[j];
                bucket.Narrow(0, p.Offset - a, p.NumEl).Copy_(g.Reshape(-1));
            }
        var maxBucket = Math.Max(1, Settings.Zero.ReduceBucketSize);
        for (long s = 0; s < len; s += maxBucket)
        {
            var piece = bucket.Narrow(0, s, Math.Min(maxBucket, len - s));
            Comm(g => g.AllReduce(piece));
        }
        if (WorldSize > 1) bucket.Div_(WorldSize);
        long own = layout.OwnedStart(Rank), ownEnd = own + layout.OwnedLength;
        long lo = Math.Max(a, own), hi = Math.Min(a + len, ownEnd);
        if (hi > lo) gradShard!.Narrow(0, lo - own, hi - lo).Add_(bucket.Narrow(0, lo - a, hi - lo));
    }

    // ------------------------------------------------------------------ step

    /// <summary>
    /// Ends a micro-step. At the accumulation boundary: reduce (stages 0–1), clip by the global norm over
    /// shards, AdamW on the owned fp32 masters, write back and all-gather (stages 1–2) or refresh persistent
    /// parameters (stage 3), zero the gradients and advance the schedule.
    /// </summary>
    public void Step()
    {
        if (pending.Count > 0) throw new InvalidOperationException("Step() called with forwards whose Backward() was not run");
        if (!IsGradientAccumulationBoundary) { MicroSteps++; return; }
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();

        if (Stage is ZeroStage.Disabled or ZeroStage.OptimizerStates && WorldSize > 1)
        {
            var maxBucket = Math.Max(1, Settings.Zero.ReduceBucketSize);
            for (long s = 0; s < layout.PaddedTotal; s += maxBucket)
            {
                var piece = flatGrads!.Narrow(0, s, Math.Min(maxBucket, layout.PaddedTotal - s));
                Comm(g => g.AllReduce(piece));
            }
            flatGrads!.Div_(WorldSize);
        }
        var ownedGrads = Stage switch
        {
            ZeroStage.Disabled or ZeroStage.OptimizerStates => flatGrads!.Narrow(0, layout.OwnedStart(Rank), layout.OwnedLength),
            _ => gradShard!,
        };
        var g32 = ownedGrads.Dtype == ScalarType.Float32 && ownedGrads.Device == optimDevice ? ownedGrads : ownedGrads.To(ScalarType.Float32).To(optimDevice);

        // Global norm over shards: each rank's squares in double, summed across ranks (stage 0 holds it all).
        var sq = Optim.SumOfSquares([g32]);
        if (Stage != ZeroStage.Disabled && WorldSize > 1)
        {
            var t = Torch.From([sq], 1);
            Comm(g => g.AllReduce(t));
            sq = t.Item();
        }
        var norm = Math.Sqrt(sq);
        LastGradNorm = norm;
        if (!double.IsFinite(norm))
        {
            SkippedSteps++;
        }
        else
        {
            if (Settings.GradientClipping > 0)
            {
                var clip = Math.Max(1.0, (norm + 1e-6) / Settings.GradientClipping);
                if (clip > 1.0) g32.Div_(clip);
            }
            var taken = GlobalSteps - SkippedSteps;
            var lr = schedule.LearningRate(taken);
            LastLearningRate = lr;
            var o = Settings.Optimizer;
            var (beta1, beta2) = schedule.Betas(taken) ?? o.Betas; // OneCycle's cycle_momentum drives the betas
            Optim.AdamWStep([master], [g32], [expAvg], [expAvgSq], lr, beta1, beta2, o.Eps, o.WeightDecay, taken + 1);
            if (masterIsSeparate) OwnedParams().Copy_(master);
            RefreshAfterUpdate();
        }
        if (flatGrads is not null) flatGrads.Zero_();
        if (gradShard is not null) gradShard.Zero_();
        GlobalSteps++;
        MicroSteps++;
    }

    /// <summary>Makes every rank's working parameters agree with the owned slices again.</summary>
    private void RefreshAfterUpdate()
    {
        if (Stage is ZeroStage.OptimizerStates or ZeroStage.Gradients && WorldSize > 1)
        {
            using var scope = Torch.NewScope();
            var mine = OwnedParams().Clone();
            Comm(g => g.AllGather(mine, flatParams!));
        }
        else if (Stage == ZeroStage.Parameters)
        {
            for (var j = 0; j < layout.Params.Count; j++)
            {
                if (persistent[j] is not { } pt) continue;
                using var scope = Torch.NewScope();
                var c = layout.Chunk(j);
                var full = Torch.Empty([c * WorldSize], dtype, device);
                var shard = paramShard!.Narrow(0, layout.ShardOffset(j), c);
                if (WorldSize == 1) full.Copy_(shard);
                else Comm(g => g.AllGather(shard, full));
                pt.Copy_(full.Narrow(0, 0, layout.Params[j].NumEl).View(layout.Params[j].Shape));
            }
        }
    }

    // ------------------------------------------------------------------ memory and metrics

    /// <summary>This rank's model-state bytes, from the engine's buffers.</summary>
    public MemoryReport Memory
    {
        get
        {
            long Bytes(Tensor? t) => t is null ? 0 : t.NumBytes;
            var param = Stage == ZeroStage.Parameters ? Bytes(paramShard) : Bytes(flatParams);
            var grad = Bytes(flatGrads) + Bytes(gradShard);
            var optim = (masterIsSeparate ? Bytes(master) : 0) + Bytes(expAvg) + Bytes(expAvgSq);
            return new MemoryReport(param, grad, optim, persistentBytes, peakGatheredBytes);
        }
    }

    /// <summary>Restarts the peak-gathered counter (stage 3) from what is gathered now.</summary>
    public void ResetPeakMemory() => peakGatheredBytes = gatheredBytes;

    /// <summary>Metrics of the last step and memory, named for the metrics log.</summary>
    public IReadOnlyDictionary<string, double> Metrics()
    {
        var m = Memory;
        return new Dictionary<string, double>
        {
            ["lr"] = LastLearningRate,
            ["grad_norm"] = LastGradNorm,
            ["engine/global_steps"] = GlobalSteps,
            ["engine/skipped_steps"] = SkippedSteps,
            ["engine/comm_seconds"] = CommSeconds,
            ["memory/parameters_bytes"] = m.ParameterBytes,
            ["memory/gradients_bytes"] = m.GradientBytes,
            ["memory/optimizer_bytes"] = m.OptimizerBytes,
            ["memory/model_states_bytes"] = m.ModelStateBytes,
            ["memory/persistent_parameters_bytes"] = m.PersistentParameterBytes,
            ["memory/peak_gathered_parameters_bytes"] = m.PeakGatheredParameterBytes,
        };
    }

    // ------------------------------------------------------------------ full weights and state

    /// <summary>Every parameter in full, as <paramref name="as"/> (a collective: all ranks call it and all get the weights).</summary>
    public List<KeyValuePair<string, Tensor>> GatherFullWeights(ScalarType @as = ScalarType.Float32)
    {
        var r = new List<KeyValuePair<string, Tensor>>();
        using var noGrad = Torch.NoGrad();
        if (Stage != ZeroStage.Parameters)
        {
            // fp32 masters are the truth: gather them in bf16 mode so fp32 output is exact.
            var source = masterIsSeparate ? GatherFlatMasters() : flatParams!;
            foreach (var p in layout.Params)
                r.Add(new(p.Name, source.Narrow(0, p.Offset, p.NumEl).View(p.Shape).To(@as).Clone()));
            if (!ReferenceEquals(source, flatParams)) source.Dispose();
            return r;
        }
        for (var j = 0; j < layout.Params.Count; j++)
        {
            using var scope = Torch.NewScope();
            var p = layout.Params[j];
            var c = layout.Chunk(j);
            var shard = master.Narrow(0, layout.ShardOffset(j), c).To(device).Contiguous();
            var full = Torch.Empty([c * WorldSize], ScalarType.Float32, device);
            if (WorldSize == 1) full.Copy_(shard);
            else Comm(g => g.AllGather(shard, full));
            r.Add(new(p.Name, full.Narrow(0, 0, p.NumEl).View(p.Shape).To(@as).Clone().MoveToOuter()));
        }
        return r;
    }

    private Tensor GatherFlatMasters()
    {
        var flat = Torch.Zeros([layout.PaddedTotal], ScalarType.Float32, device);
        if (Stage == ZeroStage.Disabled) { flat.Copy_(master); return flat; }
        using var scope = Torch.NewScope();
        var mine = master.To(device).Contiguous();
        if (WorldSize == 1) flat.Copy_(mine);
        else Comm(g => g.AllGather(mine, flat));
        return flat;
    }

    /// <summary>DeepSpeed's <c>save_16bit_model</c>: gathers the weights in the training dtype and rank 0 writes them (HF names) with <paramref name="writer"/>.</summary>
    public void Save16BitModel(string dir, IWeightWriter? writer = null)
    {
        using var scope = Torch.NewScope();
        var w = GatherFullWeights(dtype);
        if (Rank == 0) (writer ?? new SafetensorsWeightWriter()).Write(dir, w);
        Comm(g => g.Barrier());
    }

    /// <summary>
    /// Test seam (one process only): parameter <paramref name="j"/>'s gradient as accumulated since the last optimizer
    /// step (a view of the gradient buffer, shaped like the parameter, in the training dtype).
    /// </summary>
    internal Tensor LocalGradient(int j)
    {
        if (WorldSize != 1) throw new InvalidOperationException("LocalGradient reads a whole gradient buffer: one process only");
        var p = layout.Params[j];
        var offset = Stage == ZeroStage.Parameters ? layout.ShardOffset(j) : p.Offset;
        return (flatGrads ?? gradShard!).Narrow(0, offset, p.NumEl).View(p.Shape);
    }

    /// <summary>The owned optimizer buffers, for checkpoints: fp32 masters, exp_avg, exp_avg_sq.</summary>
    internal (Tensor Master, Tensor ExpAvg, Tensor ExpAvgSq) OwnedOptimizerState => (master, expAvg, expAvgSq);

    /// <summary>The 16-bit (training dtype) working parameters this rank holds: full flat buffer (0–2) or shard (3).</summary>
    internal Tensor WorkingParameters => Stage == ZeroStage.Parameters ? paramShard! : flatParams!;

    internal ProcessGroup? Group => group;

    /// <summary>Counters saved with checkpoints.</summary>
    internal (long Global, long Micro, long Skipped) Counters
    {
        get => (GlobalSteps, MicroSteps, SkippedSteps);
        set => (GlobalSteps, MicroSteps, SkippedSteps) = value;
    }

    /// <summary>
    /// Replaces the whole training state from full per-parameter fp32 tensors (masters, exp_avg, exp_avg_sq, in
    /// layout order): each rank keeps the elements its layout owns and rebuilds its working parameters.
    /// </summary>
    internal void SetFullState(IReadOnlyList<Tensor> masters, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        foreach (var piece in layout.Pieces(Rank))
        {
            master.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(masters[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
            expAvg.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(m[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
            expAvgSq.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(v[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
        }
        // Working parameters: every rank has the full masters here, so no communication is needed.
        for (var j = 0; j < layout.Params.Count; j++) SetFullParam(j, masters[j].To(dtype), broadcast: false);
        flatGrads?.Zero_();
        gradShard?.Zero_();
    }

    /// <summary>Releases every buffer.</summary>
    public void Dispose()
    {
        foreach (var p in pending) p.Dispose();
        pending.Clear();
        foreach (var t in persistent) t?.Dispose();
        foreach (var t in owned) t.Dispose();
        owned.Clear();
    }

    /// <summary>Writes a sharded checkpoint <c>&lt;dir&gt;/&lt;tag&gt;/</c> atomically (see <see cref="Checkpoint"/>); returns the tag.</summary>
    public string SaveCheckpoint(string dir, string? tag = null) => Checkpoint.Save(this, dir, tag);

    /// <summary>Loads <c>&lt;dir&gt;/&lt;tag&gt;</c> (default: the tag in <c>latest</c>) at any world size; returns the tag.</summary>
    public string LoadCheckpoint(string dir, string? tag = null) => Checkpoint.Load(this, dir, tag);
}
