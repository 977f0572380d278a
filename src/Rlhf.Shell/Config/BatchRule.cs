namespace Rlhf.Shell.Config;

/// <summary>
/// DeepSpeed's batch-size rule, <c>train_batch_size = micro × gas × world_size</c>, as one pure function used by the
/// config resolver (which reports a <c>ConfigError</c>) and by the engine (which throws).
/// </summary>
public static class BatchRule
{
    /// <summary>
    /// Derives the one or two missing values, or checks the three given ones; null values mean "derive" (DeepSpeed's
    /// "auto"). With neither train_batch_size nor a micro-batch, the micro-batch is 1. On failure returns null and a
    /// message naming all four numbers.
    /// </summary>
    public static (long TrainBatchSize, long Micro, long Gas)? Resolve(long? tbs, long? mb, long? gas, long worldSize, out string? error)
    {
        string? message = null;
        var result = Check(tbs, mb, gas, worldSize, m => message = m);
        error = message;
        return result;
    }

    /// <summary>The product, or null when it does not fit in a long.</summary>
    private static long? Product(long a, long b, long c)
    {
        try
        {
            return checked(a * b * c);
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    private static (long, long, long)? Check(long? tbs, long? mb, long? gas, long worldSize, Action<string> report)
    {
        (long, long, long)? Fail(string message)
        {
            report(message);
            return null;
        }
        if (worldSize < 1) return Fail($"world_size must be at least 1 (got {worldSize})");
        foreach (var (name, v) in new[] { ("train_batch_size", tbs), ("train_micro_batch_size_per_gpu", mb), ("gradient_accumulation_steps", gas) })
            if (v is < 1) return Fail($"{name} must be at least 1 (got {v})");
        // Every product below is checked: micro 2^32 × gas 2^32 must be an error, never a wrapped 0 or a divide by zero.
        var product = Product(mb ?? 1, gas ?? 1, worldSize);
        if (product is null)
            return Fail($"batch sizes overflow: train_micro_batch_size_per_gpu {mb?.ToString() ?? "auto"} × gradient_accumulation_steps {gas?.ToString() ?? "auto"} × world_size {worldSize} exceeds {long.MaxValue}");
        switch (tbs, mb, gas)
        {
            case (long t, long m, long g):
                return t == m * g * worldSize ? (t, m, g)
                    : Fail($"inconsistent batch sizes: train_batch_size {t} ≠ train_micro_batch_size_per_gpu {m} × gradient_accumulation_steps {g} × world_size {worldSize} (= {m * g * worldSize})");
            case (long t, long m, null):
                return t % (m * worldSize) == 0 && t / (m * worldSize) >= 1 ? (t, m, t / (m * worldSize))
                    : Fail($"cannot derive gradient_accumulation_steps: train_batch_size {t} is not a multiple of train_micro_batch_size_per_gpu {m} × world_size {worldSize} (= {m * worldSize})");
            case (long t, null, long g):
                return t % (g * worldSize) == 0 && t / (g * worldSize) >= 1 ? (t, t / (g * worldSize), g)
                    : Fail($"cannot derive train_micro_batch_size_per_gpu: train_batch_size {t} is not a multiple of gradient_accumulation_steps {g} × world_size {worldSize} (= {g * worldSize})");
            case (long t, null, null):
                return t % worldSize == 0 && t / worldSize >= 1 ? (t, t / worldSize, 1)
                    : Fail($"cannot derive train_micro_batch_size_per_gpu: train_batch_size {t} is not a multiple of world_size {worldSize} (gradient_accumulation_steps 1)");
            case (null, long m, long g):
                return (m * g * worldSize, m, g);
            case (null, long m, null):
                return (m * worldSize, m, 1);
            case (null, null, long g):
                return (g * worldSize, 1, g);
            default:
                return (worldSize, 1, 1);
        }
    }
}
