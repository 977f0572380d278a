namespace Rlhf.Core.Schedules;

/// <summary>
/// A learning-rate schedule as DeepSpeed steps it (deepspeed/runtime/lr_schedules.py, v0.16): stepped once per
/// optimizer step after the update. <see cref="LearningRate"/> is the rate the optimizer step number
/// <c>completedSteps + 1</c> uses: DeepSpeed runs the first update with the rate set at construction
/// (<see cref="Initial"/>) and step k ≥ 2 with the schedule at iteration k − 2 (its <c>last_batch_iteration</c>).
/// Pure: a function of the step count and the record's parameters.
/// </summary>
public abstract record LrSchedule
{
    /// <summary>The rate DeepSpeed sets at construction, used by the first optimizer step.</summary>
    protected abstract double Initial { get; }

    /// <summary>The rate at DeepSpeed iteration <paramref name="iteration"/> (<c>last_batch_iteration</c>, from 0).</summary>
    public abstract double AtIteration(long iteration);

    /// <summary>The learning rate of the next optimizer step after <paramref name="completedSteps"/> steps.</summary>
    public double LearningRate(long completedSteps) => completedSteps <= 0 ? Initial : AtIteration(completedSteps - 1);

    /// <summary>
    /// Adam's (beta1, beta2) for the next optimizer step after <paramref name="completedSteps"/> steps, or null when the
    /// schedule leaves the optimizer's betas alone (every schedule but <see cref="OneCycle"/> with cycle momentum).
    /// </summary>
    public virtual (double Beta1, double Beta2)? Betas(long completedSteps) => null;

    /// <summary>
    /// The warm-up fraction at <paramref name="iteration"/> of a <paramref name="warmupNumSteps"/>-step warm-up
    /// (DeepSpeed clamps the step count to at least 2): <c>log(it + 1) / log(warmup)</c>, or <c>it / warmup</c> when
    /// <paramref name="linear"/>.
    /// </summary>
    public static double WarmupGamma(long iteration, long warmupNumSteps, bool linear)
    {
        var warmup = Math.Max(2L, warmupNumSteps);
        return linear ? (double)iteration / warmup : Math.Log(iteration + 1) / Math.Log(warmup);
    }
}

/// <summary>No schedule: the optimizer's own rate at every step.</summary>
/// <param name="Lr">The rate.</param>
public sealed record ConstantLr(double Lr) : LrSchedule
{
    /// <inheritdoc />
    protected override double Initial => Lr;

    /// <inheritdoc />
    public override double AtIteration(long iteration) => Lr;
}

/// <summary>
/// DeepSpeed's <c>WarmupLR</c>: <c>min + (max − min) · γ(it)</c> during warm-up (<see cref="LrSchedule.WarmupGamma"/>),
/// then <c>max</c>; the first step uses <c>min</c>.
/// </summary>
/// <param name="MinLr"><c>warmup_min_lr</c>.</param>
/// <param name="MaxLr"><c>warmup_max_lr</c>.</param>
/// <param name="WarmupNumSteps"><c>warmup_num_steps</c> (at least 2 is used).</param>
/// <param name="LinearWarmup"><c>warmup_type: linear</c> (else log).</param>
public sealed record WarmupLR(double MinLr, double MaxLr, long WarmupNumSteps, bool LinearWarmup) : LrSchedule
{
    /// <inheritdoc />
    protected override double Initial => MinLr;

    /// <inheritdoc />
    public override double AtIteration(long iteration) =>
        MinLr + (MaxLr - MinLr) * (iteration < Math.Max(2L, WarmupNumSteps) ? WarmupGamma(iteration, WarmupNumSteps, LinearWarmup) : 1.0);
}

/// <summary>
/// DeepSpeed's <c>WarmupDecayLR</c>: <see cref="WarmupLR"/>'s warm-up, then a linear decay of the fraction
/// <c>max(0, (total − it) / max(1, total − warmup))</c>, reaching <c>min</c> at <c>total_num_steps</c>.
/// </summary>
/// <param name="MinLr"><c>warmup_min_lr</c>.</param>
/// <param name="MaxLr"><c>warmup_max_lr</c>.</param>
/// <param name="WarmupNumSteps"><c>warmup_num_steps</c> (at least 2 is used).</param>
/// <param name="TotalNumSteps"><c>total_num_steps</c>.</param>
/// <param name="LinearWarmup"><c>warmup_type: linear</c> (else log).</param>
public sealed record WarmupDecayLR(double MinLr, double MaxLr, long WarmupNumSteps, long TotalNumSteps, bool LinearWarmup) : LrSchedule
{
    /// <inheritdoc />
    protected override double Initial => MinLr;

    /// <inheritdoc />
    public override double AtIteration(long iteration)
    {
        var warmup = Math.Max(2L, WarmupNumSteps);
        var gamma = iteration < warmup ? WarmupGamma(iteration, WarmupNumSteps, LinearWarmup)
            : Math.Max(0.0, (double)(TotalNumSteps - iteration) / Math.Max(1.0, TotalNumSteps - warmup));
        return MinLr + (MaxLr - MinLr) * gamma;
    }
}

/// <summary>
/// DeepSpeed's <c>WarmupCosineLR</c>: a ratio of the optimizer's rate, warming from <c>warmup_min_ratio</c> to 1, then
/// <c>max(0, cos_min + (1 − cos_min) · (1 + cos(π · (it − warmup + 1) / (total − warmup))) / 2)</c>. The first step
/// uses the optimizer's rate, which DeepSpeed leaves untouched at construction.
/// </summary>
/// <param name="OptimizerLr">The optimizer's <c>lr</c> (the peak).</param>
/// <param name="WarmupNumSteps"><c>warmup_num_steps</c> (at least 2 is used).</param>
/// <param name="TotalNumSteps"><c>total_num_steps</c>.</param>
/// <param name="WarmupMinRatio"><c>warmup_min_ratio</c>.</param>
/// <param name="CosMinRatio"><c>cos_min_ratio</c>.</param>
/// <param name="LinearWarmup"><c>warmup_type: linear</c> (else log).</param>
public sealed record WarmupCosineLR(double OptimizerLr, long WarmupNumSteps, long TotalNumSteps, double WarmupMinRatio, double CosMinRatio, bool LinearWarmup) : LrSchedule
{
    /// <inheritdoc />
    protected override double Initial => OptimizerLr;

    /// <inheritdoc />
    public override double AtIteration(long iteration)
    {
        var warmup = Math.Max(2L, WarmupNumSteps);
        double ratio;
        if (iteration < warmup) ratio = WarmupMinRatio + WarmupGamma(iteration, WarmupNumSteps, LinearWarmup) * (1.0 - WarmupMinRatio);
        else
        {
            var real = iteration - warmup + 1;
            var span = TotalNumSteps - warmup;
            ratio = Math.Max(0.0, CosMinRatio + (1.0 - CosMinRatio) * (1 + Math.Cos(Math.PI * real / span)) / 2);
        }
        return OptimizerLr * ratio;
    }
}

/// <summary>
/// DeepSpeed's <c>LRRangeTest</c>: <c>lr = min · (1 + rate · interval)</c> with <c>interval = (it + 1) / step_size</c>,
/// floored for the staircase; the first step uses <c>min</c>.
/// </summary>
/// <param name="MinLr"><c>lr_range_test_min_lr</c>.</param>
/// <param name="StepSize"><c>lr_range_test_step_size</c> (at least 1).</param>
/// <param name="StepRate"><c>lr_range_test_step_rate</c>.</param>
/// <param name="Staircase"><c>lr_range_test_staircase</c>.</param>
public sealed record LRRangeTest(double MinLr, long StepSize, double StepRate, bool Staircase) : LrSchedule
{
    /// <inheritdoc />
    protected override double Initial => MinLr;

    /// <inheritdoc />
    public override double AtIteration(long iteration)
    {
        if (StepSize < 1) throw new ArgumentException($"LRRangeTest step size must be at least 1 (got {StepSize})");
        var interval = (double)(iteration + 1) / StepSize;
        return MinLr * (1 + StepRate * (Staircase ? Math.Floor(interval) : interval));
    }
}

/// <summary>The Hugging Face schedules a trainer's <c>lr_scheduler_type</c> names (transformers <c>SchedulerType</c>).</summary>
public enum HfScheduleKind
{
    /// <summary><c>linear</c>: warm-up, then linear decay to 0 at the last step.</summary>
    Linear,
    /// <summary><c>cosine</c>: warm-up, then half a cosine down to 0.</summary>
    Cosine,
    /// <summary><c>constant</c>: the base rate throughout (no warm-up).</summary>
    Constant,
    /// <summary><c>constant_with_warmup</c>: warm-up, then the base rate.</summary>
    ConstantWithWarmup,
}

/// <summary>
/// A Hugging Face Trainer schedule (transformers <c>optimization.py</c>: <c>get_linear_schedule_with_warmup</c>,
/// <c>get_cosine_schedule_with_warmup</c> with <c>num_cycles</c> 0.5, <c>get_constant_schedule[_with_warmup]</c>), given
/// to the engine as DeepSpeed's client <c>lr_scheduler</c> when its config has no <c>scheduler</c> (what HF Trainer does):
/// a <c>LambdaLR</c> stepped after each optimizer step, so optimizer step k (from 0) runs at <c>lr · f(k)</c> with
/// <c>f(k) = k / max(1, warmup)</c> during warm-up and, after it, <c>progress = (k − warmup) / max(1, total − warmup)</c>:
/// linear <c>max(0, (total − k) / max(1, total − warmup))</c>, cosine <c>max(0, ½(1 + cos(π · progress)))</c>, constant 1.
/// </summary>
/// <param name="Kind">The schedule.</param>
/// <param name="Lr">The base rate.</param>
/// <param name="WarmupSteps">Warm-up optimizer steps (<c>warmup_steps</c>, or <c>ceil(warmup_ratio · total)</c>).</param>
/// <param name="TotalSteps">All optimizer steps of the run.</param>
public sealed record HfSchedule(HfScheduleKind Kind, double Lr, long WarmupSteps, long TotalSteps) : LrSchedule
{
    /// <summary>The multiplier at optimizer step <paramref name="k"/> (from 0).</summary>
    public double Factor(long k)
    {
        if (Kind == HfScheduleKind.Constant) return 1.0;
        if (k < WarmupSteps) return (double)k / Math.Max(1L, WarmupSteps);
        return Kind switch
        {
            HfScheduleKind.Linear => Math.Max(0.0, (double)(TotalSteps - k) / Math.Max(1L, TotalSteps - WarmupSteps)),
            HfScheduleKind.Cosine => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * ((double)(k - WarmupSteps) / Math.Max(1L, TotalSteps - WarmupSteps))))),
            _ => 1.0,
        };
    }

    /// <inheritdoc />
    protected override double Initial => Lr * Factor(0);

    /// <inheritdoc />
    public override double AtIteration(long iteration) => Lr * Factor(iteration + 1);
}
