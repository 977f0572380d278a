using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Torch;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// <c>training.max_consecutive_skipped_steps</c> in the online loop: steps whose loss turns non-finite are skipped and counted,
/// K in a row stop the run with a checkpoint of the untouched state, and a resumed run continues the count.
/// </summary>
[Collection(MemoryCollection.Name)]
public class OnlineSkippedStepsTests
{
    /// <summary>
    /// The low_ids rule for the first <paramref name="finite"/> batches it scores, NaN after: NaN scores make NaN advantages, so
    /// the loss and gradient norm turn non-finite as a diverging run's do. (Real reward sources refuse non-finite scores.)
    /// </summary>
    private sealed class TurnsNaN(int finite) : IRewardSource
    {
        private int batches;

        public string Name => "turns_nan";

        public Tensor Score(IReadOnlyList<RewardSample> batch)
        {
            var nan = batches++ >= finite;
            return Torch.From(batch.Select(s => nan ? float.NaN : (float)OnlineTrainerTests.LowIds(s)).ToArray());
        }
    }

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "rlhf-skips-" + Guid.NewGuid().ToString("N"));

    private static Settings.RlhfConfig Load(string dir, params string[] extra) =>
        OnlineTrainerTests.Load("rloo.yaml", dir, ["training.per_device_train_batch_size=16", "training.num_mini_batches=1", "rloo.num_epochs=1", "training.save_steps=0", .. extra]);

    private static (TrainingDivergedException? Stop, TrainingRun Run) Train(Settings.RlhfConfig config, string dir, IRewardSource reward, bool resume = false)
    {
        using var run = TrainingRun.Open(config, dir);
        try { OnlineTrainer.Run(config, run, resume: resume, reward: reward); }
        catch (TrainingDivergedException e) { return (e, run); }
        return (null, run);
    }

    private static long ConsecutiveIn(string checkpoints, string tag) =>
        JsonDocument.Parse(Checkpoint.ReadClientFile(checkpoints, tag, OnlineState.FileName)!).RootElement.GetProperty(nameof(OnlineState.ConsecutiveSkippedSteps)).GetInt64();

    [Fact]
    public void Non_finite_steps_are_skipped_counted_and_k_in_a_row_stop_the_run_with_a_checkpoint_a_resume_continues_the_count()
    {
        var dir = TempDir();
        var one = TempDir();
        try
        {
            var config = Load(dir, "training.max_steps=20", "training.max_consecutive_skipped_steps=3");
            Assert.Equal(1, OnlinePlan.From(config).OptimizerStepsPerStep);     // loop steps and optimizer steps coincide here
            // Step 1 trains on finite scores; steps 2, 3, 4 are NaN and skipped; the third in a row stops the run.
            var (stop, run) = Train(config, dir, new TurnsNaN(1));
            Assert.NotNull(stop);
            Assert.Contains("training stopped at step 4: 3 optimizer steps in a row (steps 2–4)", stop.Message);
            Assert.Contains("training.max_consecutive_skipped_steps is 3", stop.Message);
            var checkpoints = Path.Combine(dir, "checkpoints");
            Assert.Equal(Path.Combine(checkpoints, "global_step4"), stop.Checkpoint);
            Assert.Contains(stop.Checkpoint, stop.Message);
            Assert.Equal("global_step4", Checkpoint.ReadLatest(checkpoints));
            Assert.False(Directory.Exists(Path.Combine(dir, "final")));
            Assert.Equal([(1L, 0.0), (2L, 1.0), (3L, 2.0), (4L, 3.0)], run.History.Select(h => (h.Step, h.Values["train/skipped_steps"])).ToArray());
            Assert.Equal(3, ConsecutiveIn(checkpoints, "global_step4"));

            // The checkpoint holds exactly the state after step 1: the skipped steps changed no master and no moment.
            var c1 = Load(one, "training.max_steps=1", "training.max_consecutive_skipped_steps=3");
            Assert.Null(Train(c1, one, new TurnsNaN(1)).Stop);
            using (var scope = Torch.NewScope())
            {
                var after4 = Checkpoint.ReadFull(checkpoints);
                var after1 = Checkpoint.ReadFull(Path.Combine(one, "checkpoints"));
                Assert.Equal((4L, 3L), (after4.State.GlobalSteps, after4.State.SkippedSteps));
                Assert.Equal((1L, 0L), (after1.State.GlobalSteps, after1.State.SkippedSteps));
                for (var i = 0; i < after1.Masters.Count; i++)
                {
                    Assert.True(after1.Masters[i].Equal(after4.Masters[i]), $"master {i}");
                    Assert.True(after1.ExpAvg[i].Equal(after4.ExpAvg[i]), $"exp_avg {i}");
                    Assert.True(after1.ExpAvgSq[i].Equal(after4.ExpAvgSq[i]), $"exp_avg_sq {i}");
                }
            }

            // Resumed with a limit of 5, the count goes on from 3: steps 5 and 6 make 5 in a row.
            var again = Load(dir, "training.max_steps=20", "training.max_consecutive_skipped_steps=5");
            var (stop2, _) = Train(again, dir, new TurnsNaN(0), resume: true);
            Assert.NotNull(stop2);
            Assert.Contains("training stopped at step 6: 5 optimizer steps in a row (steps 2–6)", stop2.Message);
            Assert.Equal(5, ConsecutiveIn(checkpoints, "global_step6"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            if (Directory.Exists(one)) Directory.Delete(one, true);
        }
    }

    [Fact]
    public void With_several_optimizer_steps_per_step_the_count_is_in_optimizer_steps_and_an_applied_step_resets_it()
    {
        var dir = TempDir();
        try
        {
            // Two mini-batches: two optimizer steps per loop step. Step 1 finite (applied, count 0), step 2 NaN (count 2), step 3
            // NaN (count 4 ≥ 3): the stop comes at step 3, optimizer steps 3–6.
            var config = Load(dir, "training.max_steps=20", "training.max_consecutive_skipped_steps=3", "training.num_mini_batches=2");
            Assert.Equal(2, OnlinePlan.From(config).OptimizerStepsPerStep);
            var (stop, run) = Train(config, dir, new TurnsNaN(1));
            Assert.NotNull(stop);
            Assert.Contains("training stopped at step 3: 4 optimizer steps in a row (optimizer steps 3–6)", stop.Message);
            Assert.Equal([0.0, 2.0, 4.0], run.History.Select(h => h.Values["train/skipped_steps"]).ToArray());
            Assert.Equal(4, ConsecutiveIn(Path.Combine(dir, "checkpoints"), "global_step6"));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_guard_counts_the_trailing_run_of_skipped_optimizer_steps_observed_after_each_micro_step()
    {
        // Against a plain loop: each optimizer step is `gas` micro-steps (Observe after every one, as the loops do); the count
        // after any prefix is that prefix's trailing run of skipped steps, and Reached is count ≥ limit for limit > 0.
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(Gen.Elements(true, false, false).ArrayOf()),
                Arb.From(from l in Gen.Choose(0, 4) from g in Gen.Choose(1, 3) from c in Gen.Choose(0, 5) select (Limit: l, Gas: g, Carried: c)),
                (pattern, p) =>
                {
                    var (limit, gas, carried) = p;
                    var guard = new SkippedStepGuard(limit, carried, optimizerSteps: 10, skippedSteps: 4);
                    long steps = 10, skipped = 4;
                    for (var i = 0; i < pattern.Length; i++)
                    {
                        for (var m = 1; m < gas; m++) guard.Observe(steps, skipped);          // inside the accumulation: nothing ends
                        steps++;
                        if (pattern[i]) skipped++;
                        guard.Observe(steps, skipped);
                        var run = pattern.Take(i + 1).Reverse().TakeWhile(s => s).Count();
                        var expected = run == i + 1 ? carried + run : run;                    // a run back to the start continues the carried count
                        Assert.Equal(expected, guard.Consecutive);
                        Assert.Equal(limit > 0 && expected >= limit, guard.Reached);
                    }
                }));
    }

    [Fact]
    public void Observed_less_often_an_all_skipped_stretch_adds_up_and_a_mixed_one_ends_the_run()
    {
        var g = new SkippedStepGuard(limit: 3, consecutive: 1, optimizerSteps: 0, skippedSteps: 0);
        g.Observe(2, 2);
        Assert.Equal(3, g.Consecutive);
        Assert.True(g.Reached);
        g.Observe(5, 4);
        Assert.Equal(0, g.Consecutive);
        Assert.False(g.Reached);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SkippedStepGuard(-1, 0, 0, 0));
    }
}
