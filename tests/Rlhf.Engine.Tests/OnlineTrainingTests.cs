using System.Diagnostics;
using System.Text.Json;
using Rlhf.Core.Models;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Engine.Tests;

/// <summary>
/// The online loop under <c>rlhf launch --nproc-per-node 2</c>: three steps of online DPO on two ranks (8 rollouts each) end
/// on the final weights of one process training the same global batch of 16 with the same seeds, within 1e-5 relative — each
/// rank drew its half of the step's prompts with the single process's request seeds, and the engine averaged the gradients.
/// The tolerance is on each tensor's norm (‖a − b‖ ≤ 1e-5 ‖b‖): the two runs add the same gradients in a different order
/// (one batch of 16 against two of 8, averaged), and Adam's per-element normalisation turns that rounding in an element whose
/// gradient is itself rounding noise into a step of up to the learning rate; <c>adam_epsilon</c> 1e-5 (not 1e-8: measured, 1e-6 left 2e-5 on the embeddings) keeps those
/// steps proportional to the gradient without changing the others.
/// </summary>
public class OnlineTrainingTests
{
    private const double Rel = 1e-5;

    private static string Root()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Rlhf.sln"))) return d.FullName;
        throw new InvalidOperationException("Rlhf.sln not found above " + AppContext.BaseDirectory);
    }

    private static string[] Train(string dir, int perDevice, int worldSize, string[] extra) =>
    [
        Cluster.RlhfDll, "train", Path.Combine(Root(), "configs", "online_dpo.yaml"),
        $"training.output_dir={dir}", "training.max_steps=3", "training.learning_rate=0.01", "training.adam_epsilon=1e-5", "training.logging_steps=1",
        $"training.per_device_train_batch_size={perDevice}", "training.gradient_accumulation_steps=1", $"distributed.world_size={worldSize}",
        "data.num_examples=64", "generation.max_new_tokens=8", .. extra,
    ];

    private static string Run(IEnumerable<string> args, TimeSpan guard)
    {
        using var p = new Process { StartInfo = Cluster.Dotnet(args) };
        var o = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, d) => { if (d.Data is not null) lock (o) o.AppendLine(d.Data); };
        p.ErrorDataReceived += (_, d) => { if (d.Data is not null) lock (o) o.AppendLine(d.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(guard))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"hang guard: still running after {guard.TotalSeconds}s\n{o}");
        }
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}\n{o}");
        return o.ToString();
    }

    private static Dictionary<string, double[]> Final(string dir)
    {
        using var w = HfModelDirectory.Load(Path.Combine(dir, "final"));
        return w.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.To(ScalarType.Float64).Contiguous().ToArray<double>());
    }

    private static double[] Logged(string dir, string key) =>
        File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty(key).GetDouble()).ToArray();

    [Theory]
    [InlineData("zero0")]
    [InlineData("zero3")]
    public void Two_rank_online_dpo_ends_on_the_one_rank_weights(string stage)
    {
        var root = Results.TempDir();
        try
        {
            // online_dpo.yaml composes engine: ${deepspeed_zero0}; its stage key is the one to override.
            string[] extra = stage == "zero3" ? ["deepspeed_zero0.zero_optimization.stage=3"] : [];
            var one = Path.Combine(root, "one");
            var two = Path.Combine(root, "two");
            Run(Train(one, 16, 1, []), TimeSpan.FromSeconds(180));
            var port = Cluster.FreePort();
            Run(new[] { Cluster.RlhfDll, "launch", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port.ToString(), "--", "dotnet" }
                .Concat(Train(two, 8, 2, extra)), TimeSpan.FromSeconds(240));

            var expected = Final(one);
            var got = Final(two);
            Assert.Equal(expected.Keys.Order(), got.Keys.Order());
            foreach (var (name, b) in expected)
            {
                var a = got[name];
                double n = 0, d = 0;
                for (var i = 0; i < b.Length; i++) { n += (a[i] - b[i]) * (a[i] - b[i]); d += b[i] * b[i]; }
                Assert.True(Math.Sqrt(n) <= Rel * Math.Sqrt(d), $"2 ranks ({stage}) vs 1: {name} differs by {Math.Sqrt(n / d):E2} relative (> {Rel:E0})");
            }
            // Rank 0 alone logs, with the ranks' means: the same scores as the single process saw.
            Results.LossesClose(Logged(one, "objective/scores"), Logged(two, "objective/scores"), Rel, "objective/scores");

            // Not vacuous: three steps at lr 1e-2 moved the weights far beyond the tolerance from their seeded init.
            var config = HfModelDirectory.LoadConfig(Path.Combine(one, "final"));
            using var init = ModelInit.Random(config, 42);
            double num = 0, den = 0;
            foreach (var (name, t) in init.Tensors)
            {
                var b = t.To(ScalarType.Float64).Contiguous().ToArray<double>();
                var a = expected[name];
                for (var i = 0; i < b.Length; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
            }
            Assert.True(Math.Sqrt(num / den) > 100 * Rel, $"training moved the weights by only {Math.Sqrt(num / den):E2} relative");
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    private static void Launch(string dir, string[] extra) =>
        Run(new[] { Cluster.RlhfDll, "launch", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", Cluster.FreePort().ToString(), "--", "dotnet" }
            .Concat(Train(dir, 8, 2, extra)), TimeSpan.FromSeconds(300));

    /// <summary>
    /// The asynchronous loop on two ranks: each rank's generator thread samples from its own snapshot of the live weights (stage 3:
    /// gathered on the trainer thread when a version is published), so at staleness 0 the run ends bit for bit on the two-rank
    /// synchronous weights; at staleness 1 both ranks train step s on the version after step s − 2 (the staleness rule reads
    /// only versions the loop fixed, so the ranks agree and their collectives stay in step) and the run finishes.
    /// </summary>
    [Theory]
    [InlineData("zero0", "step")]
    [InlineData("zero3", "inflight")]
    public void Two_rank_asynchronous_online_dpo_at_staleness_zero_ends_on_the_two_rank_synchronous_weights(string stage, string mode)
    {
        var root = Results.TempDir();
        try
        {
            string[] zero = stage == "zero3" ? ["deepspeed_zero0.zero_optimization.stage=3"] : [];
            string sync = Path.Combine(root, "sync"), async0 = Path.Combine(root, "async0"), async1 = Path.Combine(root, "async1");
            Launch(sync, zero);
            Launch(async0, [.. zero, "training.async=true", "training.max_staleness=0", $"training.async_mode={mode}"]);
            Launch(async1, [.. zero, "training.async=true", "training.max_staleness=1", $"training.async_mode={mode}"]);

            foreach (var file in new[] { "model.safetensors", "config.json" })
                Assert.True(File.ReadAllBytes(Path.Combine(sync, "final", file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(async0, "final", file))),
                    $"2 ranks ({stage}, {mode}): final/{file} of the asynchronous run at staleness 0 differs from the synchronous run's");
            Assert.Equal([0.0, 0.0, 0.0], Logged(async0, "async/staleness_max"));
            Assert.Equal([0.0, 1.0, 1.0], Logged(async1, "async/staleness_max"));
            Assert.Equal([0.0, 0.0, 0.0], Logged(async1, "async/dropped_stale"));
            // Not vacuous: a version of lag changes what was trained.
            Assert.False(File.ReadAllBytes(Path.Combine(sync, "final", "model.safetensors")).AsSpan()
                .SequenceEqual(File.ReadAllBytes(Path.Combine(async1, "final", "model.safetensors"))), "staleness 1 must change the trained weights");
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }

    /// <summary>
    /// Each rank checkpoints its own share of the rollouts generated ahead: a two-rank asynchronous run resumed from its step-1
    /// checkpoint (rank 1 reading its own queued rollouts for step 2, not rank 0's) ends with the bytes of the run that went on.
    /// </summary>
    [Fact]
    public void Two_rank_asynchronous_run_resumed_with_queued_rollouts_ends_on_the_uninterrupted_weights()
    {
        var root = Results.TempDir();
        try
        {
            string whole = Path.Combine(root, "whole"), parts = Path.Combine(root, "parts");
            string[] keys = ["training.async=true", "training.max_staleness=1", "training.save_steps=1"];
            Launch(whole, keys);
            Assert.True(File.Exists(Path.Combine(whole, "checkpoints", "global_step1", "online_state_rank1.json")), "rank 1 wrote no queued rollouts");
            // The run as it stood after step 1: its checkpoints up to there, no final weights.
            CopyDirectory(whole, parts);
            Directory.Delete(Path.Combine(parts, "final"), recursive: true);
            foreach (var tag in new[] { "global_step2", "global_step3" }) Directory.Delete(Path.Combine(parts, "checkpoints", tag), recursive: true);
            File.WriteAllText(Path.Combine(parts, "checkpoints", "latest"), "global_step1");
            Launch(parts, [.. keys, "--resume"]);
            Assert.True(File.ReadAllBytes(Path.Combine(whole, "final", "model.safetensors")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(parts, "final", "model.safetensors"))),
                "resumed after step 1: final weights differ from the uninterrupted run's");
            Assert.Equal(Logged(whole, "objective/scores"), Logged(parts, "objective/scores"));
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
