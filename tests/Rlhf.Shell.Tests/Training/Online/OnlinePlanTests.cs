using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Tests.Config;
using Rlhf.Core.Models;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Online;

/// <summary>The online batch arithmetic (TRL's local_batch = mb × gas × num_mini_batches) and the dry-run plan.</summary>
public class OnlinePlanTests
{
    private static RlhfConfig Load(string file, params string[] overrides) =>
        ConfigLoader.Load(Path.Combine(TestPaths.Configs, file), overrides).Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));

    [Fact]
    public void Rloo_plan_counts_rollouts_prompts_steps_and_optimizer_steps_by_hand()
    {
        // rloo.yaml: mb 8 × gas 1 × num_mini_batches 2 = 16 rollouts, k 4 → 4 prompts; 1024 episodes → 64 steps; 4 epochs × 2 mini-batches.
        var plan = OnlinePlan.From(Load("rloo.yaml"));
        Assert.Equal(16, plan.RolloutsPerStep);
        Assert.Equal(4, plan.PromptsPerStep);
        Assert.Equal(2, plan.GroupsPerMicroBatch);
        Assert.Equal(64, plan.Steps);
        Assert.Equal(8, plan.OptimizerStepsPerStep);
        Assert.Equal(512, plan.OptimizerSteps);
    }

    [Fact]
    public void Max_steps_overrides_total_episodes()
    {
        var plan = OnlinePlan.From(Load("online_dpo.yaml", "training.max_steps=7"));
        Assert.Equal(7, plan.Steps);
        Assert.Equal(7 * 16, plan.Episodes);
    }

    [Fact]
    public void A_batch_that_is_not_a_multiple_of_the_samples_per_prompt_names_every_number()
    {
        var e = Assert.Throws<ArgumentException>(() => OnlinePlan.From(Load("rloo.yaml", "training.per_device_train_batch_size=3", "training.num_mini_batches=1", "rloo.rloo_k=2")));
        foreach (var part in new[] { "per_device_train_batch_size 3", "gradient_accumulation_steps 1", "num_mini_batches 1", "= 3", "2 samples per prompt" })
            Assert.Contains(part, e.Message);
    }

    [Fact]
    public void Prompts_that_do_not_split_into_micro_batches_name_every_number()
    {
        // 8 × 1 × 2 = 16 rollouts / k 8 = 2 prompts; 2 mini-batches × 1 = 2 micro-batches fit, 2 × gas 2 = 4 do not.
        var e = Assert.Throws<ArgumentException>(() => OnlinePlan.From(Load("grpo.yaml", "grpo.num_generations=8", "training.num_mini_batches=2", "training.gradient_accumulation_steps=2", "training.per_device_train_batch_size=4")));
        foreach (var part in new[] { "2 prompts per rank", "16 rollouts", "8 samples per prompt", "num_mini_batches 2", "gradient_accumulation_steps 2", "= 4 micro-batches" })
            Assert.Contains(part, e.Message);
    }

    [Fact]
    public void Online_dpo_needs_two_samples()
    {
        // The schema already refuses online_dpo.num_samples < 2; the plan checks the resolved samples per prompt itself.
        var c = Load("online_dpo.yaml");
        var e = Assert.Throws<ArgumentException>(() => OnlinePlan.From(c with { Generation = c.Generation with { N = 1 } }));
        Assert.Contains("at least 2 samples per prompt", e.Message);
    }

    [Fact]
    public void Dry_run_plan_names_the_roles_the_batch_and_the_memory()
    {
        var c = Load("quickstart.yaml");
        var plan = OnlinePlan.From(c);
        var psi = OnlinePlan.ParameterCount(RoleModels.Config(c.Model));
        // llama, V 260, D 64, I 176, 2 layers, untied: embed + head 2·260·64, per layer 4·64² + 3·64·176 + 2·64, final norm 64.
        Assert.Equal(2 * 260 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 176 + 2 * 64) + 64, psi);
        var text = plan.Describe(c, psi, RoleModels.Describe(c.Model), "frozen copy of the initial policy", "reverse");
        Assert.Contains("algorithm: online_dpo", text);
        Assert.Contains("reference (frozen): frozen copy of the initial policy", text);
        Assert.Contains("= 8 rollouts (episodes) per step", text);
        Assert.Contains("samples per prompt 2 → 4 prompts per step", text);
        Assert.Contains("steps 64 (512 episodes)", text);
        // fp32, stage 0: 16 bytes per parameter for the policy, 4 for the reference.
        var (p, g, o) = OnlinePlan.TrainedStateBytes(psi, halfPrecision: false, stage: 0, worldSize: 1);
        Assert.Equal(16L * psi, p + g + o);
        Assert.Equal(psi * 12 / 4, OnlinePlan.TrainedStateBytes(psi, true, 3, 4).Optimizer); // ZeRO-3 over 4 ranks: 12Ψ/4
    }

    [Fact]
    public void Ppo_dry_run_names_where_the_critic_starts_and_counts_its_memory()
    {
        var c = Load("ppo.yaml");
        var plan = OnlinePlan.From(c);
        var psi = OnlinePlan.ParameterCount(RoleModels.Config(c.Model));
        var critic = OnlinePlan.ParameterCount(RoleModels.Config(c.Model) with { Head = ModelHead.Score });
        // The score head is one row of D = 64 in place of the [260, 64] LM head.
        Assert.Equal(psi - 260 * 64 + 64, critic);
        var text = plan.Describe(c, psi, RoleModels.Describe(c.Model), "frozen copy of the initial policy", "reverse", Critic.Describe(c), critic);
        Assert.Contains($"critic (trained): value model from the policy's initial weights with a fresh score head (no reward model named), {critic:N0} parameters", text);
        // fp32, stage 0: policy 16Ψ + reference 4Ψ + critic 16Ψ_c.
        var total = (16L * psi + 4L * psi + 16L * critic) / (1024.0 * 1024.0);
        Assert.Contains($"total {total.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)} MiB", text);
        var named = Load("ppo.yaml", "critic.model_args.model_name_or_path=dir/critic", "critic.strategy_args.strategy_name=deepspeed_train");
        Assert.Equal("critic.model_args dir/critic with its score head", Critic.Describe(named));
        Assert.Equal("dir/critic", RoleModels.CriticSource(named));
    }
}
