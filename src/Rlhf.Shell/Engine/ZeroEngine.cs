using Rlhf.Core.Models;
using Rlhf.Core.Schedules;
using Rlhf.Settings;
using Rlhf.Shell.Io;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>Per-rank bytes of model states, counted from the engine's own buffers (numel × element size).</summary>
/// <param name="ParameterBytes">16-bit (or fp32) parameters this rank holds: the full flat buffer (stages 0–2) or its shard (3).</param>
/// <param name="GradientBytes">Gradient buffer: full (0–1) or this rank's slice (2–3); 0 when frozen.</param>
/// <param name="OptimizerBytes">fp32 master copy (when separate from the parameters) + Adam's two moments, for the owned elements; 0 when frozen.</param>
/// <param name="PersistentParameterBytes">Stage 3: small parameters kept gathered (under the persistence threshold).</param>
/// <param name="PeakGatheredParameterBytes">Stage 3: most parameter bytes gathered at once (persistent ones included).</param>
public sealed record MemoryReport(long ParameterBytes, long GradientBytes, long OptimizerBytes, long PersistentParameterBytes, long PeakGatheredParameterBytes)
{
    /// <summary>Parameters + gradients + optimizer state: what ZeRO's 16Ψ accounting (Rajbhandari et al., 2020) counts.</summary>
    public long ModelStateBytes => ParameterBytes + GradientBytes + OptimizerBytes;
}

/// <summary>
/// A ZeRO data-parallel engine with DeepSpeed's face: <see cref="Forward"/>, <see cref="Backward(Tensor)"/>,
/// <see cref="Step"/>, <see cref="IsGradientAccumulationBoundary"/>, <see cref="Save16BitModel"/>,
/// <see cref="SaveCheckpoint"/> / <see cref="LoadCheckpoint"/>. It takes the generated <see cref="DeepSpeedSettings"/>
/// as they are. The stage picks, once, where parameters and gradients live (<see cref="FlatState"/> for stages 0–2,
/// <see cref="ShardedState"/> for 3); the model runs layer by layer (per-layer activation checkpointing; stage 3
/// gathers each layer's parameters in forward and again in backward). bf16 keeps fp32 masters; optimizer state may be
/// offloaded to the CPU. A <see cref="Frozen"/> engine (reference and reward models) has no gradients and no optimizer
/// state. Every rank must call the same methods in the same order (they are collectives).
/// </summary>
public sealed class ZeroEngine : IDisposable
{
    private readonly PartitionedState state;
    private readonly AdamWState? optimizer;
    private readonly LayerRunner runner;
    private readonly Communicator comm;
    private LrSchedule schedule;
    private readonly AdamW adamW;
    private LiveWeights? live;
    private bool skipRequested;

    /// <summary>
    /// A trainable engine: lays out and allocates the buffers, initialises the weights on every rank from
    /// <paramref name="seed"/> and keeps rank 0's. <paramref name="settings"/> must be resolved (batch sizes and optimizer
    /// values set: load them through the config resolver or <see cref="DeepSpeedConfig.Load"/>). <paramref name="group"/>
    /// null means one process. <paramref name="gradientCheckpointing"/> recomputes each layer in backward instead of
    /// keeping its activations (stage 3 always recomputes).
    /// </summary>
    public ZeroEngine(ILayeredModel model, DeepSpeedSettings settings, ProcessGroup? group, ulong seed, bool gradientCheckpointing, Device? device = null)
        : this(model, settings, group, seed, gradientCheckpointing, device, trainable: true, parameterDtype: null) { }

    /// <summary>
    /// A frozen engine for a model that only scores (reference, reward): the same layer-wise, stage-aware forward (stage 3
    /// gathers per layer) with no gradient buffers and no optimizer state. Only the precision and ZeRO keys of
    /// <paramref name="settings"/> are read. <see cref="Backward(Tensor)"/> and <see cref="Step"/> throw.
    /// </summary>
    public static ZeroEngine Frozen(ILayeredModel model, DeepSpeedSettings settings, ProcessGroup? group, ulong seed, Device? device = null) =>
        new(model, settings, group, seed, gradientCheckpointing: false, device, trainable: false, parameterDtype: null);

    /// <summary>The full constructor; <paramref name="parameterDtype"/> overrides bf16/fp32 (tests run float64 to compare with a float64 reference).</summary>
    internal ZeroEngine(ILayeredModel model, DeepSpeedSettings settings, ProcessGroup? group, ulong seed, bool gradientCheckpointing,
        Device? device, bool trainable, ScalarType? parameterDtype)
    {
        if (settings.Fp16.Enabled) throw new NotSupportedException("fp16.enabled: use bf16 (fp16 with dynamic loss scaling is not implemented)");
        var z = settings.ZeroOptimization;
        if (z.OffloadOptimizer.Device == OffloadDevice.Nvme)
            throw new NotSupportedException("zero_optimization.offload_optimizer.device nvme is not supported (none or cpu)");
        Settings = settings;
        Trainable = trainable;
        var stage = DeepSpeedConfig.Stage(settings);
        var dev = device ?? Device.Cpu;
        // DeepSpeed's offload_param (ZeRO-3 only, as DeepSpeed's config checks): a rank's parameter shards live in host
        // memory. On the CPU they already do, so cpu is accepted there as it stands; on a GPU the gather-to-device per
        // layer is not implemented.
        if (z.OffloadParam.Device != OffloadDevice.None)
        {
            if (stage != ZeroStage.Parameters)
                throw new NotSupportedException($"zero_optimization.offload_param needs ZeRO stage 3, got stage {z.Stage}");
            if (z.OffloadParam.Device != OffloadDevice.Cpu || dev.Type != DeviceType.Cpu)
                throw new NotSupportedException($"zero_optimization.offload_param.device {OffloadDeviceYaml.ToYaml(z.OffloadParam.Device)} on {dev}: only cpu on a CPU device is implemented (the shards are then in host memory already)");
        }
        comm = new Communicator(group);
        if (trainable)
        {
            (TrainBatchSize, MicroBatchPerGpu, GradientAccumulationSteps) = DeepSpeedConfig.Batch(settings, comm.WorldSize);
            adamW = DeepSpeedConfig.AdamW(settings);
            schedule = DeepSpeedConfig.Schedule(settings.Scheduler, adamW.Lr);
        }
        else schedule = new ConstantLr(0);

        var dtype = parameterDtype ?? (settings.Bf16.Enabled ? ScalarType.BFloat16 : ScalarType.Float32);
        var (specs, first, shared) = LayerRunner.Plan(model);
        Layout = PartitionLayout.Create(stage, comm.WorldSize, specs);
        state = PartitionedState.Create(Layout, dtype, dev, comm, trainable, z.Stage3ParamPersistenceThreshold, z.ReduceBucketSize);
        try
        {
            InitializeWeights(model, seed);
            if (trainable) optimizer = new AdamWState(state, z.OffloadOptimizer.Device == OffloadDevice.Cpu ? Device.Cpu : dev);
        }
        catch
        {
            state.Dispose(); // a model whose initialiser fails must not leak the buffers already allocated
            throw;
        }
        runner = new LayerRunner(model, state, first, shared, checkpointing: stage == ZeroStage.Parameters || gradientCheckpointing);
    }

    private void InitializeWeights(ILayeredModel model, ulong seed)
    {
        using var gen = new Generator(seed);
        var j = 0;
        using (Torch.NoGrad())
            foreach (var layer in model.Layers)
            {
                using var scope = Torch.NewScope();
                var values = layer.Initialize(gen);
                if (values.Length != layer.Parameters.Count) throw new InvalidOperationException($"layer {layer.Name} initialised {values.Length} tensors for {layer.Parameters.Count} parameters");
                for (var k = 0; k < values.Length; k++, j++)
                {
                    if (!values[k].Shape.SequenceEqual(Layout.Params[j].Shape))
                        throw new InvalidOperationException($"{Layout.Params[j].Name}: initialised with shape [{string.Join(",", values[k].Shape)}], declared [{string.Join(",", Layout.Params[j].Shape)}]");
                    state.SetFullParameter(j, values[k], broadcast: true);
                }
            }
        state.BroadcastInitialWeights();
    }

    /// <summary>This rank.</summary>
    public int Rank => comm.Rank;
    /// <summary>Data-parallel world size.</summary>
    public int WorldSize => comm.WorldSize;
    /// <summary>The settings the engine runs with, as given.</summary>
    public DeepSpeedSettings Settings { get; }
    /// <summary>False for a <see cref="Frozen"/> engine.</summary>
    public bool Trainable { get; }
    /// <summary><c>train_batch_size</c>: micro × gas × world size (0 when frozen).</summary>
    public int TrainBatchSize { get; }
    /// <summary><c>train_micro_batch_size_per_gpu</c> (0 when frozen).</summary>
    public int MicroBatchPerGpu { get; }
    /// <summary><c>gradient_accumulation_steps</c> (0 when frozen).</summary>
    public int GradientAccumulationSteps { get; }
    /// <summary>ZeRO stage.</summary>
    public ZeroStage Stage => Layout.Stage;
    /// <summary>The partition layout (what each rank owns).</summary>
    public PartitionLayout Layout { get; }
    /// <summary>The learning-rate schedule (Core).</summary>
    public LrSchedule Schedule => schedule;
    /// <summary>Optimizer steps taken (DeepSpeed <c>global_steps</c>).</summary>
    public long GlobalSteps { get; private set; }
    /// <summary>Micro-steps taken (calls to <see cref="Step"/>).</summary>
    public long MicroSteps { get; private set; }
    /// <summary>Steps skipped because the gradient norm (or, through <see cref="SkipStep"/>, the loss) was not finite.</summary>
    public long SkippedSteps { get; private set; }
    /// <summary>Global gradient norm of the last optimizer step (before clipping).</summary>
    public double LastGradNorm { get; private set; }
    /// <summary>Learning rate of the last optimizer step.</summary>
    public double LastLearningRate { get; private set; }
    /// <summary>Seconds spent inside collectives since the engine started (issue + wait).</summary>
    public double CommSeconds => comm.Seconds;
    /// <summary>True when the next <see cref="Step"/> applies the optimizer: <c>(micro_step + 1) % gas == 0</c>.</summary>
    public bool IsGradientAccumulationBoundary => Trainable && (MicroSteps + 1) % GradientAccumulationSteps == 0;
    /// <summary>Fully-qualified parameter names, in layout order.</summary>
    public IReadOnlyList<string> ParameterNames => Layout.Params.Select(p => p.Name).ToList();

    /// <summary>Mean of <paramref name="value"/> over all ranks (fp64 all-reduce); for logging losses.</summary>
    public double AllReduceMean(double value) => comm.Sum(value) / WorldSize;

    // ------------------------------------------------------------------ forward / backward

    /// <summary>
    /// Runs the model on <paramref name="input"/> and returns the last layer's output (in the caller's scope). Every layer
    /// receives <paramref name="context"/> (see <see cref="LayerContext"/>). With gradients enabled on a trainable engine
    /// the call is remembered for <see cref="Backward(Tensor)"/>; a frozen engine always runs without gradients.
    /// </summary>
    public Tensor Forward(Tensor input, LayerContext? context = null)
    {
        using var memos = Transformer.KeepForwardInputs();   // rotary tables and mask once per forward, not per layer
        return runner.Forward(input, context, training: Trainable && Torch.IsGradEnabled);
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
        if (engines.FirstOrDefault(e => !e.Trainable) is { } frozen) throw new InvalidOperationException($"a frozen engine ({frozen.Layout.Params.Count} parameters) has no gradients: Backward needs trainable engines");
        var gas = engines[0].GradientAccumulationSteps;
        if (engines.Any(e => e.GradientAccumulationSteps != gas))
            throw new ArgumentException("engines sharing a loss must use the same gradient_accumulation_steps");
        using (var scope = Torch.NewScope())
        {
            var scaled = gas == 1 ? loss : loss * (1.0 / gas);
            scaled.Backward();
        }
        foreach (var e in engines) e.GradientEpilogue();
    }

    /// <summary>After the caller's backward reached this engine's outputs: the layer-wise backward (recompute, accumulate, reduce).</summary>
    public void GradientEpilogue() => runner.Backward();

    /// <summary>
    /// DeepSpeed's client <c>lr_scheduler</c> (what HF Trainer passes to <c>deepspeed.initialize</c> when the config has no
    /// <c>scheduler</c>): replaces the constant rate before the first step. Refused when the config names a scheduler or the
    /// engine has stepped.
    /// </summary>
    public void UseClientScheduler(LrSchedule clientSchedule)
    {
        if (!Trainable) throw new InvalidOperationException("a frozen engine has no optimizer to schedule");
        if (Settings.Scheduler is not null) throw new InvalidOperationException("engine.scheduler is set: the config's scheduler and a client scheduler cannot both drive the rate");
        if (GlobalSteps != 0) throw new InvalidOperationException($"the engine has taken {GlobalSteps} steps: set the client scheduler before the first");
        schedule = clientSchedule;
    }

    // ------------------------------------------------------------------ step

    /// <summary>
    /// Marks the optimizer step in progress as bad (a non-finite loss on this rank): at the next accumulation boundary every
    /// rank skips it as it skips a non-finite gradient norm — weights and Adam moments untouched, gradients zeroed,
    /// <see cref="SkippedSteps"/> counted (DeepSpeed's fp16 overflow skip; the ranks agree through the norm's all-reduce).
    /// </summary>
    public void SkipStep() => skipRequested = true;

    /// <summary>
    /// Ends a micro-step. At the accumulation boundary: reduce, clip by the global norm over shards, AdamW on the owned
    /// masters, write back and make every rank's working parameters agree, zero the gradients, advance the schedule and
    /// publish the new live-weights version. A non-finite global norm (or a <see cref="SkipStep"/> on any rank) skips the
    /// update instead.
    /// </summary>
    public void Step()
    {
        if (optimizer is null) throw new InvalidOperationException("a frozen engine has no optimizer: Step needs a trainable engine");
        if (runner.HasPending) throw new InvalidOperationException("Step() called with forwards whose Backward() was not run");
        if (!IsGradientAccumulationBoundary) { MicroSteps++; return; }
        live?.BeforeUpdate();
        using (var scope = Torch.NewScope())
        using (Torch.NoGrad())
        {
            var grads = optimizer.Cast(state.OwnedGradients());
            // Global norm over shards: each rank's squares in double, summed across ranks (stage 0 holds it all).
            var sq = Optim.SumOfSquares([grads]);
            if (skipRequested) sq = double.NaN;                  // NaN survives the sum: every rank skips
            if (!state.OwnsEverything) sq = comm.Sum(sq);
            else if (comm.Active && comm.Sum(skipRequested ? 1.0 : 0.0) > 0) sq = double.NaN;   // stage 0: every rank holds the whole norm; agree on a skip
            skipRequested = false;
            var norm = Math.Sqrt(sq);
            LastGradNorm = norm;
            if (!double.IsFinite(norm)) SkippedSteps++;
            else
            {
                // DeepSpeed (runtime/utils.py clip_grad_norm_, v0.16): clip = max(1, (norm + 1e-6) / max_norm); grad /= clip.
                if (Settings.GradientClipping > 0)
                {
                    var clip = Math.Max(1.0, (norm + 1e-6) / Settings.GradientClipping);
                    if (clip > 1.0) grads.Div_(clip);
                }
                var taken = GlobalSteps - SkippedSteps;
                var lr = schedule.LearningRate(taken);
                LastLearningRate = lr;
                var (beta1, beta2) = schedule.Betas(taken) ?? (adamW.Beta1, adamW.Beta2); // OneCycle's cycle_momentum drives the betas
                optimizer.Step(grads, lr, beta1, beta2, adamW, taken + 1);
                state.RefreshAfterUpdate();
            }
            state.ZeroGradients();
        }
        GlobalSteps++;
        MicroSteps++;
        if (live is { PublishesOnStep: true }) live.Publish(GlobalSteps);
    }

    // ------------------------------------------------------------------ memory and metrics

    /// <summary>This rank's model-state bytes, from the engine's buffers (parameters only when frozen).</summary>
    public MemoryReport Memory => new(state.ParameterBytes, state.GradientBytes, optimizer?.Bytes ?? 0, state.PersistentBytes, state.PeakGatheredBytes);

    /// <summary>Restarts the peak-gathered counter (stage 3) from what is gathered now.</summary>
    public void ResetPeakMemory() => state.ResetPeak();

    /// <summary>Metrics of the last step and memory, named for the metrics log (a frozen engine reports its parameter bytes only).</summary>
    public IReadOnlyDictionary<string, double> Metrics()
    {
        var m = Memory;
        var r = new Dictionary<string, double>
        {
            ["engine/comm_seconds"] = CommSeconds,
            ["memory/parameters_bytes"] = m.ParameterBytes,
            ["memory/persistent_parameters_bytes"] = m.PersistentParameterBytes,
            ["memory/peak_gathered_parameters_bytes"] = m.PeakGatheredParameterBytes,
        };
        if (!Trainable) return r;
        r["lr"] = LastLearningRate;
        r["grad_norm"] = LastGradNorm;
        r["engine/global_steps"] = GlobalSteps;
        r["engine/skipped_steps"] = SkippedSteps;
        r["memory/gradients_bytes"] = m.GradientBytes;
        r["memory/optimizer_bytes"] = m.OptimizerBytes;
        r["memory/model_states_bytes"] = m.ModelStateBytes;
        if (live is not null) r["engine/live_weights_skipped_publishes"] = live.SkippedPublishes;
        return r;
    }

    // ------------------------------------------------------------------ full weights and state

    /// <summary>
    /// Every parameter in full, as <paramref name="as"/> (a collective: all ranks call it and all get the weights). The
    /// fp32 masters are the truth when there are any, so fp32 output of a bf16 engine is exact.
    /// </summary>
    public List<KeyValuePair<string, Tensor>> GatherFullWeights(ScalarType @as = ScalarType.Float32)
    {
        using var noGrad = Torch.NoGrad();
        Tensor full;
        using (var scope = Torch.NewScope())
        {
            var source = optimizer?.Master ?? state.OwnedParameters();
            full = Torch.Empty([Layout.Total], source.Dtype, state.Device);
            state.GatherFullInto(source, full);
            full.MoveToOuter();
        }
        var r = Layout.Params.Select(p => new KeyValuePair<string, Tensor>(p.Name, full.Narrow(0, p.Offset, p.NumEl).View(p.Shape).To(@as).Clone())).ToList();
        full.Dispose();
        return r;
    }

    /// <summary>DeepSpeed's <c>save_16bit_model</c>: gathers the weights in the training dtype and rank 0 writes them (HF names) with <paramref name="writer"/>.</summary>
    public void Save16BitModel(string dir, IWeightWriter? writer = null)
    {
        using var scope = Torch.NewScope();
        var w = GatherFullWeights(state.Dtype);
        if (Rank == 0) (writer ?? new SafetensorsWeightWriter()).Write(dir, w);
        comm.Barrier();
    }

    /// <summary>
    /// Test seam (one process only): parameter <paramref name="j"/>'s gradient as accumulated since the last optimizer
    /// step (a view of the gradient buffer, shaped like the parameter, in the training dtype).
    /// </summary>
    internal Tensor LocalGradient(int j)
    {
        if (WorldSize != 1) throw new InvalidOperationException("LocalGradient reads a whole gradient buffer: one process only");
        return state.LocalGradient(j);
    }

    /// <summary>The partitioned parameters and gradients (the checkpoint's model-states surface).</summary>
    internal PartitionedState State => state;

    /// <summary>The owned optimizer state (the checkpoint's optimizer surface); null when frozen.</summary>
    internal AdamWState? Optimizer => optimizer;

    /// <summary>The collectives.</summary>
    internal Communicator Comm => comm;

    /// <summary>Counters saved with checkpoints.</summary>
    internal (long Global, long Micro, long Skipped) Counters
    {
        get => (GlobalSteps, MicroSteps, SkippedSteps);
        set => (GlobalSteps, MicroSteps, SkippedSteps) = value;
    }

    /// <summary>After a checkpoint replaced the state: refresh the published live weights (a collective at stage 3).</summary>
    internal void StateReplaced() => live?.Publish(GlobalSteps, force: true);

    // ------------------------------------------------------------------ live weights

    /// <summary>
    /// Starts publishing the policy's full weights for a generator (see <see cref="LiveWeightsMode"/>); a collective at
    /// stage 3. Call once; <see cref="AcquireWeights"/> then hands out versions.
    /// </summary>
    public void EnableLiveWeights(LiveWeightsMode mode) => EnableLiveWeights(mode, snapshots: 2, publishOnStep: true);

    /// <summary>
    /// <see cref="EnableLiveWeights(LiveWeightsMode)"/> with <paramref name="snapshots"/> buffers in snapshot mode (one more than the
    /// versions readers may hold at once) and, when <paramref name="publishOnStep"/> is false, publishing only on
    /// <see cref="PublishWeights"/> (an asynchronous loop publishes once per step, not per optimizer step).
    /// </summary>
    public void EnableLiveWeights(LiveWeightsMode mode, int snapshots, bool publishOnStep)
    {
        if (live is not null) throw new InvalidOperationException("live weights are already enabled");
        live = new LiveWeights(state, mode, GlobalSteps, snapshots, publishOnStep);
    }

    /// <summary>Publishes the current weights as version <see cref="GlobalSteps"/> (a collective at stage 3); returns whether a buffer took them.</summary>
    public bool PublishWeights()
    {
        var l = live ?? throw new InvalidOperationException("call EnableLiveWeights first");
        var skipped = l.SkippedPublishes;
        l.Publish(GlobalSteps);
        return l.SkippedPublishes == skipped;
    }

    /// <summary>
    /// The newest published version of the full weights (training dtype, HF names, layout order), held until the lease
    /// is disposed. Thread-safe: a generator thread may acquire while the trainer steps.
    /// </summary>
    public WeightsLease AcquireWeights() => (live ?? throw new InvalidOperationException("call EnableLiveWeights first")).Acquire();

    /// <summary>Releases every buffer.</summary>
    public void Dispose()
    {
        live?.Dispose();
        runner.Dispose();
        optimizer?.Dispose();
        state.Dispose();
    }

    /// <summary>
    /// Writes a sharded checkpoint <c>&lt;dir&gt;/&lt;tag&gt;/</c> atomically (see <see cref="Checkpoint"/>); returns the tag.
    /// <paramref name="clientState"/> (DeepSpeed's <c>client_state</c>) runs on every rank with the directory being written:
    /// the files it adds (plain names, distinct per rank) are checksummed in the manifest and committed with the shards;
    /// read them back with <see cref="Checkpoint.ReadClientFile"/>.
    /// </summary>
    public string SaveCheckpoint(string dir, string? tag = null, Action<string>? clientState = null) => Checkpoint.Save(this, dir, tag, clientState);

    /// <summary>Loads <c>&lt;dir&gt;/&lt;tag&gt;</c> (default: the tag in <c>latest</c>) at any world size; returns the tag.</summary>
    public string LoadCheckpoint(string dir, string? tag = null) => Checkpoint.Load(this, dir, tag);
}
