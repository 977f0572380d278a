using System.Text.Json;

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

/// <summary>DeepSpeed's <c>scheduler</c> section: a type name, its numeric params and <c>warmup_type</c> ("log" or "linear"); see <see cref="LrSchedule"/>.</summary>
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

    /// <summary>Applies DeepSpeed's batch-size rule for <paramref name="worldSize"/>: any missing value is derived; given ones must agree; the error names all four numbers.</summary>
    public BatchSizes ResolveBatch(int worldSize)
    {
        int? tb = TrainBatchSize, mb = TrainMicroBatchSizePerGpu, gas = GradientAccumulationSteps;
        string Numbers() => $"train_batch_size={Show(tb)}, train_micro_batch_size_per_gpu={Show(mb)}, gradient_accumulation_steps={Show(gas)}, world_size={worldSize}";
        static string Show(int? v) => v?.ToString() ?? "auto";
        ArgumentException Bad(string why) => new($"batch sizes do not fit: {why} ({Numbers()})");
        if ((tb ?? 1) < 1 || (mb ?? 1) < 1 || (gas ?? 1) < 1 || worldSize < 1) throw Bad("every size must be positive");
        switch (tb, mb, gas)
        {
            case ({ } t, { } m, { } g):
                if (t != m * g * worldSize) throw Bad($"train_batch_size must equal micro × gas × world_size = {m * g * worldSize}");
                return new(t, m, g);
            case ({ } t, { } m, null):
                if (t % (m * worldSize) != 0) throw Bad("train_batch_size is not a multiple of micro × world_size");
                return new(t, m, t / (m * worldSize));
            case ({ } t, null, { } g):
                if (t % (g * worldSize) != 0) throw Bad("train_batch_size is not a multiple of gas × world_size");
                return new(t, t / (g * worldSize), g);
            case (null, { } m, { } g):
                return new(m * g * worldSize, m, g);
            case ({ } t, null, null):
                if (t % worldSize != 0) throw Bad("train_batch_size is not a multiple of world_size");
                return new(t, t / worldSize, 1);
            case (null, { } m, null):
                return new(m * worldSize, m, 1);
            default:
                throw Bad("give train_batch_size or train_micro_batch_size_per_gpu");
        }
    }

    /// <summary>Parses a DeepSpeed JSON config (the engine section); <c>"auto"</c> means "derive / default".</summary>
    public static EngineSettings FromDeepSpeedJson(string json)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = doc.RootElement;
        var s = new EngineSettings
        {
            TrainBatchSize = Int(root, "train_batch_size"),
            TrainMicroBatchSizePerGpu = Int(root, "train_micro_batch_size_per_gpu"),
            GradientAccumulationSteps = Int(root, "gradient_accumulation_steps"),
            GradientClipping = Num(root, "gradient_clipping") ?? 0,
            Bf16 = Obj(root, "bf16") is { } bf && (Bool(bf, "enabled") ?? false),
            Fp16 = Obj(root, "fp16") is { } fp && (Bool(fp, "enabled") ?? false),
            DisableGradientCheckpointing = Bool(root, "disable_gradient_checkpointing") ?? false,
            TimeoutSeconds = Num(root, "timeout") ?? 1800,
            Seed = (ulong)(Num(root, "seed") ?? 42),
        };
        if (Obj(root, "zero_optimization") is { } z)
        {
            var d = new ZeroSettings();
            var stage = Int(z, "stage") ?? 0;
            if (stage is < 0 or > 3) throw new ArgumentException($"zero_optimization.stage must be 0..3 (got {stage})");
            s = s with
            {
                Zero = new ZeroSettings
                {
                    Stage = (ZeroStage)stage,
                    OffloadOptimizerDevice = Obj(z, "offload_optimizer") is { } oo ? Str(oo, "device") ?? "none" : "none",
                    OffloadOptimizerPinMemory = Obj(z, "offload_optimizer") is { } oo2 && (Bool(oo2, "pin_memory") ?? false),
                    OffloadParamDevice = Obj(z, "offload_param") is { } op ? Str(op, "device") ?? "none" : "none",
                    ContiguousGradients = Bool(z, "contiguous_gradients") ?? d.ContiguousGradients,
                    ReduceScatter = Bool(z, "reduce_scatter") ?? d.ReduceScatter,
                    ReduceBucketSize = Long(z, "reduce_bucket_size") ?? d.ReduceBucketSize,
                    AllgatherPartitions = Bool(z, "allgather_partitions") ?? d.AllgatherPartitions,
                    AllgatherBucketSize = Long(z, "allgather_bucket_size") ?? d.AllgatherBucketSize,
                    OverlapComm = Bool(z, "overlap_comm"),
                    SubGroupSize = Long(z, "sub_group_size") ?? d.SubGroupSize,
                    Stage3PrefetchBucketSize = Long(z, "stage3_prefetch_bucket_size") ?? d.Stage3PrefetchBucketSize,
                    Stage3ParamPersistenceThreshold = Long(z, "stage3_param_persistence_threshold") ?? d.Stage3ParamPersistenceThreshold,
                    Stage3MaxLiveParameters = Long(z, "stage3_max_live_parameters") ?? d.Stage3MaxLiveParameters,
                    Stage3MaxReuseDistance = Long(z, "stage3_max_reuse_distance") ?? d.Stage3MaxReuseDistance,
                    Stage3Gather16BitWeightsOnModelSave = Bool(z, "stage3_gather_16bit_weights_on_model_save") ?? Bool(z, "stage3_gather_fp16_weights_on_model_save") ?? false,
                },
            };
            if (s.Zero.OffloadOptimizerDevice is not ("none" or "cpu"))
                throw new ArgumentException($"zero_optimization.offload_optimizer.device must be none or cpu (got {s.Zero.OffloadOptimizerDevice}; nvme is not supported)");
        }
        if (Obj(root, "optimizer") is { } o)
        {
            var p = Obj(o, "params");
            var d = new OptimizerSettings();
            var betas = p is { } pp && pp.TryGetProperty("betas", out var b) && b.ValueKind == JsonValueKind.Array && b.GetArrayLength() == 2
                ? (b[0].GetDouble(), b[1].GetDouble()) : d.Betas;
            s = s with
            {
                Optimizer = new OptimizerSettings
                {
                    Type = Str(o, "type") ?? "AdamW",
                    Lr = p is { } p1 ? Num(p1, "lr") ?? d.Lr : d.Lr,
                    Betas = betas,
                    Eps = p is { } p2 ? Num(p2, "eps") ?? d.Eps : d.Eps,
                    WeightDecay = p is { } p3 ? Num(p3, "weight_decay") ?? d.WeightDecay : d.WeightDecay,
                },
            };
            if (s.Optimizer.Type.ToLowerInvariant() is not ("adamw" or "adam"))
                throw new ArgumentException($"optimizer.type {s.Optimizer.Type} is not supported (AdamW, Adam)");
        }
        if (Obj(root, "scheduler") is { } sc)
        {
            var ps = new Dictionary<string, double>();
            var warmupType = "log";
            if (Obj(sc, "params") is { } p)
                foreach (var e in p.EnumerateObject())
                {
                    if (e.Value.ValueKind == JsonValueKind.Number) ps[e.Name] = e.Value.GetDouble();
                    else if (e.Name == "warmup_type" && e.Value.ValueKind == JsonValueKind.String) warmupType = e.Value.GetString()!;
                    else if (e.Value.ValueKind == JsonValueKind.String && e.Value.GetString() != "auto") throw new ArgumentException($"scheduler.params.{e.Name} must be a number");
                }
            s = s with { Scheduler = new SchedulerSettings(Str(sc, "type") ?? throw new ArgumentException("scheduler.type is missing"), ps, warmupType) };
            _ = LrSchedule.From(s.Scheduler, s.Optimizer.Lr); // validate the name now
        }
        return s;
    }

    private static JsonElement? Obj(JsonElement e, string k) => e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Object ? v : null;

    private static bool IsAuto(JsonElement v) => v.ValueKind == JsonValueKind.String && v.GetString() == "auto" || v.ValueKind == JsonValueKind.Null;

    private static double? Num(JsonElement e, string k)
    {
        if (!e.TryGetProperty(k, out var v) || IsAuto(v)) return null;
        if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
        if (v.ValueKind == JsonValueKind.String && double.TryParse(v.GetString(), System.Globalization.CultureInfo.InvariantCulture, out var d)) return d;
        throw new ArgumentException($"{k} must be a number or \"auto\" (got {v})");
    }

    private static int? Int(JsonElement e, string k) => Num(e, k) is { } d ? checked((int)d) : null;

    private static long? Long(JsonElement e, string k) => Num(e, k) is { } d ? checked((long)d) : null;

    private static bool? Bool(JsonElement e, string k) =>
        e.TryGetProperty(k, out var v) && !IsAuto(v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ArgumentException($"{k} must be true or false (got {v})"),
        } : null;

    private static string? Str(JsonElement e, string k) => e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() != "auto" ? v.GetString() : null;
}
