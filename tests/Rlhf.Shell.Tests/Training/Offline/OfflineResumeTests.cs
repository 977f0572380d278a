using FsCheck;
using FsCheck.Fluent;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Tests.Engine;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Offline;
using Rlhf.Torch;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Offline;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// What resume and non-finite steps rest on: the data order restarts at any batch, a skipped step leaves weights and Adam
/// moments untouched, and a run whose steps keep going non-finite stops with a checkpoint of the last good state.
/// </summary>
[Collection(MemoryCollection.Name)]
public class OfflineResumeTests
{
    private static RlhfConfig Config(string file, params string[] overrides) =>
        ConfigLoader.Load(Path.Combine(TestPaths.Configs, file), overrides)
            .Match(c => c, errors => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(errors)));

    [Fact]
    public void The_batch_stream_started_at_batch_k_is_the_full_stream_after_k_batches()
    {
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(from c in Gen.Choose(1, 40) from s in Gen.Choose(1, 9) select (Count: c, Size: s)), Arb.From(Gen.Choose(0, 60)), Arb.From(Gen.Choose(-1000, 1000)), (cs, skip, seed) =>
                Prop.When(cs.Size <= cs.Count, () =>
                {
                    var items = Enumerable.Range(0, cs.Count).ToArray();
                    var full = EpochBatches.Endless(items, cs.Size, shuffle: true, seed).Skip(skip).Take(7).SelectMany(b => b).ToArray();
                    var resumed = EpochBatches.Endless(items, cs.Size, shuffle: true, seed, skip).Take(7).SelectMany(b => b).ToArray();
                    Assert.Equal(full, resumed);
                })));
    }

    [Fact]
    public void Each_epoch_order_is_a_permutation_that_depends_only_on_seed_and_epoch()
    {
        var a = EpochBatches.Order(50, shuffle: true, seed: 3, epoch: 7);
        Assert.Equal(Enumerable.Range(0, 50), a.Order());
        Assert.Equal(a, EpochBatches.Order(50, true, 3, 7));                 // no hidden state between calls
        Assert.NotEqual(a, EpochBatches.Order(50, true, 3, 8));
        Assert.NotEqual(a, EpochBatches.Order(50, true, 4, 7));
        Assert.Equal(Enumerable.Range(0, 50), EpochBatches.Order(50, shuffle: false, seed: 3, epoch: 7));
        // The stream's epoch e is Order(·, e): batch b of epoch 2 at position 2 · perEpoch + b.
        var items = Enumerable.Range(0, 10).ToArray();
        var epoch2 = EpochBatches.Endless(items, 3, true, 3).Skip(6).Take(3).SelectMany(x => x);
        Assert.Equal(EpochBatches.Order(10, true, 3, 2).Take(9), epoch2);
    }

    private static (float[] Master, float[] M, float[] V, float[] Weights) Snapshot(ZeroEngine e)
    {
        using var scope = Torch.NewScope();
        var o = e.Optimizer!;
        var w = e.GatherFullWeights().SelectMany(kv => kv.Value.Reshape(-1).ToArray<float>()).ToArray();
        return (o.Master.Float().ToArray<float>(), o.ExpAvg.ToArray<float>(), o.ExpAvgSq.ToArray<float>(), w);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    public void A_skipped_step_leaves_weights_and_adam_moments_untouched_and_the_next_good_step_updates(int stage)
    {
        var tiny = ModelConfig.Llama(64, 32, 48, 1, 4, kvHeads: 2);
        using var e = new ZeroEngine(new TransformerLayers(tiny, initStd: 0.2), TestEngines.Settings(stage, mb: 2, gas: 2, persistence: 40, lr: 0.05), null, seed: 9, gradientCheckpointing: false);
        using var scope = Torch.NewScope();
        var ids = Torch.From(new long[] { 1, 5, 9, 12, 3, 7, 2, 60 }, 2, 4);
        void Micro(double scale)
        {
            using var s = Torch.NewScope();
            e.Backward(e.Forward(ids).Float().Pow(2).Mean() * scale);
            e.Step();
        }

        Micro(1); Micro(1);                                            // one good step: moments are non-zero from here
        var good = Snapshot(e);
        Assert.Contains(good.M, x => x != 0);

        Micro(1); Micro(double.NaN);                                   // a NaN gradient in one micro-batch of the step
        Assert.Equal(1, e.SkippedSteps);
        Assert.True(double.IsNaN(e.LastGradNorm));
        var afterNan = Snapshot(e);
        Assert.Equal(good.Master, afterNan.Master);
        Assert.Equal(good.M, afterNan.M);
        Assert.Equal(good.V, afterNan.V);
        Assert.Equal(good.Weights, afterNan.Weights);

        Micro(1); e.SkipStep(); Micro(1);                              // finite gradients, but the caller saw a non-finite loss
        Assert.Equal(2, e.SkippedSteps);
        Assert.Equal(good.Master, Snapshot(e).Master);
        Assert.Equal(good.V, Snapshot(e).V);

        Micro(1); Micro(1);                                            // gradients were zeroed: the next step is finite and moves
        Assert.Equal(2, e.SkippedSteps);
        Assert.Equal(4, e.GlobalSteps);
        Assert.True(double.IsFinite(e.LastGradNorm));
        Assert.NotEqual(good.Master, Snapshot(e).Master);
        Assert.DoesNotContain(Snapshot(e).Weights, x => !float.IsFinite(x));
    }

    [Fact]
    public void Sft_with_a_learning_rate_that_blows_up_skips_counts_and_stops_after_k_in_a_row_with_a_checkpoint()
    {
        // lr 1e30: step 1 is finite and applied, its update makes every later loss NaN.
        string[] common = ["training.logging_steps=1", "data.num_examples=64", "sft.learning_rate=1e30", "training.max_consecutive_skipped_steps=3", "logging.tensorboard=false"];
        var dir = TestPaths.TempDir();
        var config = Config("sft.yaml", [$"training.output_dir={dir}", "training.max_steps=50", .. common]);
        TrainingDivergedException stop;
        IReadOnlyList<Rlhf.Shell.Telemetry.MetricsRecord> history;
        using (var run = TrainingRun.Open(config))
        {
            stop = Assert.Throws<TrainingDivergedException>(() => OfflineStages.Run(config, run));
            history = run.History.ToArray();
        }
        Assert.Contains("training stopped at step 4: 3 optimizer steps in a row (steps 2–4)", stop.Message);
        Assert.Contains("training.max_consecutive_skipped_steps is 3", stop.Message);
        var checkpoints = Path.Combine(dir, "checkpoints");
        Assert.Equal(Path.Combine(checkpoints, "global_step4"), stop.Checkpoint);
        Assert.Contains(stop.Checkpoint, stop.Message);
        Assert.Equal("global_step4", Checkpoint.ReadLatest(checkpoints));
        Assert.False(Directory.Exists(Path.Combine(dir, "final")));
        var skipped = history.Where(h => h.Values.ContainsKey("train/skipped_steps")).Select(h => (h.Step, h.Values["train/skipped_steps"])).ToArray();
        Assert.Equal([(1L, 0.0), (2L, 1.0), (3L, 2.0), (4L, 3.0)], skipped);
        var state = TrainerState.Read(checkpoints);
        Assert.Equal((4L, 3L, 4L), (state.Step, state.ConsecutiveSkippedSteps, state.DataCursor));

        // The checkpoint holds exactly the state after step 1: the three skipped steps changed no master and no moment.
        var one = TestPaths.TempDir();
        var c1 = Config("sft.yaml", [$"training.output_dir={one}", "training.max_steps=1", .. common]);
        using (var run = TrainingRun.Open(c1)) OfflineStages.Run(c1, run);
        using var scope = Torch.NewScope();
        var after4 = Checkpoint.ReadFull(checkpoints);
        var after1 = Checkpoint.ReadFull(Path.Combine(one, "checkpoints"));
        Assert.Equal(1, after1.State.GlobalSteps);
        Assert.Equal((4L, 3L), (after4.State.GlobalSteps, after4.State.SkippedSteps));
        for (var i = 0; i < after1.Masters.Count; i++)
        {
            Assert.True(after1.Masters[i].Equal(after4.Masters[i]), $"master {i}");
            Assert.True(after1.ExpAvg[i].Equal(after4.ExpAvg[i]), $"exp_avg {i}");
            Assert.True(after1.ExpAvgSq[i].Equal(after4.ExpAvgSq[i]), $"exp_avg_sq {i}");
        }
        Directory.Delete(dir, true);
        Directory.Delete(one, true);
    }

    [Fact]
    public void With_the_limit_off_a_run_skips_every_bad_step_and_finishes()
    {
        var dir = TestPaths.TempDir();
        var config = Config("sft.yaml", $"training.output_dir={dir}", "training.max_steps=5", "training.logging_steps=1", "data.num_examples=64",
            "sft.learning_rate=1e30", "training.max_consecutive_skipped_steps=0", "logging.tensorboard=false");
        using (var run = TrainingRun.Open(config))
        {
            var r = OfflineStages.Run(config, run);
            Assert.Equal(4.0, r.Final["train/skipped_steps"]);
        }
        Assert.True(File.Exists(Path.Combine(dir, "final", "model.safetensors")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Resuming_drops_the_metrics_logged_after_the_checkpoint_and_a_torn_last_line()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"),
            "{\"step\": 0, \"episode\": 0, \"eval/loss\": 5}\n{\"step\": 1, \"episode\": 16, \"loss\": NaN}\n{\"step\": 2, \"episode\": 32, \"loss\": 4}\n{\"step\": 3, \"epi");
        File.WriteAllText(Path.Combine(dir, "metrics.csv"), "step,episode,loss\n1,16,NaN\n2,32,4\n3,48,3\n");
        Rlhf.Shell.Telemetry.MetricsSinks.DropAfter(dir, 1);
        Assert.Equal("{\"step\": 0, \"episode\": 0, \"eval/loss\": 5}\n{\"step\": 1, \"episode\": 16, \"loss\": NaN}\n", File.ReadAllText(Path.Combine(dir, "metrics.jsonl")));
        Assert.Equal("step,episode,loss\n1,16,NaN\n", File.ReadAllText(Path.Combine(dir, "metrics.csv")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Resuming_a_checkpoint_without_a_trainer_state_names_the_missing_file()
    {
        var dir = TestPaths.TempDir();
        var config = Config("sft.yaml", $"training.output_dir={dir}");
        var checkpoints = Path.Combine(dir, "checkpoints");
        using (var e = new ZeroEngine(new TransformerLayers(ModelConfig.Llama(64, 32, 48, 1, 4, kvHeads: 2), initStd: 0.2), TestEngines.Settings(1, mb: 2, gas: 1, lr: 0.05), null, seed: 9, gradientCheckpointing: false))
            e.SaveCheckpoint(checkpoints);
        var error = Assert.Throws<CheckpointException>(() => TrainingRun.Open(config, resume: true));
        Assert.Equal(Path.Combine(checkpoints, "global_step0", TrainerState.FileName), error.FilePath);
        Assert.Contains("no trainer state", error.Message);
        Directory.Delete(dir, true);
    }
}
