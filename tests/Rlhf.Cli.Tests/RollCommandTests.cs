using Rlhf.Core.Models;
using Rlhf.Shell.Io;

namespace Rlhf.Cli.Tests;

/// <summary><c>rlhf config show</c> and <c>rlhf train --dry-run</c> on configs written for ROLL, with and without <c>--strict</c>.</summary>
public class RollCommandTests
{
    /// <summary>ROLL's DeepSpeed strategy example (docs: "DeepSpeed strategy"), verbatim.</summary>
    private static readonly string RollExample = File.ReadAllText(Path.Combine(CommandErrorTests.RepoRoot, "configs", "examples", "roll_deepspeed_strategy.yaml"));

    private static string Repo
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rlhf.sln"))) dir = dir.Parent;
            return dir!.FullName;
        }
    }

    private static string Rlvr => Path.Combine(Repo, "configs", "examples", "roll_rlvr.yaml");

    private static string WriteExample()
    {
        var dir = Path.Combine(CommandErrorTests.TempDir(), "examples", "qwen2.5-7B");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "deepspeed.yaml");
        File.WriteAllText(path, RollExample);
        return path;
    }

    [Fact]
    public void Config_show_prints_rolls_example_resolved_with_no_errors_and_no_warning()
    {
        var (code, output, err) = CommandErrorTests.Run("config", "show", WriteExample());
        Assert.True(code == 0, err);
        Assert.Equal("", err);
        Assert.Contains("\n  algorithm: ppo\n", output);                                 // ROLL's default adv_estimator, gae
        Assert.Contains("\nactor_train:\n", output);
        Assert.Contains("    strategy_config:\n      train_batch_size: 512\n", output);   // 1 × 32 × 16 devices
    }

    [Fact]
    public void Train_dry_run_on_rolls_example_with_a_tiny_local_model_as_pretrain_prints_a_plan()
    {
        var model = Path.Combine(CommandErrorTests.TempDir(), "tiny");
        using (var w = ModelInit.Random(ModelConfig.Llama(260, 32, 48, 2, 4), 1)) HfModelDirectory.Save(model, w);
        var (code, output, err) = CommandErrorTests.Run("train", WriteExample(), $"pretrain={model}", "data.task=reverse", "--dry-run");
        Assert.True(code == 0, err);
        Assert.Contains("algorithm: ppo", output);
        Assert.Contains($"Hugging Face directory {model}", output);
        Assert.Contains("world_size 16 × per_device_train_batch_size 1 × gradient_accumulation_steps 32", output);
        Assert.Contains("steps 500", output);                                                // ROLL's default max_steps
        Assert.Contains("ZeRO stage 3", output);
    }

    [Fact]
    public void Config_show_on_the_rlvr_example_warns_once_listing_the_ignored_keys()
    {
        var (code, output, err) = CommandErrorTests.Run("config", "show", Rlvr);
        Assert.True(code == 0, err);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.Contains("warning"));
        Assert.Contains("13 ROLL keys mean nothing here", lines[0]);
        foreach (var key in new[] { "hydra", "system_envs", "track_with", "tracker_kwargs", "actor_train.worker_cls", "actor_train.data_args", "rewards.reverse.tag_included" })
            Assert.Contains(key + " (", err);
        Assert.Contains("\n  algorithm: grpo\n", output);
    }

    [Fact]
    public void Strict_fails_on_the_rlvr_example_naming_every_ignored_key()
    {
        var (code, output, err) = CommandErrorTests.Run("config", "show", Rlvr, "--strict");
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Contains("13 errors in", err);
        foreach (var key in new[] { "hydra", "system_envs", "whiten_advantages", "actor_infer.data_args", "rewards.reverse.worker_cls" })
            Assert.Contains($": {key}: ROLL key that means nothing here", err);

        var (trainCode, _, trainErr) = CommandErrorTests.Run("train", Rlvr, "--strict", "--dry-run");
        Assert.NotEqual(0, trainCode);
        Assert.Contains(": hydra: ROLL key that means nothing here", trainErr);
    }

    [Fact]
    public void Train_dry_run_on_the_rlvr_example_prints_its_plan()
    {
        var (code, output, err) = CommandErrorTests.Run("train", Rlvr, "--dry-run");
        Assert.True(code == 0, err);
        Assert.Contains("algorithm: grpo", output);
        Assert.Contains("world_size 1 × per_device_train_batch_size 4 × gradient_accumulation_steps 2 × num_mini_batches 4 = 32 rollouts", output);
        Assert.Contains("samples per prompt 4 → 8 prompts per step", output);
        Assert.Contains("reward: reverse (rule function)", output);
    }
}
