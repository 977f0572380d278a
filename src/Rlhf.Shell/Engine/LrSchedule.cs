namespace Rlhf.Shell.Engine;

/// <summary>
/// DeepSpeed's learning-rate schedules (deepspeed/runtime/lr_schedules.py, v0.16), stepped once per
/// optimizer step after the update. <see cref="LearningRate"/> gives the rate the optimizer step
/// number <c>completedSteps + 1</c> uses: DeepSpeed runs the first update with the rate set at
/// construction (WarmupLR/WarmupDecayLR: <c>warmup_min_lr</c>; OneCycle: <c>cycle_min_lr</c>;
/// LRRangeTest: <c>lr_range_test_min_lr</c>; WarmupCosineLR: the optimizer's own lr, which it leaves
/// untouched) and step k ≥ 2 with the schedule at iteration k − 2 (its <c>last_batch_iteration</c>).
/// OneCycle with <c>cycle_momentum</c> also drives Adam's betas (<see cref="Betas"/>).
/// </summary>
public sealed class LrSchedule
{
    private readonly Func<long, double> atIteration;
    private readonly double initial;
    private readonly Func<long, (double Beta1, double Beta2)>? betasAtIteration;
    private readonly (double Beta1, double Beta2) initialBetas;

    /// <summary>The schedule's DeepSpeed name (or "Constant").</summary>
    public string Name { get; }

    private LrSchedule(string name, double initial, Func<long, double> atIteration,
        (double, double) initialBetas = default, Func<long, (double, double)>? betasAtIteration = null)
    {
        Name = name;
        this.initial = initial;
        this.atIteration = atIteration;
        this.initialBetas = initialBetas;
        this.betasAtIteration = betasAtIteration;
    }

    /// <summary>The learning rate of the next optimizer step after <paramref name="completedSteps"/> steps.</summary>
    public double LearningRate(long completedSteps) => completedSteps <= 0 ? initial : atIteration(completedSteps - 1);

    /// <summary>
    /// Adam's (beta1, beta2) for the next optimizer step after <paramref name="completedSteps"/> steps, or null
    /// when the schedule leaves the optimizer's betas alone (every schedule but OneCycle with <c>cycle_momentum</c>).
    /// </summary>
    public (double Beta1, double Beta2)? Betas(long completedSteps) =>
        betasAtIteration is null ? null : completedSteps <= 0 ? initialBetas : betasAtIteration(completedSteps - 1);

    /// <summary>A constant rate (no scheduler section).</summary>
    public static LrSchedule Constant(double lr) => new("Constant", lr, _ => lr);

    /// <summary>Builds the named schedule; <paramref name="optimizerLr"/> is <c>optimizer.params.lr</c>.</summary>
    public static LrSchedule From(SchedulerSettings? s, double optimizerLr)
    {
        if (s is null) return Constant(optimizerLr);
        double P(string k, double d) => s.Params.TryGetValue(k, out var v) ? v : d;
        var linear = s.WarmupType switch
        {
            "linear" => true,
            "log" => false,
            _ => throw new ArgumentException($"scheduler.params.warmup_type must be log or linear (got {s.WarmupType})"),
        };
        var warmup = Math.Max(2L, (long)P("warmup_num_steps", 1000));
        var invLog = 1.0 / Math.Log(warmup);
        double WarmGamma(long it) => linear ? (double)it / warmup : invLog * Math.Log(it + 1);
        switch (s.Type)
        {
            case "WarmupLR":
            case "WarmupDecayLR":
            {
                var min = P("warmup_min_lr", 0.0);
                var max = P("warmup_max_lr", 0.001);
                var decay = s.Type == "WarmupDecayLR";
                var total = decay ? (long)(s.Params.TryGetValue("total_num_steps", out var t) ? t : throw new ArgumentException("WarmupDecayLR needs scheduler.params.total_num_steps")) : 0;
                return new(s.Type, min, it =>
                {
                    double gamma = it < warmup ? WarmGamma(it)
                        : decay ? Math.Max(0.0, (double)(total - it) / Math.Max(1.0, total - warmup))
                        : 1.0;
                    return min + (max - min) * gamma;
                });
            }
            case "WarmupCosineLR":
            {
                var total = (long)(s.Params.TryGetValue("total_num_steps", out var t) ? t : throw new ArgumentException("WarmupCosineLR needs scheduler.params.total_num_steps"));
                var warmMin = P("warmup_min_ratio", 0.0);
                var cosMin = P("cos_min_ratio", 0.0001);
                return new(s.Type, optimizerLr, it =>
                {
                    double ratio;
                    if (it < warmup) ratio = warmMin + WarmGamma(it) * (1.0 - warmMin);
                    else
                    {
                        var real = it - warmup + 1;
                        var span = total - warmup;
                        ratio = Math.Max(0.0, cosMin + (1.0 - cosMin) * (1 + Math.Cos(Math.PI * real / span)) / 2);
                    }
                    return optimizerLr * ratio;
                });
            }
            case "OneCycle":
                return OneCycle(s);
            case "LRRangeTest":
            {
                // lr = min * (1 + rate * interval), interval = (iteration + 1) / step_size, floored for the staircase.
                var min = P("lr_range_test_min_lr", 1e-3);
                var size = (long)P("lr_range_test_step_size", 2000);
                var rate = P("lr_range_test_step_rate", 1.0);
                var staircase = P("lr_range_test_staircase", 0) != 0;
                if (size < 1) throw new ArgumentException($"scheduler.params.lr_range_test_step_size must be at least 1 (got {size})");
                return new(s.Type, min, it =>
                {
                    var interval = (double)(it + 1) / size;
                    return min * (1 + rate * (staircase ? Math.Floor(interval) : interval));
                });
            }
            default:
                throw new ArgumentException($"scheduler.type {s.Type} is not supported (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest)");
        }
    }

    /// <summary>
    /// DeepSpeed's OneCycle: over a cycle of <c>first + second</c> iterations the rate climbs linearly from
    /// <c>cycle_min_lr</c> to <c>cycle_max_lr</c> (reached at batch <c>first</c>) and falls back to <c>cycle_min_lr</c>
    /// (reached at batch <c>first + second</c>), where the batch index is <c>iteration + 1</c>; beta1 moves the other
    /// way between <c>cycle_max_mom</c> and <c>cycle_min_mom</c>, with beta2 set to 0.99. After the cycle, with
    /// <c>decay_step_size</c> and the matching rate non-zero, lr = min / (1 + decay_lr_rate · d / decay_step_size) and
    /// beta1 = max_mom · (1 + decay_mom_rate · d / decay_step_size) for d = iteration − (first + second) + 1; otherwise
    /// both hold at min lr / max mom. The stair counts are accepted and, as in v0.16, change nothing.
    /// </summary>
    private static LrSchedule OneCycle(SchedulerSettings s)
    {
        double P(string k, double d) => s.Params.TryGetValue(k, out var v) ? v : d;
        double Required(string k) => s.Params.TryGetValue(k, out var v) ? v : throw new ArgumentException($"OneCycle needs scheduler.params.{k}");
        var minLr = Required("cycle_min_lr");
        var maxLr = Required("cycle_max_lr");
        var first = (double)(long)P("cycle_first_step_size", 2000);
        var second = s.Params.TryGetValue("cycle_second_step_size", out var sec) ? (double)(long)sec : first;
        if (first < 1 || second < 1)
            throw new ArgumentException($"OneCycle cycle_first_step_size and cycle_second_step_size must be at least 1 (got {first}, {second})");
        var decayStep = (double)(long)P("decay_step_size", 0);
        var lrRate = P("decay_lr_rate", 0.0);
        var momRate = P("decay_mom_rate", 0.0);
        var minMom = P("cycle_min_mom", 0.8);
        var maxMom = P("cycle_max_mom", 0.9);
        var cycleMomentum = P("cycle_momentum", 1) != 0;
        var total = first + second;
        var stepRatio = first / total;

        // The position in the cycle as DeepSpeed computes it (same float operations): 0 at the ends, 1 at the peak.
        double Scale(long it)
        {
            var batch = it + 1;
            var cycle = Math.Floor(1 + batch / total);
            var x = 1.0 + batch / total - cycle;
            return x <= stepRatio ? x / stepRatio : (x - 1) / (stepRatio - 1);
        }
        double DecayInterval(long it) => (it - total + 1) / decayStep;

        var holdLr = decayStep == 0 || lrRate == 0;
        double Lr(long it) =>
            it < total ? minLr + (maxLr - minLr) * Scale(it)
            : holdLr ? minLr
            : minLr / (1 + lrRate * DecayInterval(it));
        if (!cycleMomentum) return new(s.Type, minLr, Lr);

        const double beta2 = 0.99; // DeepSpeed pairs the cycled beta1 with a fixed 0.99
        var holdMom = decayStep == 0 || momRate == 0;
        (double, double) Betas(long it) =>
            (it < total ? maxMom - (maxMom - minMom) * Scale(it)
             : holdMom ? maxMom
             : maxMom * (1 + momRate * DecayInterval(it)), beta2);
        return new(s.Type, minLr, Lr, (minMom, beta2), Betas);
    }
}
