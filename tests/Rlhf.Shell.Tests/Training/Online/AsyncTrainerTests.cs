using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;
using Rlhf.Shell.Training.Rewards;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Online;

/// <summary>
/// The asynchronous loop and the online resume on the shipped online-DPO config (tiny random-init llama, byte tokenizer, CPU):
/// staleness 0 is the synchronous loop bit for bit, staleness N lags by exactly N versions, stale rollouts are dropped and never
/// trained on, the generator's logprobs agree with the trainer's, the worker thread shuts down without leaking tensors, and a run
/// stopped and resumed ends with the weights of the run that was not stopped.
/// </summary>
[Collection(MemoryCollection.Name)]
public class AsyncTrainerTests
{
    private static double LowIds(RewardSample s) => OnlineTrainerTests.LowIds(s);

    private static RlhfConfig Load(string dir, params string[] extra) =>
        OnlineTrainerTests.Load("online_dpo.yaml", dir, ["training.save_steps=0", "data.num_examples=20", .. extra]);

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "rlhf-async-" + Guid.NewGuid().ToString("N"));

    private static RewardRegistry Registry(RewardFunction? reward = null) => RewardRegistry.WithBuiltIns().Register("low_ids", reward ?? LowIds);

    /// <summary>Trains in <paramref name="dir"/>; <paramref name="stopAfter"/> sets <see cref="TrainingRun.Stopping"/> once that step is logged.</summary>
    private static TrainingRun Train(RlhfConfig config, string dir, bool resume = false, long? stopAfter = null, long? ahead = null, RewardRegistry? registry = null)
    {
        using var stop = new CancellationTokenSource();
        var run = TrainingRun.Open(config, dir, stopAfter is long at ? new StopAt(at, stop) : null);
        run.Stopping = stop.Token;
        try { OnlineTrainer.Run(config, run, registry ?? Registry(), resume, ahead); }
        finally { run.Dispose(); }
        return run;
    }

    private sealed class StopAt(long step, CancellationTokenSource stop) : IMetricsSink
    {
        public void Write(MetricsRecord record) { if (record.Step == step) stop.Cancel(); }
        public void Dispose() { }
    }

    /// <summary>Every file of <c>final/</c>, by name.</summary>
    private static Dictionary<string, byte[]> Final(string dir) =>
        Directory.GetFiles(Path.Combine(dir, "final")).ToDictionary(f => Path.GetFileName(f), f => File.ReadAllBytes(f));

    private static void AssertSameFinal(string expected, string actual, string what)
    {
        var e = Final(expected);
        var a = Final(actual);
        Assert.Equal(e.Keys.Order(), a.Keys.Order());
        foreach (var (name, bytes) in e) Assert.True(bytes.AsSpan().SequenceEqual(a[name]), $"{what}: final/{name} differs");
    }

    private static void Cleanup(params string[] dirs)
    {
        foreach (var d in dirs) if (Directory.Exists(d)) Directory.Delete(d, true);
    }

    [Fact]
    public void Staleness_zero_trains_bit_identical_weights_to_the_synchronous_loop_and_staleness_one_lags_one_version()
    {
        string sync = TempDir(), async0 = TempDir(), async1 = TempDir();
        try
        {
            // The same intra-op thread counts on both sides: matmuls run on OpenBLAS's OpenMP build, which follows each
            // thread's count, and a product's rounding may depend on how many threads split it.
            Train(Load(sync, "training.max_steps=4", "training.trainer_threads=1"), sync);
            var r0 = Train(Load(async0, "training.max_steps=4", "training.async=true", "training.max_staleness=0",
                "training.generator_threads=1", "training.trainer_threads=1"), async0);
            var r1 = Train(Load(async1, "training.max_steps=4", "training.async=true", "training.max_staleness=1"), async1);
            AssertSameFinal(sync, async0, "async, max_staleness 0 vs synchronous");
            Assert.All(r0.History, r => Assert.Equal(0.0, r.Values["async/staleness_max"]));
            // Step 1 samples the initial weights (nothing older exists); step s ≥ 2 samples the weights after step s − 2.
            Assert.Equal([0.0, 1.0, 1.0, 1.0], r1.History.Select(r => r.Values["async/staleness_max"]));
            Assert.All(r1.History, r => Assert.Equal(0.0, r.Values["async/dropped_stale"]));
            Assert.False(Final(sync)["model.safetensors"].AsSpan().SequenceEqual(Final(async1)["model.safetensors"]), "one step of lag must change the trained weights");
        }
        finally { Cleanup(sync, async0, async1); }
    }

    [Fact]
    public void Rollouts_older_than_max_staleness_are_dropped_counted_and_never_trained_on()
    {
        var dir = TempDir();
        try
        {
            // The generator runs two steps ahead but only one version of lag is allowed: from step 3 on, every generated step is
            // two versions old when the trainer takes it, so it is dropped and the step sampled again from the current weights.
            var run = Train(Load(dir, "training.max_steps=5", "training.async=true", "training.max_staleness=1"), dir, ahead: 2);
            Assert.All(run.History, r => Assert.True(r.Values["async/staleness_max"] <= 1.0, $"step {r.Step} trained on staleness {r.Values["async/staleness_max"]}"));
            Assert.Equal([0.0, 0.0, 16.0, 32.0, 48.0], run.History.Select(r => r.Values["async/dropped_stale"]));   // 16 rollouts per step
            Assert.Equal([0.0, 1.0, 0.0, 0.0, 0.0], run.History.Select(r => r.Values["async/staleness_max"]));
        }
        finally { Cleanup(dir); }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Generator_logprobs_agree_with_the_trainers_within_1e_5_under_temperature_top_k_and_top_p(bool isAsync)
    {
        var dir = TempDir();
        try
        {
            var run = Train(Load(dir, "training.max_steps=3", $"training.async={(isAsync ? "true" : "false")}", "training.max_staleness=0",
                "generation.temperature=0.7", "generation.top_k=50", "generation.top_p=0.9"), dir);
            foreach (var r in run.History)
            {
                var max = r.Values["sampling/sampling_logp_difference/max"];
                Assert.True(max <= 1e-5, $"step {r.Step}: max |Δ logprob| = {max:E3}");
                Assert.True(max > 0 || r.Values["sampling/sampling_logp_difference/mean"] == 0);
                Assert.InRange(r.Values["sampling/importance_sampling_ratio/min"], 1 - 1e-5, 1.0 + 1e-12);
                Assert.InRange(r.Values["sampling/importance_sampling_ratio/max"], 1.0 - 1e-12, 1 + 1e-5);
            }
        }
        finally { Cleanup(dir); }
    }

    /// <summary>Live native tensors once the finalizers (the safety net for handles nobody disposed) have run.</summary>
    private static long Live()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Rlhf.Torch.Torch.LiveTensors;
    }

    [Fact]
    public void The_generator_thread_shuts_down_without_leaking_at_the_end_on_an_error_and_on_stopping()
    {
        string warm = TempDir(), sync = TempDir(), end = TempDir(), error = TempDir(), stopped = TempDir();
        try
        {
            Train(Load(warm, "training.max_steps=1"), warm);     // process-wide caches fill on the first run
            var before = Live();
            Train(Load(sync, "training.max_steps=2"), sync);
            Assert.Equal(before, Live());
            Train(Load(end, "training.max_steps=3", "training.async=true", "training.max_staleness=2"), end);
            Assert.Equal(before, Live());

            var calls = 0;
            var failing = Registry(s => Interlocked.Increment(ref calls) > 16 ? throw new InvalidOperationException("reward failed") : LowIds(s));
            var e = Assert.Throws<InvalidOperationException>(() =>
                Train(Load(error, "training.max_steps=4", "training.async=true", "training.max_staleness=2"), error, registry: failing));
            Assert.Equal("reward failed", e.Message);
            Assert.Equal(before, Live());

            Assert.Throws<TrainingStoppedException>(() =>
                Train(Load(stopped, "training.max_steps=4", "training.async=true", "training.max_staleness=1"), stopped, stopAfter: 2));
            Assert.Equal(before, Live());
            Assert.Equal("global_step2", File.ReadAllText(Path.Combine(stopped, "checkpoints", "latest")).Trim());
        }
        finally { Cleanup(warm, sync, end, error, stopped); }
    }

    [Fact]
    public void A_generator_thread_failure_names_the_generator_and_the_step_frees_everything_and_leaves_the_earlier_checkpoints_resumable()
    {
        string warm = TempDir(), whole = TempDir(), failed = TempDir();
        try
        {
            string[] keys = ["training.max_steps=5", "training.async=true", "training.max_staleness=1", "training.save_steps=1"];
            Train(Load(warm, "training.max_steps=1"), warm);     // process-wide caches fill on the first run
            var before = Live();
            Train(Load(whole, keys), whole);

            // The generator throws as it starts step 4 (submitted after step 2, generated while the trainer trains step 3): the
            // trainer meets the failure at its next hand-over with the worker, before step 3's checkpoint can commit.
            RolloutWorker.BeforeGenerate.Value = s => { if (s == 4) throw new IOException("injected generator failure"); };
            Task<TrainingRun> training;
            try
            {
                training = Task.Run(() => Train(Load(failed, keys), failed));    // the seam flows with the execution context
                Assert.True(((IAsyncResult)training).AsyncWaitHandle.WaitOne(TimeSpan.FromMinutes(5)), "hang guard: the trainer never saw the generator's failure");
            }
            finally { RolloutWorker.BeforeGenerate.Value = null; }
            var e = Assert.Throws<InvalidOperationException>(() => training.GetAwaiter().GetResult());
            Assert.Contains(RolloutWorker.ThreadName, e.Message);
            Assert.Contains("generator thread", e.Message);
            Assert.Contains("step 4", e.Message);
            Assert.Contains("injected generator failure", e.Message);
            Assert.IsType<IOException>(e.InnerException);
            Assert.Equal(before, Live());                      // the worker thread ended: it frees the generator's KV cache itself

            // The checkpoints written before the failure are whole: the run resumes from step 2 and ends where the unbroken one did.
            Assert.Equal("global_step2", File.ReadAllText(Path.Combine(failed, "checkpoints", "latest")).Trim());
            var rest = Train(Load(failed, keys), failed, resume: true);
            Assert.Equal([3L, 4L, 5L], rest.History.Select(r => r.Step));
            AssertSameFinal(whole, failed, "resumed after a generator failure");
        }
        finally { Cleanup(warm, whole, failed); }
    }

    [Theory]
    [InlineData(false, 0, 2)]
    [InlineData(true, 1, 2)]
    [InlineData(true, 2, 1)]
    [InlineData(true, 2, 3)]
    public void A_run_stopped_and_resumed_ends_bit_identical_to_the_uninterrupted_run(bool isAsync, int staleness, int stopAfter)
    {
        string whole = TempDir(), parts = TempDir();
        try
        {
            string[] keys = ["training.max_steps=5", $"training.async={(isAsync ? "true" : "false")}", $"training.max_staleness={staleness}"];
            var full = Train(Load(whole, keys), whole);
            Assert.Throws<TrainingStoppedException>(() => Train(Load(parts, keys), parts, stopAfter: stopAfter));
            var rest = Train(Load(parts, keys), parts, resume: true);
            AssertSameFinal(whole, parts, $"async {isAsync}, staleness {staleness}, stopped after {stopAfter}");
            Assert.Equal(Enumerable.Range(stopAfter + 1, 5 - stopAfter).Select(s => (long)s), rest.History.Select(r => r.Step));
            Assert.Equal(full.History[^1].Episode, rest.History[^1].Episode);
            Assert.Equal(full.History[^1].Values["objective/scores"], rest.History[^1].Values["objective/scores"]);
        }
        finally { Cleanup(whole, parts); }
    }

    [Theory]
    [InlineData("keep")]
    [InlineData("recompute")]
    public void In_flight_updates_record_token_versions_no_older_than_the_sequence_and_no_newer_than_the_trainer(string kv)
    {
        var dir = TempDir();
        try
        {
            var run = Train(Load(dir, "training.max_steps=4", "training.async=true", "training.max_staleness=1", "training.async_mode=inflight",
                $"training.kv_on_update={kv}", "generation.max_new_tokens=16"), dir);
            Assert.Equal(4, run.History.Count);
            foreach (var r in run.History)
            {
                // Token staleness counts from the trainer's version: a token sampled after an in-flight update is fresher than its
                // sequence's start version, never older, and never from a version the trainer has not published.
                Assert.InRange(r.Values["async/token_staleness_mean"], 0.0, r.Values["async/staleness_max"]);
                Assert.True(r.Values["async/inflight_tokens"] >= 0);
                if (r.Values["async/inflight_tokens"] == 0) Assert.Equal(r.Values["async/staleness_max"], r.Values["async/token_staleness_mean"]);
            }
        }
        finally { Cleanup(dir); }
    }

    [Fact]
    public void Kv_recompute_is_refused_where_the_generator_never_adopts_weights_mid_sequence()
    {
        var dir = TempDir();
        foreach (var keys in new[] { new[] { "training.async=false" }, ["training.async=true", "training.async_mode=step"] })
        {
            var e = Assert.Throws<NotSupportedException>(() => OnlineTrainer.CheckSupported(Load(dir, [.. keys, "training.kv_on_update=recompute"])));
            Assert.Contains("training.kv_on_update", e.Message);
            Assert.Contains("async_mode=inflight", e.Message);
        }
        OnlineTrainer.CheckSupported(Load(dir, "training.async=true", "training.async_mode=inflight", "training.kv_on_update=recompute"));
        OnlineTrainer.CheckSupported(Load(dir, "training.async=true", "distributed.world_size=2"));   // many ranks are no longer refused
        Cleanup(dir);
    }

    [Fact]
    public void Resuming_with_another_staleness_is_refused_naming_the_state_file()
    {
        var dir = TempDir();
        try
        {
            Assert.Throws<TrainingStoppedException>(() =>
                Train(Load(dir, "training.max_steps=3", "training.async=true", "training.max_staleness=1"), dir, stopAfter: 1));
            var e = Assert.Throws<Rlhf.Shell.Engine.CheckpointException>(() =>
                Train(Load(dir, "training.max_steps=3", "training.async=true", "training.max_staleness=2"), dir, resume: true));
            Assert.Contains(OnlineState.FileName, e.Message);
            Assert.Contains("max_staleness", e.Message);
        }
        finally { Cleanup(dir); }
    }
}
