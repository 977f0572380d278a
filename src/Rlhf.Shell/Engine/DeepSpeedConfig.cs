using Rlhf.Core.Schedules;
using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Engine;

/// <summary>
/// How the engine reads the generated <see cref="DeepSpeedSettings"/> (configs/schema/deepspeed.schema.json): the one
/// mapping from its sections onto the engine's stage, optimizer hyperparameters and Core's learning-rate schedules,
/// and the loader of a DeepSpeed JSON file. Defaults live in the schema only; values the schema leaves unset
/// (<c>"auto"</c>) must have been filled by the config resolver before an engine reads them.
/// </summary>
public static class DeepSpeedConfig
{
    /// <summary>
    /// Loads a DeepSpeed JSON file (or a YAML engine section) through the generated binder and the config resolver's
    /// engine checks and batch rule for <paramref name="worldSize"/>; every error names file, line, column and key.
    /// </summary>
    public static DeepSpeedSettings Load(string path, long worldSize) =>
        OrThrow(ConfigLoader.LoadSection(path, (node, ctx, at) => BindResolved(node, ctx, at, worldSize)));

    /// <summary>
    /// An engine section from YAML (or JSON) text, bound and resolved as <see cref="Load"/> does — the convenient way to
    /// build engine settings in code: <c>DeepSpeedConfig.Parse("zero_optimization: {stage: 3}", worldSize: 1)</c>.
    /// </summary>
    public static DeepSpeedSettings Parse(string yaml, long worldSize, string display = "<engine>")
    {
        var sources = new NodeSources(display);
        var errors = new List<ConfigError>();
        var root = new Composer(sources, errors).Parse(yaml, display);
        if (errors.Count > 0) throw new ArgumentException($"invalid engine settings:\n{ConfigLoader.Format(errors)}");
        return OrThrow(BindResolved(root, new BindContext(sources), "", worldSize));
    }

    private static LanguageExt.Validation<ConfigError, DeepSpeedSettings> BindResolved(YamlDotNet.RepresentationModel.YamlNode? node, BindContext ctx, string at, long worldSize) =>
        DeepSpeedSettings.Bind(node, ctx, at).Match(
            ds => ConfigResolver.ResolveEngine(ds, ctx, at, worldSize),
            errors => LanguageExt.Validation<ConfigError, DeepSpeedSettings>.Fail(errors));

    private static DeepSpeedSettings OrThrow(LanguageExt.Validation<ConfigError, DeepSpeedSettings> v) =>
        v.Match(ds => ds, errors => throw new ArgumentException($"invalid engine settings:\n{ConfigLoader.Format(errors)}"));

    /// <summary><c>zero_optimization.stage</c>.</summary>
    public static ZeroStage Stage(DeepSpeedSettings ds) => ds.ZeroOptimization.Stage switch
    {
        0 => ZeroStage.Disabled,
        1 => ZeroStage.OptimizerStates,
        2 => ZeroStage.Gradients,
        3 => ZeroStage.Parameters,
        var s => throw new ArgumentException($"zero_optimization.stage must be 0, 1, 2 or 3 (got {s})"),
    };

    /// <summary>
    /// The resolved batch sizes (train_batch_size, micro-batch per GPU, accumulation steps); throws when one is still
    /// unset (run the config resolver or <see cref="Load"/>) or when they do not multiply out at <paramref name="worldSize"/>.
    /// </summary>
    public static (int TrainBatchSize, int MicroBatchPerGpu, int GradientAccumulationSteps) Batch(DeepSpeedSettings ds, int worldSize)
    {
        if (ds.TrainBatchSize is not long tbs || ds.TrainMicroBatchSizePerGpu is not long mb || ds.GradientAccumulationSteps is not long gas)
            throw new ArgumentException(
                "engine batch sizes are not resolved (train_batch_size, train_micro_batch_size_per_gpu and gradient_accumulation_steps must all be set; " +
                $"got {Show(ds.TrainBatchSize)}, {Show(ds.TrainMicroBatchSizePerGpu)}, {Show(ds.GradientAccumulationSteps)}): load the config through the config resolver");
        if (BatchRule.Resolve(tbs, mb, gas, worldSize, out var error) is null) throw new ArgumentException($"batch sizes do not fit: {error}");
        return (checked((int)tbs), checked((int)mb), checked((int)gas));
    }

    private static string Show(long? v) => v?.ToString() ?? "auto";

    /// <summary>The <c>optimizer</c> section as AdamW hyperparameters; every value must be set (the resolver fills <c>auto</c> ones from <c>training.*</c>).</summary>
    public static AdamW AdamW(DeepSpeedSettings ds)
    {
        var o = ds.Optimizer ?? throw new ArgumentException("engine.optimizer is unset: set it, or let the config resolver fill it from training.*");
        if (o.Type == OptimizerType.SGD) throw new ArgumentException("optimizer.type SGD is not supported (AdamW, Adam)");
        var p = o.Params;
        if (o.Type == OptimizerType.Adam && !p.AdamWMode)
            throw new ArgumentException("optimizer.params.adam_w_mode false (Adam with L2 regularisation) is not supported; use AdamW");
        double Need(double? v, string key) => v ?? throw new ArgumentException($"optimizer.params.{key} is unset (auto): set it, or let the config resolver fill it from training.*");
        if (p.Betas is not { Count: 2 } b) throw new ArgumentException($"optimizer.params.betas must be two numbers [beta1, beta2] (got {p.Betas?.Count ?? 0})");
        return new AdamW(Need(p.Lr, "lr"), b[0], b[1], Need(p.Eps, "eps"), Need(p.WeightDecay, "weight_decay"));
    }

    /// <summary>
    /// The <c>scheduler</c> section as a Core schedule (null: constant <paramref name="optimizerLr"/>); throws for a
    /// schedule missing what DeepSpeed requires, so a bad section fails at engine start, not mid-run.
    /// </summary>
    public static LrSchedule Schedule(SchedulerSettings? s, double optimizerLr)
    {
        if (s is null) return new ConstantLr(optimizerLr);
        var p = s.Params;
        var linear = p.WarmupType == WarmupCurve.Linear;
        long Total(string type) => p.TotalNumSteps ?? throw new ArgumentException($"{type} needs scheduler.params.total_num_steps");
        switch (s.Type)
        {
            case SchedulerType.WarmupLR:
                return new WarmupLR(p.WarmupMinLr, p.WarmupMaxLr, p.WarmupNumSteps, linear);
            case SchedulerType.WarmupDecayLR:
                return new WarmupDecayLR(p.WarmupMinLr, p.WarmupMaxLr, p.WarmupNumSteps, Total("WarmupDecayLR"), linear);
            case SchedulerType.WarmupCosineLR:
                return new WarmupCosineLR(optimizerLr, p.WarmupNumSteps, Total("WarmupCosineLR"), p.WarmupMinRatio, p.CosMinRatio, linear);
            case SchedulerType.OneCycle:
            {
                var min = p.CycleMinLr ?? throw new ArgumentException("OneCycle needs scheduler.params.cycle_min_lr");
                var max = p.CycleMaxLr ?? throw new ArgumentException("OneCycle needs scheduler.params.cycle_max_lr");
                var first = p.CycleFirstStepSize;
                var second = p.CycleSecondStepSize ?? first; // DeepSpeed: unset = the first half's size
                if (first < 1 || second < 1)
                    throw new ArgumentException($"OneCycle cycle_first_step_size and cycle_second_step_size must be at least 1 (got {first}, {second})");
                return new OneCycle(min, max, first, second, p.DecayStepSize, p.DecayLrRate, p.CycleMomentum, p.CycleMinMom, p.CycleMaxMom, p.DecayMomRate);
            }
            case SchedulerType.LRRangeTest:
                if (p.LrRangeTestStepSize < 1) throw new ArgumentException($"scheduler.params.lr_range_test_step_size must be at least 1 (got {p.LrRangeTestStepSize})");
                return new LRRangeTest(p.LrRangeTestMinLr, p.LrRangeTestStepSize, p.LrRangeTestStepRate, p.LrRangeTestStaircase);
            default:
                throw new ArgumentException($"scheduler.type {s.Type} is not supported (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest)");
        }
    }
}
