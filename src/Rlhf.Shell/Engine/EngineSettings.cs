using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Engine;

/// <summary>ZeRO stage: what is partitioned across data-parallel ranks (DeepSpeed <c>zero_optimization.stage</c>).</summary>
public enum ZeroStage
{
    /// <summary>Everything replicated; gradients all-reduced.</summary>
    Disabled = 0,
    /// <summary>Optimizer state (fp32 masters, Adam moments) partitioned.</summary>
    OptimizerStates = 1,
    /// <summary>… plus gradients.</summary>
    Gradients = 2,
    /// <summary>… plus parameters (gathered per layer just before use).</summary>
    Parameters = 3,
}

/// <summary>DeepSpeed's <c>zero_optimization</c> section (defaults of DeepSpeed v0.16).</summary>
public sealed record ZeroSettings
{
    /// <summary><c>stage</c> (0).</summary>
    public ZeroStage Stage { get; init; } = ZeroStage.Disabled;
    /// <summary><c>offload_optimizer.device</c>: "none" or "cpu" (fp32 masters and moments on the CPU).</summary>
    public string OffloadOptimizerDevice { get; init; } = "none";
    /// <summary><c>offload_optimizer.pin_memory</c> (accepted; CPU tensors here are pageable).</summary>
    public bool OffloadOptimizerPinMemory { get; init; }
    /// <summary><c>offload_param.device</c> (stage 3 only; "none" is the only value implemented).</summary>
    public string OffloadParamDevice { get; init; } = "none";
    /// <summary><c>contiguous_gradients</c> (true; gradients always live in flat buffers here).</summary>
    public bool ContiguousGradients { get; init; } = true;
    /// <summary><c>reduce_scatter</c> (true).</summary>
    public bool ReduceScatter { get; init; } = true;
    /// <summary><c>reduce_bucket_size</c> in elements (5e8): the largest single gradient all-reduce.</summary>
    public long ReduceBucketSize { get; init; } = 500_000_000;
    /// <summary><c>allgather_partitions</c> (true).</summary>
    public bool AllgatherPartitions { get; init; } = true;
    /// <summary><c>allgather_bucket_size</c> in elements (5e8).</summary>
    public long AllgatherBucketSize { get; init; } = 500_000_000;
    /// <summary><c>overlap_comm</c> (default true only for stage 3; collectives here are issued layer by layer).</summary>
    public bool? OverlapComm { get; init; }
    /// <summary><c>sub_group_size</c> (1e9).</summary>
    public long SubGroupSize { get; init; } = 1_000_000_000;
    /// <summary><c>stage3_prefetch_bucket_size</c> (5e7).</summary>
    public long Stage3PrefetchBucketSize { get; init; } = 50_000_000;
    /// <summary><c>stage3_param_persistence_threshold</c> (1e5): parameters with fewer elements stay gathered.</summary>
    public long Stage3ParamPersistenceThreshold { get; init; } = 100_000;
    /// <summary><c>stage3_max_live_parameters</c> (1e9).</summary>
    public long Stage3MaxLiveParameters { get; init; } = 1_000_000_000;
    /// <summary><c>stage3_max_reuse_distance</c> (1e9).</summary>
    public long Stage3MaxReuseDistance { get; init; } = 1_000_000_000;
    /// <summary><c>stage3_gather_16bit_weights_on_model_save</c> (false).</summary>
    public bool Stage3Gather16BitWeightsOnModelSave { get; init; }

    /// <summary>True when optimizer state lives on the CPU.</summary>
    public bool OffloadOptimizer => OffloadOptimizerDevice == "cpu";
}

/// <summary>DeepSpeed's <c>optimizer</c> section (AdamW; <c>Adam</c> with <c>adam_w_mode</c> is the same update).</summary>
public sealed record OptimizerSettings
{
    /// <summary><c>type</c>: AdamW (Adam is accepted and treated as AdamW, DeepSpeed's default <c>adam_w_mode</c>).</summary>
    public string Type { get; init; } = "AdamW";
    /// <summary><c>params.lr</c> (1e-3).</summary>
    public double Lr { get; init; } = 1e-3;
    /// <summary><c>params.betas</c> ([0.9, 0.999]).</summary>
    public (double Beta1, double Beta2) Betas { get; init; } = (0.9, 0.999);
    /// <summary><c>params.eps</c> (1e-8).</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary><c>params.weight_decay</c> (0.01, torch.optim.AdamW's default).</summary>
    public double WeightDecay { get; init; } = 0.01;
}

/// <summary>DeepSpeed's <c>scheduler</c> section: a type name, its numeric params (booleans as 1/0) and <c>warmup_type</c> ("log" or "linear"); see <see cref="LrSchedule"/>.</summary>
public sealed record SchedulerSettings(string Type, IReadOnlyDictionary<string, double> Params, string WarmupType = "log");

/// <summary>The batch sizes after DeepSpeed's rule: <c>train_batch_size = micro × gas × world_size</c>.</summary>
public sealed record BatchSizes(int TrainBatchSize, int MicroBatchPerGpu, int GradientAccumulationSteps);

/// <summary>The engine section of a config, with DeepSpeed's keys and defaults.</summary>
public sealed record EngineSettings
{
    /// <summary><c>train_batch_size</c> (null: derive).</summary>
    public int? TrainBatchSize { get; init; }
    /// <summary><c>train_micro_batch_size_per_gpu</c> (null: derive).</summary>
    public int? TrainMicroBatchSizePerGpu { get; init; }
    /// <summary><c>gradient_accumulation_steps</c> (null: derive).</summary>
    public int? GradientAccumulationSteps { get; init; }
    /// <summary><c>gradient_clipping</c>: max global L2 norm; 0 is off.</summary>
    public double GradientClipping { get; init; }
    /// <summary><c>bf16.enabled</c>: bf16 parameters and gradients, fp32 masters.</summary>
    public bool Bf16 { get; init; }
    /// <summary><c>fp16.enabled</c> (not implemented: rejected at engine start).</summary>
    public bool Fp16 { get; init; }
    /// <summary><c>zero_optimization</c>.</summary>
    public ZeroSettings Zero { get; init; } = new();
    /// <summary><c>optimizer</c>.</summary>
    public OptimizerSettings Optimizer { get; init; } = new();
    /// <summary><c>scheduler</c> (null: constant learning rate).</summary>
    public SchedulerSettings? Scheduler { get; init; }
    /// <summary>Rlhf's <c>disable_gradient_checkpointing</c>: keep every activation instead of recomputing per layer (stage 3 always recomputes).</summary>
    public bool DisableGradientCheckpointing { get; init; }
    /// <summary>Process-group timeout in seconds (<c>timeout</c>; torch's default 1800).</summary>
    public double TimeoutSeconds { get; init; } = 1800;
    /// <summary>Seed of parameter initialisation (rank 0's weights are broadcast anyway).</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Applies DeepSpeed's batch-size rule for <paramref name="worldSize"/> (<see cref="BatchRule"/>): missing values are derived; given ones must agree; the error names all four numbers.</summary>
    public BatchSizes ResolveBatch(int worldSize)
    {
        var r = BatchRule.Resolve(TrainBatchSize, TrainMicroBatchSizePerGpu, GradientAccumulationSteps, worldSize, out var error)
            ?? throw new ArgumentException($"batch sizes do not fit: {error}");
        return new BatchSizes(checked((int)r.TrainBatchSize), checked((int)r.Micro), checked((int)r.Gas));
    }

    /// <summary>
    /// The engine's view of a config's engine section (generated from <c>configs/schema/deepspeed.schema.json</c>, so a
    /// DeepSpeed JSON, a YAML engine section and <c>deepspeed_config: ds.json</c> all arrive here already validated) and
    /// of its <c>distributed</c> section. Throws for values the schema allows but this engine does not implement.
    /// </summary>
    public static EngineSettings FromConfig(DeepSpeedSettings ds, DistributedSettings? distributed = null, bool disableGradientCheckpointing = false, ulong seed = 42)
    {
        var z = ds.ZeroOptimization;
        if (z.OffloadOptimizer.Device == OffloadDevice.Nvme || z.OffloadParam.Device == OffloadDevice.Nvme)
            throw new ArgumentException("zero_optimization offload to nvme is not supported (use none or cpu)");
        var optimizer = new OptimizerSettings();
        if (ds.Optimizer is { } o)
        {
            if (o.Type == OptimizerType.SGD) throw new ArgumentException("optimizer.type SGD is not supported (AdamW, Adam)");
            var p = o.Params;
            optimizer = new OptimizerSettings
            {
                Type = OptimizerTypeYaml.ToYaml(o.Type),
                Lr = p.Lr ?? optimizer.Lr,
                Betas = p.Betas is { Count: 2 } b ? (b[0], b[1]) : optimizer.Betas,
                Eps = p.Eps ?? optimizer.Eps,
                WeightDecay = p.WeightDecay ?? optimizer.WeightDecay,
            };
        }
        SchedulerSettings? scheduler = null;
        if (ds.Scheduler is { } sc)
        {
            var sp = sc.Params;
            var ps = new Dictionary<string, double>
            {
                ["warmup_min_lr"] = sp.WarmupMinLr, ["warmup_max_lr"] = sp.WarmupMaxLr, ["warmup_num_steps"] = sp.WarmupNumSteps,
                ["warmup_min_ratio"] = sp.WarmupMinRatio, ["cos_min_ratio"] = sp.CosMinRatio,
            };
            if (sp.TotalNumSteps is long total) ps["total_num_steps"] = total;
            // OneCycle and LRRangeTest (booleans as 1/0; unset optional keys stay absent, meaning DeepSpeed's None).
            if (sp.CycleMinLr is double cycleMin) ps["cycle_min_lr"] = cycleMin;
            if (sp.CycleMaxLr is double cycleMax) ps["cycle_max_lr"] = cycleMax;
            ps["decay_lr_rate"] = sp.DecayLrRate;
            ps["cycle_first_step_size"] = sp.CycleFirstStepSize;
            if (sp.CycleSecondStepSize is long second) ps["cycle_second_step_size"] = second;
            ps["cycle_first_stair_count"] = sp.CycleFirstStairCount;
            if (sp.CycleSecondStairCount is long secondStairs) ps["cycle_second_stair_count"] = secondStairs;
            ps["decay_step_size"] = sp.DecayStepSize;
            ps["cycle_momentum"] = sp.CycleMomentum ? 1 : 0;
            ps["cycle_min_mom"] = sp.CycleMinMom;
            ps["cycle_max_mom"] = sp.CycleMaxMom;
            ps["decay_mom_rate"] = sp.DecayMomRate;
            ps["lr_range_test_min_lr"] = sp.LrRangeTestMinLr;
            ps["lr_range_test_step_size"] = sp.LrRangeTestStepSize;
            ps["lr_range_test_step_rate"] = sp.LrRangeTestStepRate;
            ps["lr_range_test_staircase"] = sp.LrRangeTestStaircase ? 1 : 0;
            scheduler = new SchedulerSettings(SchedulerTypeYaml.ToYaml(sc.Type), ps, WarmupCurveYaml.ToYaml(sp.WarmupType));
            _ = LrSchedule.From(scheduler, optimizer.Lr); // unsupported schedule names fail here, not mid-run
        }
        return new EngineSettings
        {
            TrainBatchSize = ToInt(ds.TrainBatchSize),
            TrainMicroBatchSizePerGpu = ToInt(ds.TrainMicroBatchSizePerGpu),
            GradientAccumulationSteps = ToInt(ds.GradientAccumulationSteps),
            GradientClipping = ds.GradientClipping,
            Bf16 = ds.Bf16.Enabled,
            Fp16 = ds.Fp16.Enabled,
            Zero = new ZeroSettings
            {
                Stage = (ZeroStage)z.Stage,
                OffloadOptimizerDevice = OffloadDeviceYaml.ToYaml(z.OffloadOptimizer.Device),
                OffloadOptimizerPinMemory = z.OffloadOptimizer.PinMemory,
                OffloadParamDevice = OffloadDeviceYaml.ToYaml(z.OffloadParam.Device),
                ContiguousGradients = z.ContiguousGradients,
                ReduceScatter = z.ReduceScatter,
                ReduceBucketSize = z.ReduceBucketSize,
                AllgatherPartitions = z.AllgatherPartitions,
                AllgatherBucketSize = z.AllgatherBucketSize,
                OverlapComm = z.OverlapComm,
                SubGroupSize = z.SubGroupSize,
                Stage3PrefetchBucketSize = z.Stage3PrefetchBucketSize,
                Stage3ParamPersistenceThreshold = z.Stage3ParamPersistenceThreshold,
                Stage3MaxLiveParameters = z.Stage3MaxLiveParameters,
                Stage3MaxReuseDistance = z.Stage3MaxReuseDistance,
                Stage3Gather16BitWeightsOnModelSave = z.Stage3Gather16bitWeightsOnModelSave,
            },
            Optimizer = optimizer,
            Scheduler = scheduler,
            DisableGradientCheckpointing = disableGradientCheckpointing,
            TimeoutSeconds = distributed?.TimeoutSeconds ?? 1800,
            Seed = seed,
        };
    }

    /// <summary>Loads a DeepSpeed JSON file (or a YAML engine section) through the config binder; errors name file, line, column and key.</summary>
    public static EngineSettings Load(string path, DistributedSettings? distributed = null) =>
        ConfigLoader.LoadSection(path, DeepSpeedSettings.Bind).Match(
            ds => FromConfig(ds, distributed),
            errors => throw new ArgumentException($"invalid engine settings:\n{ConfigLoader.Format(errors)}"));

    private static int? ToInt(long? v) => v is long x ? checked((int)x) : null;
}
