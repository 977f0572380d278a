using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Rlhf.Cli.Tests;

/// <summary>
/// <c>rlhf train … --resume</c> and signals, with <c>rlhf train</c> as a child process: a run SIGKILLed at random moments and
/// resumed ends with the same bytes in <c>final/</c> as an uninterrupted run; SIGINT/SIGTERM stop with a checkpoint and 130/143.
/// </summary>
public class TrainResumeTests
{
    private static string Sft => Path.Combine(CommandErrorTests.RepoRoot, "configs", "sft.yaml");

    // A tiny SFT whose epochs (60 training examples, 16 per step: 3 steps) turn over several times, with a checkpoint every step.
    private static string[] Overrides(string dir, long steps, int saveSteps = 1) =>
    [
        $"training.output_dir={dir}", $"training.max_steps={steps}", $"training.save_steps={saveSteps}", "training.logging_steps=1",
        "data.num_examples=64", "logging.tensorboard=false",
    ];

    /// <summary>A running <c>rlhf train</c> (outside any launcher's restart environment) with its output collected.</summary>
    private sealed class Child(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
        : RlhfProcess("rlhf train", args, ["RLHF_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"], env)
    {
        /// <summary>Waits until stdout logged training step <paramref name="step"/>; false when the process ended first.</summary>
        public bool WaitForStep(long step, TimeSpan guard)
        {
            var deadline = DateTime.UtcNow + guard;
            var pattern = new Regex($@"^step {step} episode \d+ .*\blr=", RegexOptions.Multiline);
            while (DateTime.UtcNow < deadline)
            {
                if (pattern.IsMatch(Out)) return true;
                if (P.HasExited)
                {
                    P.WaitForExit();                                 // the rest of its output, read asynchronously
                    return pattern.IsMatch(Out);
                }
                Thread.Sleep(20);
            }
            Assert.Fail($"hang guard: step {step} was not logged within {guard.TotalSeconds} s\n{Out}\n{Err}");
            return false;
        }
    }

    private static void Signal(int pid, string name)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-s", name, pid.ToString()]) { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static byte[] FinalWeights(string dir) => File.ReadAllBytes(Path.Combine(dir, "final", "model.safetensors"));

    // The training records of metrics.jsonl (those with an lr), by step.
    private static long[] LoggedSteps(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l.Replace("NaN", "0")).RootElement)
            .Where(r => r.TryGetProperty("lr", out _)).Select(r => r.GetProperty("step").GetInt64()).ToArray();

    [Fact]
    public void A_run_killed_at_random_moments_and_resumed_ends_with_the_weights_of_an_uninterrupted_run()
    {
        // Kills land after step 2…13 plus up to 60 ms (within a step or two and their saves), so at least ten steps remain: a
        // fast machine cannot finish the run between the last check and the kill.
        const long steps = 24;
        var reference = CommandErrorTests.TempDir();
        var (code, _, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(reference, steps)]);
        Assert.True(code == 0, err);
        var expected = FinalWeights(reference);

        var rng = new Random(20261130);
        var killedAt = new List<long>();
        for (var trial = 0; trial < 3; trial++)
        {
            var dir = CommandErrorTests.TempDir();
            var killAfter = rng.NextInt64(2, steps - 10);
            using (var child = new Child(["train", Sft, .. Overrides(dir, steps)]))
            {
                Assert.True(child.WaitForStep(killAfter, TimeSpan.FromSeconds(120)), $"the run ended before step {killAfter}, exit code {(child.P.HasExited ? child.P.ExitCode : null)}\n{child.Out}\n{child.Err}");
                Thread.Sleep(rng.Next(0, 60));                       // land anywhere in the next step or its save
                Assert.False(child.P.HasExited, "the run finished before it could be killed");
                child.P.Kill();                                      // SIGKILL: no handler runs
                child.P.WaitForExit();
            }
            Assert.False(File.Exists(Path.Combine(dir, "final", "model.safetensors")), "a killed run must not have written final/");
            var latest = File.ReadAllText(Path.Combine(dir, "checkpoints", "latest")).Trim();
            killedAt.Add(long.Parse(latest["global_step".Length..]));

            (code, var output, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, steps), "--resume"]);
            Assert.True(code == 0, err);
            Assert.Contains($"resuming sft from {Path.Combine(dir, "checkpoints", latest)}", output);
            Assert.True(expected.SequenceEqual(FinalWeights(dir)), $"trial {trial}: resumed from {latest}, final weights differ from the uninterrupted run");
            // Every step logged once: the records the killed run wrote after its checkpoint were dropped, the rest appended.
            Assert.Equal(Enumerable.Range(1, (int)steps).Select(i => (long)i), LoggedSteps(dir));
        }
        Assert.True(killedAt.All(s => s >= 1 && s < steps), string.Join(", ", killedAt));
    }

    [Fact]
    public void The_same_run_on_threads_with_different_intra_op_counts_ends_with_the_same_weights()
    {
        // The count is per thread and changes the rounding; a stage sets its own (training.trainer_threads, else the process
        // default), so a run in-process ends the same whichever thread calls it and whatever that thread ran before.
        byte[] RunOn(int threadsBefore)
        {
            var dir = CommandErrorTests.TempDir();
            (int Code, string Out, string Err) result = default;
            var t = new Thread(() =>
            {
                Rlhf.Torch.Torch.NumThreads = threadsBefore;
                result = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, 4, saveSteps: 0)]);
            });
            t.Start();
            t.Join();
            Assert.True(result.Code == 0, result.Err);
            return FinalWeights(dir);
        }
        Assert.True(RunOn(1).SequenceEqual(RunOn(3)), "the final weights depend on the calling thread's intra-op count");
    }

    [Fact]
    public void Resuming_with_a_different_model_or_batch_arithmetic_is_one_error_naming_what_differs()
    {
        var dir = CommandErrorTests.TempDir();
        var (code, _, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, 2)]);
        Assert.True(code == 0, err);

        (code, _, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, 4), "model.hidden_size=32", "model.intermediate_size=96",
            "training.gradient_accumulation_steps=2", "--resume"]);
        Assert.Equal(1, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("rlhf train: cannot resume from ", line);
        Assert.Contains("model.hidden_size: checkpoint 64, config 32", line);
        Assert.Contains("model.intermediate_size: checkpoint 176, config 96", line);
        Assert.Contains("engine.gradient_accumulation_steps: checkpoint 1, config 2", line);
        Assert.DoesNotContain("training.seed", line);

        (code, _, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, 4), "training.algorithm=dpo", "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains("training.algorithm: checkpoint sft, config dpo", err);

        var empty = CommandErrorTests.TempDir();
        (code, _, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(empty, 4), $"--resume={empty}"]);
        Assert.Equal(1, code);
        Assert.Contains(Path.Combine(empty, "checkpoints", "latest"), err);
        Assert.Contains("nothing to resume", err);
    }

    [Theory]
    [InlineData("INT", 130, "SIGINT")]
    [InlineData("TERM", 143, "SIGTERM")]
    public void A_signal_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_from_it(string signal, int exitCode, string name)
    {
        var dir = CommandErrorTests.TempDir();
        int code;
        string err;
        using (var child = new Child(["train", Sft, .. Overrides(dir, 100_000, saveSteps: 0)]))
        {
            Assert.True(child.WaitForStep(3, TimeSpan.FromSeconds(120)), child.Out + child.Err);
            Signal(child.P.Id, signal);
            code = child.Wait(TimeSpan.FromSeconds(60));
            err = child.Err;
            Assert.True(code == exitCode, $"exit {code}\n{child.Out}\n{err}");
        }
        var m = Regex.Match(err, $@"^rlhf train: stopped by {name} after step (\d+); checkpoint (\S+); continue with: rlhf train .*sft\.yaml .* --resume$", RegexOptions.Multiline);
        Assert.True(m.Success, err);
        var step = long.Parse(m.Groups[1].Value);
        Assert.True(step >= 3, err);
        Assert.Equal(Path.Combine(dir, "checkpoints", $"global_step{step}"), m.Groups[2].Value);
        Assert.Equal($"global_step{step}", File.ReadAllText(Path.Combine(dir, "checkpoints", "latest")).Trim());

        // The run continues from that step to a shorter end.
        (code, var output, err) = CommandErrorTests.Run(["train", Sft, .. Overrides(dir, step + 2, saveSteps: 0), "--resume"]);
        Assert.True(code == 0, err);
        Assert.Contains($"(step {step})", output);
        Assert.Equal(Enumerable.Range(1, (int)step + 2).Select(i => (long)i), LoggedSteps(dir));
        Assert.True(File.Exists(Path.Combine(dir, "final", "model.safetensors")));
    }

    [Fact]
    public void Under_a_launcher_resume_starts_fresh_until_a_checkpoint_exists_then_continues_from_it()
    {
        var dir = CommandErrorTests.TempDir();
        using (var first = new Child(["train", Sft, .. Overrides(dir, 2), "--resume"], new Dictionary<string, string> { ["RLHF_RESTART_COUNT"] = "0" }))
        {
            Assert.True(first.Wait(TimeSpan.FromSeconds(120)) == 0, first.Out + first.Err);
            Assert.Contains("--resume: no checkpoint yet (restart 0 under a launcher): starting the run fresh", first.Out);
        }
        // A later attempt finds the checkpoint; `--resume key=value` gives the override back instead of taking it for a directory.
        using var second = new Child(["train", Sft, .. Overrides(dir, 2), "--resume", "training.max_steps=4"], new Dictionary<string, string> { ["TORCHELASTIC_RESTART_COUNT"] = "1" });
        Assert.True(second.Wait(TimeSpan.FromSeconds(120)) == 0, second.Out + second.Err);
        Assert.Contains("(step 2)", second.Out);
        Assert.Equal([1L, 2, 3, 4], LoggedSteps(dir));

        // Without a launcher, resuming a directory with no checkpoint is an error.
        var empty = CommandErrorTests.TempDir();
        using var direct = new Child(["train", Sft, .. Overrides(empty, 2), "--resume"]);
        Assert.Equal(1, direct.Wait(TimeSpan.FromSeconds(120)));
        Assert.Contains("nothing to resume", direct.Err);
    }

    [Theory]
    [InlineData("sft.yaml")]
    [InlineData("reward_model.yaml")]
    [InlineData("dpo.yaml")]
    [InlineData("online_dpo.yaml")]
    public void An_output_directory_that_cannot_be_written_fails_before_any_model_loads(string file)
    {
        var blocker = Path.Combine(CommandErrorTests.TempDir(), "a-file");
        File.WriteAllText(blocker, "");
        var output = Path.Combine(blocker, "out");
        // model.path names nothing: had the model loaded first, the error would name it instead.
        var (code, _, err) = CommandErrorTests.Run("train", Path.Combine(CommandErrorTests.RepoRoot, "configs", file), $"training.output_dir={output}", "model.path=/no/such/model");
        Assert.Equal(1, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"rlhf train: output directory {output} is not writable", line);
    }

    [Fact]
    public void A_second_signal_aborts_at_once_without_a_checkpoint()
    {
        var dir = CommandErrorTests.TempDir();
        // Steps of 64 examples take long enough that the second signal lands while the first step after the first one runs.
        using var child = new Child(["train", Sft, .. Overrides(dir, 100_000, saveSteps: 0), "training.per_device_train_batch_size=64", "data.num_examples=512"]);
        Assert.True(child.WaitForStep(1, TimeSpan.FromSeconds(120)), child.Out + child.Err);
        Signal(child.P.Id, "INT");
        Thread.Sleep(30);
        Signal(child.P.Id, "INT");
        var code = child.Wait(TimeSpan.FromSeconds(60));
        Assert.True(code == 130, $"exit {code}\n{child.Err}");
        Assert.Contains("rlhf train: SIGINT received: stopping after the current step", child.Err);
        Assert.Contains("rlhf train: second signal (SIGINT): aborting at once, without a checkpoint", child.Err);
        Assert.DoesNotContain("stopped by SIGINT after step", child.Err);
        Assert.False(File.Exists(Path.Combine(dir, "checkpoints", "latest")), "an aborted run wrote a checkpoint");
    }
}
