using Rlhf.Core.Schedules;
using Rlhf.Settings;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Training;

/// <summary>
/// <c>training.lr_scheduler_type</c>, <c>warmup_steps</c> and <c>warmup_ratio</c> as the engine's learning-rate schedule, the
/// way HF Trainer's DeepSpeed integration does it: when <c>engine.scheduler</c> is unset the trainer builds its own schedule
/// over the run's optimizer steps and hands it to the engine as the client scheduler; a configured DeepSpeed scheduler wins.
/// </summary>
public static class TrainingSchedule
{
    /// <summary>HF <c>TrainingArguments.get_warmup_steps</c>: <c>warmup_steps</c> when positive, else <c>ceil(warmup_ratio · total)</c>.</summary>
    public static long WarmupSteps(TrainingSettings t, long totalSteps) =>
        t.WarmupSteps > 0 ? t.WarmupSteps : (long)Math.Ceiling(t.WarmupRatio * totalSteps);

    /// <summary>The schedule of <paramref name="t"/> at base rate <paramref name="lr"/> over <paramref name="totalSteps"/> optimizer steps.</summary>
    public static HfSchedule For(TrainingSettings t, double lr, long totalSteps) => new(t.LrSchedulerType switch
    {
        LrSchedulerType.Linear => HfScheduleKind.Linear,
        LrSchedulerType.Cosine => HfScheduleKind.Cosine,
        LrSchedulerType.Constant => HfScheduleKind.Constant,
        LrSchedulerType.ConstantWithWarmup => HfScheduleKind.ConstantWithWarmup,
        var k => throw new ArgumentException($"training.lr_scheduler_type: {k} is not a schedule this trainer knows"),
    }, lr, WarmupSteps(t, totalSteps), totalSteps);

    /// <summary>Gives <paramref name="engine"/> the training section's schedule over <paramref name="totalSteps"/> optimizer steps, unless its config names a scheduler.</summary>
    public static void Apply(ZeroEngine engine, TrainingSettings t, long totalSteps)
    {
        if (engine.Settings.Scheduler is not null) return;
        engine.UseClientScheduler(For(t, DeepSpeedConfig.AdamW(engine.Settings).Lr, totalSteps));
    }
}
