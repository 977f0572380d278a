using FsCheck;
using FsCheck.Fluent;
using Rlhf.Core.Schedules;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Tests.Engine;

/// <summary>
/// DeepSpeed v0.16's OneCycle and LRRangeTest, checked against values worked out by hand from the
/// formulas. Step k (1-based) runs with the construction-time values for k = 1 and with the schedule at
/// iteration k − 2 (batch index k − 1) afterwards; <c>LearningRate(n)</c> is the rate of step n + 1.
/// </summary>
public class LrScheduleTests
{
    /// <summary>The schedule a <c>scheduler</c> section with these params maps to (numbers as written; 0/1 for the boolean keys).</summary>
    internal static LrSchedule From(string type, params (string, double)[] p) => From(type, "log", p);

    /// <summary>The schedule of a <c>scheduler</c> section with <c>warmup_type</c> and the optimizer's lr 123.</summary>
    internal static LrSchedule From(string type, string warmupType, (string, double)[] p, double optimizerLr = 123.0)
    {
        static string Value(string key, double v) => key is "cycle_momentum" or "lr_range_test_staircase"
            ? (v != 0 ? "true" : "false")
            : v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var ps = string.Join(", ", p.Select(x => $"{x.Item1}: {Value(x.Item1, x.Item2)}").Append($"warmup_type: {warmupType}"));
        var ds = DeepSpeedConfig.Parse($"scheduler: {{type: {type}, params: {{{ps}}}}}", worldSize: 1);
        return DeepSpeedConfig.Schedule(ds.Scheduler, optimizerLr);
    }

    [Fact]
    public void OneCycle_climbs_to_the_peak_falls_back_then_decays_continuously()
    {
        // first 4, second 2 (total 6); decay every 2 steps at rate 0.5.
        var s = From("OneCycle", ("cycle_min_lr", 0.01), ("cycle_max_lr", 0.05), ("cycle_first_step_size", 4), ("cycle_second_step_size", 2),
            ("decay_step_size", 2), ("decay_lr_rate", 0.5), ("cycle_momentum", 0));
        Assert.IsType<OneCycle>(s);
        Assert.Equal(0.01, s.LearningRate(0));                  // step 1: cycle_min_lr, set at construction
        Assert.Equal(0.02, s.LearningRate(1), 12);              // batch 1: 1/4 of the way up
        Assert.Equal(0.03, s.LearningRate(2), 12);              // batch 2: half way up
        Assert.Equal(0.04, s.LearningRate(3), 12);
        Assert.Equal(0.05, s.LearningRate(4), 12);              // batch 4 = first step size: the peak
        Assert.Equal(0.03, s.LearningRate(5), 12);              // batch 5: half way down the 2-step fall
        Assert.Equal(0.01, s.LearningRate(6), 12);              // batch 6 = total: back at the minimum, still in the cycle
        Assert.Equal(0.01 / (1 + 0.5 * 0.5), s.LearningRate(7), 12);  // iteration 6: 1 step after the cycle, interval 1/2
        Assert.Equal(0.01 / (1 + 0.5 * 1.0), s.LearningRate(8), 12);  // interval 1
        Assert.Equal(0.01 / (1 + 0.5 * 1.5), s.LearningRate(9), 12);  // interval 3/2: continuous, not floored
        Assert.Null(s.Betas(5));                                // cycle_momentum off: the optimizer's betas stay
    }

    [Fact]
    public void OneCycle_second_half_defaults_to_the_first_and_without_decay_holds_the_minimum()
    {
        // decay_lr_rate is set but decay_step_size is 0: DeepSpeed skips the decay.
        var s = From("OneCycle", ("cycle_min_lr", 0.0), ("cycle_max_lr", 0.3), ("cycle_first_step_size", 3), ("decay_lr_rate", 0.5), ("cycle_momentum", 0));
        Assert.Equal(0.1, s.LearningRate(1), 12);
        Assert.Equal(0.3, s.LearningRate(3), 12);               // peak at batch 3
        Assert.Equal(0.2, s.LearningRate(4), 12);               // batch 4: (6 − 4) / 3 of the height
        Assert.Equal(0.1, s.LearningRate(5), 12);
        Assert.Equal(0.0, s.LearningRate(6), 12);               // total 6 = 3 + 3
        Assert.Equal(0.0, s.LearningRate(7), 12);
        Assert.Equal(0.0, s.LearningRate(1000), 12);

        // decay_step_size without decay_lr_rate holds too.
        var held = From("OneCycle", ("cycle_min_lr", 0.02), ("cycle_max_lr", 0.3), ("cycle_first_step_size", 3), ("decay_step_size", 5), ("cycle_momentum", 0));
        Assert.Equal(0.02, held.LearningRate(50), 12);
    }

    [Fact]
    public void OneCycle_cycles_beta1_against_the_rate_with_beta2_fixed_at_0_99()
    {
        // cycle_momentum defaults to true; first 4, second 2, decay every 2 steps at momentum rate 0.05.
        var s = From("OneCycle", ("cycle_min_lr", 0.01), ("cycle_max_lr", 0.05), ("cycle_first_step_size", 4), ("cycle_second_step_size", 2),
            ("decay_step_size", 2), ("decay_mom_rate", 0.05), ("cycle_min_mom", 0.8), ("cycle_max_mom", 0.9));
        (double, double) B(long n) => s.Betas(n) ?? throw new InvalidOperationException("no betas");
        Assert.Equal((0.8, 0.99), B(0));                        // step 1: cycle_min_mom, set at construction
        double[] expected = [0.875, 0.85, 0.825, 0.8, 0.85, 0.9]; // batches 1..6: down to min at the lr peak, back to max
        for (var n = 1; n <= 6; n++)
        {
            Assert.Equal(expected[n - 1], B(n).Item1, 12);
            Assert.Equal(0.99, B(n).Item2);
        }
        Assert.Equal(0.9 * (1 + 0.05 * 0.5), B(7).Item1, 12);   // after the cycle beta1 grows by the decay factor
        Assert.Equal(0.9 * (1 + 0.05 * 1.5), B(9).Item1, 12);

        var held = From("OneCycle", ("cycle_min_lr", 0.01), ("cycle_max_lr", 0.05), ("cycle_first_step_size", 2), ("cycle_min_mom", 0.85), ("cycle_max_mom", 0.95));
        Assert.Equal((0.85, 0.99), held.Betas(0));
        Assert.Equal(0.95, held.Betas(100)!.Value.Beta1, 12);   // no decay_step_size: holds cycle_max_mom
    }

    [Fact]
    public void OneCycle_stair_counts_leave_the_schedule_unchanged_as_in_deepspeed_0_16()
    {
        (string, double)[] p = [("cycle_min_lr", 0.01), ("cycle_max_lr", 0.05), ("cycle_first_step_size", 8), ("cycle_second_step_size", 4)];
        var plain = From("OneCycle", p);
        var stairs = From("OneCycle", [.. p, ("cycle_first_stair_count", 2), ("cycle_second_stair_count", 2)]);
        for (var n = 0; n < 20; n++) Assert.Equal(plain.LearningRate(n), stairs.LearningRate(n));
        Assert.Equal(0.01 + 0.04 * 3 / 8, stairs.LearningRate(3), 12); // batch 3 of 8: between stairs, still continuous
    }

    [Fact]
    public void OneCycle_needs_both_rates_and_rejects_an_empty_half_cycle()
    {
        var noMin = Assert.Throws<ArgumentException>(() => From("OneCycle", ("cycle_max_lr", 0.1)));
        Assert.Contains("cycle_min_lr", noMin.Message);
        var noMax = Assert.Throws<ArgumentException>(() => From("OneCycle", ("cycle_min_lr", 0.1)));
        Assert.Contains("cycle_max_lr", noMax.Message);
        Assert.Throws<ArgumentException>(() => From("OneCycle", ("cycle_min_lr", 0.1), ("cycle_max_lr", 0.2), ("cycle_first_step_size", 0)));
    }

    [Fact]
    public void LRRangeTest_grows_linearly_or_in_stairs_from_the_minimum()
    {
        (string, double)[] p = [("lr_range_test_min_lr", 0.001), ("lr_range_test_step_size", 4), ("lr_range_test_step_rate", 2)];
        var smooth = From("LRRangeTest", p);
        Assert.Equal(0.001, smooth.LearningRate(0));           // step 1: lr_range_test_min_lr, set at construction
        Assert.Equal(0.001 * 1.5, smooth.LearningRate(1), 12); // iteration 0: interval 1/4, 1 + 2 · 1/4
        Assert.Equal(0.001 * 3.0, smooth.LearningRate(4), 12); // iteration 3: interval 1
        Assert.Equal(0.001 * 4.0, smooth.LearningRate(6), 12); // iteration 5: interval 3/2
        Assert.Null(smooth.Betas(3));

        var stairs = From("LRRangeTest", [.. p, ("lr_range_test_staircase", 1)]);
        Assert.Equal(0.001, stairs.LearningRate(0));
        Assert.Equal(0.001, stairs.LearningRate(1), 12);       // floor(1/4) = 0
        Assert.Equal(0.001, stairs.LearningRate(3), 12);       // floor(3/4) = 0
        Assert.Equal(0.003, stairs.LearningRate(4), 12);       // floor(4/4) = 1
        Assert.Equal(0.003, stairs.LearningRate(6), 12);       // floor(6/4) = 1
        Assert.Equal(0.005, stairs.LearningRate(8), 12);       // floor(8/4) = 2

        var defaults = From("LRRangeTest");                    // DeepSpeed's defaults: 1e-3, size 2000, rate 1, continuous
        Assert.Equal(1e-3, defaults.LearningRate(0));
        Assert.Equal(1e-3 * (1 + 1000.0 / 2000), defaults.LearningRate(1000), 15);
    }

    private sealed record Cycle(double Min, double Max, int First, int? Second, int DecayStep, double DecayRate);

    private static readonly Gen<Cycle> Cycles =
        from min in Gen.Choose(0, 1000)
        from extra in Gen.Choose(0, 1000)
        from first in Gen.Choose(1, 40)
        from second in Gen.Choose(0, 40)
        from decayStep in Gen.Choose(0, 10)
        from rate in Gen.Choose(0, 20)
        select new Cycle(min * 1e-5, (min + extra) * 1e-5, first, second == 0 ? null : second, decayStep, rate / 10.0);

    [Fact]
    public void OneCycle_stays_between_the_decayed_minimum_and_the_maximum_and_touches_both_ends() =>
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(Cycles), c =>
        {
            var p = new List<(string, double)> { ("cycle_min_lr", c.Min), ("cycle_max_lr", c.Max), ("cycle_first_step_size", c.First),
                ("decay_step_size", c.DecayStep), ("decay_lr_rate", c.DecayRate), ("cycle_min_mom", 0.8), ("cycle_max_mom", 0.9) };
            if (c.Second is int sec) p.Add(("cycle_second_step_size", sec));
            var s = From("OneCycle", [.. p]);
            var total = c.First + (c.Second ?? c.First);
            const double tol = 1e-15;
            var previous = double.PositiveInfinity;
            for (var n = 0; n <= total + 30; n++)
            {
                var lr = s.LearningRate(n);
                var beta1 = s.Betas(n)!.Value.Beta1;
                Assert.True(lr <= c.Max + tol, $"lr {lr} above cycle_max_lr {c.Max} at {n}");
                if (n <= total) // in the cycle (batch n ≤ total) the rate and beta1 stay inside their ranges
                {
                    Assert.True(lr >= c.Min - tol, $"lr {lr} below cycle_min_lr {c.Min} at {n}");
                    Assert.InRange(beta1, 0.8 - tol, 0.9 + tol);
                }
                else // after it the rate only falls from cycle_min_lr, never below zero
                {
                    Assert.InRange(lr, 0.0, c.Min);
                    Assert.True(lr <= previous, $"lr rose after the cycle at {n}");
                }
                previous = lr;
            }
            Assert.Equal(c.Max, s.LearningRate(c.First), 12);  // the peak at batch first
            Assert.Equal(c.Min, s.LearningRate(total), 12);    // back to the minimum at batch total
            Assert.Equal(0.8, s.Betas(c.First)!.Value.Beta1, 12);
        }));
}
