using Rlhf.Core.Schedules;

namespace Rlhf.Core.Tests;

/// <summary>
/// HF Trainer's schedules (transformers optimization.py) as the engine's client scheduler: optimizer step k (from 0) runs at
/// lr · f(k), values computed by hand from the transformers lambdas.
/// </summary>
public class HfScheduleTests
{
    private static double[] Rates(HfSchedule s, int steps) => Enumerable.Range(0, steps).Select(k => s.LearningRate(k)).ToArray();

    private static void Near(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-12, $"step {i}: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Linear_warms_up_then_decays_to_zero_at_the_last_step()
    {
        // warmup 2, total 10: k/2 for k < 2, then (10 − k)/8.
        Near([0, 0.5, 1, 7 / 8.0, 6 / 8.0, 5 / 8.0, 4 / 8.0, 3 / 8.0, 2 / 8.0, 1 / 8.0, 0, 0], Rates(new HfSchedule(HfScheduleKind.Linear, 1.0, 2, 10), 12));
    }

    [Fact]
    public void Cosine_without_warmup_is_half_a_cosine_scaled_by_the_rate()
    {
        var c = Math.Cos(Math.PI / 4);
        Near([2e-3, 1e-3 * (1 + c), 1e-3, 1e-3 * (1 - c), 0], Rates(new HfSchedule(HfScheduleKind.Cosine, 2e-3, 0, 4), 5));
    }

    [Fact]
    public void Constant_with_warmup_ramps_then_holds_and_constant_ignores_warmup()
    {
        Near([0, 1 / 3.0, 2 / 3.0, 1, 1], Rates(new HfSchedule(HfScheduleKind.ConstantWithWarmup, 1.0, 3, 5), 5));
        Near([0.5, 0.5, 0.5], Rates(new HfSchedule(HfScheduleKind.Constant, 0.5, 3, 5), 3));
    }
}
