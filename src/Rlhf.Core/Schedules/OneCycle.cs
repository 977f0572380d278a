namespace Rlhf.Core.Schedules;

/// <summary>
/// DeepSpeed's <c>OneCycle</c> (deepspeed/runtime/lr_schedules.py, v0.16): over a cycle of <c>first + second</c>
/// iterations the rate climbs linearly from <see cref="CycleMinLr"/> to <see cref="CycleMaxLr"/> (reached at batch
/// <c>first</c>) and falls back (reached at batch <c>first + second</c>), where the batch index is
/// <c>iteration + 1</c>; with <see cref="CycleMomentum"/> beta1 moves the other way between <see cref="CycleMaxMom"/>
/// and <see cref="CycleMinMom"/>, with beta2 set to 0.99. After the cycle, with <see cref="DecayStepSize"/> and the
/// matching rate non-zero, <c>lr = min / (1 + decay_lr_rate · d / decay_step_size)</c> and
/// <c>beta1 = max_mom · (1 + decay_mom_rate · d / decay_step_size)</c> for <c>d = iteration − (first + second) + 1</c>;
/// otherwise both hold at min lr / max mom. (DeepSpeed's stair counts change nothing in v0.16, so they are not here.)
/// </summary>
/// <param name="CycleMinLr"><c>cycle_min_lr</c>: the rate at both ends of the cycle and of the first step.</param>
/// <param name="CycleMaxLr"><c>cycle_max_lr</c>: the rate at the peak.</param>
/// <param name="CycleFirstStepSize"><c>cycle_first_step_size</c> (at least 1).</param>
/// <param name="CycleSecondStepSize"><c>cycle_second_step_size</c> (at least 1; DeepSpeed's unset means the first).</param>
/// <param name="DecayStepSize"><c>decay_step_size</c>: 0 = no decay after the cycle.</param>
/// <param name="DecayLrRate"><c>decay_lr_rate</c>.</param>
/// <param name="CycleMomentum"><c>cycle_momentum</c>: drive Adam's betas too.</param>
/// <param name="CycleMinMom"><c>cycle_min_mom</c>: beta1 at the peak and for the first step.</param>
/// <param name="CycleMaxMom"><c>cycle_max_mom</c>: beta1 at both ends.</param>
/// <param name="DecayMomRate"><c>decay_mom_rate</c>.</param>
public sealed record OneCycle(
    double CycleMinLr, double CycleMaxLr, long CycleFirstStepSize, long CycleSecondStepSize,
    long DecayStepSize, double DecayLrRate, bool CycleMomentum, double CycleMinMom, double CycleMaxMom, double DecayMomRate) : LrSchedule
{
    /// <summary>DeepSpeed pairs the cycled beta1 with a fixed beta2 of 0.99.</summary>
    public const double CycledBeta2 = 0.99;

    /// <inheritdoc />
    protected override double Initial => CycleMinLr;

    private double Total => CycleFirstStepSize + CycleSecondStepSize;

    /// <summary>The position in the cycle as DeepSpeed computes it (same float operations): 0 at the ends, 1 at the peak.</summary>
    private double Scale(long iteration)
    {
        if (CycleFirstStepSize < 1 || CycleSecondStepSize < 1)
            throw new ArgumentException($"OneCycle step sizes must be at least 1 (got {CycleFirstStepSize}, {CycleSecondStepSize})");
        var batch = iteration + 1;
        var stepRatio = CycleFirstStepSize / Total;
        var cycle = Math.Floor(1 + batch / Total);
        var x = 1.0 + batch / Total - cycle;
        return x <= stepRatio ? x / stepRatio : (x - 1) / (stepRatio - 1);
    }

    private double DecayInterval(long iteration) => (iteration - Total + 1) / DecayStepSize;

    /// <inheritdoc />
    public override double AtIteration(long iteration) =>
        iteration < Total ? CycleMinLr + (CycleMaxLr - CycleMinLr) * Scale(iteration)
        : DecayStepSize == 0 || DecayLrRate == 0 ? CycleMinLr
        : CycleMinLr / (1 + DecayLrRate * DecayInterval(iteration));

    /// <summary>beta1 at DeepSpeed iteration <paramref name="iteration"/> (cycled against the rate).</summary>
    public double Beta1AtIteration(long iteration) =>
        iteration < Total ? CycleMaxMom - (CycleMaxMom - CycleMinMom) * Scale(iteration)
        : DecayStepSize == 0 || DecayMomRate == 0 ? CycleMaxMom
        : CycleMaxMom * (1 + DecayMomRate * DecayInterval(iteration));

    /// <inheritdoc />
    public override (double Beta1, double Beta2)? Betas(long completedSteps) =>
        !CycleMomentum ? null
        : (completedSteps <= 0 ? CycleMinMom : Beta1AtIteration(completedSteps - 1), CycledBeta2);
}
