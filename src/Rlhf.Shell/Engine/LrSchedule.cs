namespace Rlhf.Shell.Engine;

/// <summary>
/// DeepSpeed's learning-rate schedules (deepspeed/runtime/lr_schedules.py, v0.16), stepped once per
/// optimizer step after the update. <see cref="LearningRate"/> gives the rate the optimizer step
/// number <c>completedSteps + 1</c> uses: DeepSpeed runs the first update with the rate set at
/// construction (WarmupLR/WarmupDecayLR: <c>warmup_min_lr</c>; WarmupCosineLR: the optimizer's own lr,
/// which it leaves untouched) and step k ≥ 2 with the schedule at iteration k − 2.
/// </summary>
public sealed class LrSchedule
{
    private readonly Func<long, double> atIteration;
    private readonly double initial;

    /// <summary>The schedule's DeepSpeed name (or "Constant").</summary>
    public string Name { get; }

    private LrSchedule(string name, double initial, Func<long, double> atIteration)
    {
        Name = name;
        this.initial = initial;
        this.atIteration = atIteration;
    }

    /// <summary>The learning rate of the next optimizer step after <paramref name="completedSteps"/> steps.</summary>
    public double LearningRate(long completedSteps) => completedSteps <= 0 ? initial : atIteration(completedSteps - 1);

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
            default:
                throw new ArgumentException($"scheduler.type {s.Type} is not supported (WarmupLR, WarmupDecayLR, WarmupCosineLR)");
        }
    }
}
