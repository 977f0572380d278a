using System.Globalization;
using System.Text;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Training.Online;

/// <summary>
/// The batch arithmetic of an online run, as TRL's online trainers (PPOv2, RLOO, OnlineDPO; v0.11) lay it out:
/// <c>local_batch = per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches</c> rollouts per rank,
/// <c>batch = local_batch × world_size</c> per step, <c>prompts = batch / samples_per_prompt</c>, and
/// <c>steps = ceil(total_episodes / batch)</c> unless <c>training.max_steps</c> is set. Each step's prepared rows are split by
/// prompt group into <c>num_mini_batches</c> mini-batches of <c>gradient_accumulation_steps</c> micro-batches, so a group
/// (a prompt's samples, an online-DPO pair) is never cut.
/// </summary>
/// <param name="Algorithm">The online algorithm.</param>
/// <param name="WorldSize">Ranks.</param>
/// <param name="MicroBatch">per_device_train_batch_size (rollouts).</param>
/// <param name="GradientAccumulation">gradient_accumulation_steps.</param>
/// <param name="MiniBatches">num_mini_batches.</param>
/// <param name="SamplesPerPrompt">Samples per prompt (k).</param>
/// <param name="RolloutsPerStep">Rollouts per step over all ranks (episodes per step).</param>
/// <param name="PromptsPerRank">Prompts per rank per step.</param>
/// <param name="Epochs">Passes over each step's rollouts (PPO num_ppo_epochs, GRPO num_iterations, the others' num_epochs).</param>
/// <param name="Steps">Steps of the run.</param>
public sealed record OnlinePlan(
    Algorithm Algorithm,
    long WorldSize,
    long MicroBatch,
    long GradientAccumulation,
    long MiniBatches,
    long SamplesPerPrompt,
    long RolloutsPerStep,
    long PromptsPerRank,
    long Epochs,
    long Steps)
{
    /// <summary>Prompts per step over all ranks.</summary>
    public long PromptsPerStep => PromptsPerRank * WorldSize;

    /// <summary>Episodes of the whole run (rollouts generated).</summary>
    public long Episodes => Steps * RolloutsPerStep;

    /// <summary>Prompt groups per micro-batch on each rank.</summary>
    public long GroupsPerMicroBatch => PromptsPerRank / (MiniBatches * GradientAccumulation);

    /// <summary>Optimizer steps per step: one per mini-batch per epoch.</summary>
    public long OptimizerStepsPerStep => Epochs * MiniBatches;

    /// <summary>Optimizer steps of the whole run.</summary>
    public long OptimizerSteps => Steps * OptimizerStepsPerStep;

    /// <summary>Whether <paramref name="a"/> generates rollouts (the others are offline stages).</summary>
    public static bool IsOnline(Algorithm a) => a is Algorithm.OnlineDpo or Algorithm.Ppo or Algorithm.Rloo or Algorithm.Bok or Algorithm.Grpo or Algorithm.ReinforcePp;

    /// <summary>The epochs key of each online algorithm.</summary>
    public static long EpochsOf(RlhfConfig c) => c.Training.Algorithm switch
    {
        Algorithm.OnlineDpo => c.OnlineDpo.NumEpochs,
        Algorithm.Ppo => c.Ppo.NumEpochs,
        Algorithm.Rloo => c.Rloo.NumEpochs,
        Algorithm.Bok => c.Bok.NumEpochs,
        Algorithm.Grpo => c.Grpo.NumIterations,
        Algorithm.ReinforcePp => c.ReinforcePp.NumEpochs,
        var a => throw new ArgumentException($"training.algorithm: {AlgorithmYaml.ToYaml(a)} is not an online algorithm"),
    };

    /// <summary>
    /// The plan of a resolved config. Every inexact division and every count out of range is an <see cref="ArgumentException"/>
    /// naming all the numbers and the keys they come from.
    /// </summary>
    public static OnlinePlan From(RlhfConfig c)
    {
        var alg = c.Training.Algorithm;
        var name = AlgorithmYaml.ToYaml(alg);
        if (!IsOnline(alg)) throw new ArgumentException($"training.algorithm: {name} is an offline stage; it has no rollout plan");
        var mb = c.Training.PerDeviceTrainBatchSize ?? c.Engine.TrainMicroBatchSizePerGpu
            ?? throw new ArgumentException("training.per_device_train_batch_size is unset; load the config with ConfigLoader, which resolves it");
        var gas = c.Training.GradientAccumulationSteps ?? c.Engine.GradientAccumulationSteps ?? 1;
        var nmb = c.Training.NumMiniBatches;
        var ws = c.Distributed.WorldSize ?? 1;
        var k = alg == Algorithm.Ppo ? 1 : c.Generation.N
            ?? throw new ArgumentException("generation.n is unset; load the config with ConfigLoader, which derives it from the algorithm");
        if (mb < 1 || gas < 1 || nmb < 1 || ws < 1 || k < 1)
            throw new ArgumentException($"batch sizes must be ≥ 1: per_device_train_batch_size {mb}, gradient_accumulation_steps {gas}, num_mini_batches {nmb}, world_size {ws}, samples per prompt {k}");
        var minK = alg switch { Algorithm.OnlineDpo or Algorithm.Rloo or Algorithm.Grpo => 2, _ => 1 };
        if (k < minK)
            throw new ArgumentException($"{name} compares samples of a prompt: it needs at least {minK} samples per prompt (generation.n / the algorithm's samples key), got {k}");
        var local = mb * gas * nmb;
        if (local % k != 0)
            throw new ArgumentException(
                $"batch arithmetic: per_device_train_batch_size {mb} × gradient_accumulation_steps {gas} × num_mini_batches {nmb} = {local} rollouts per rank is not a multiple of {k} samples per prompt");
        var prompts = local / k;
        if (prompts % (nmb * gas) != 0)
            throw new ArgumentException(
                $"batch arithmetic: {prompts} prompts per rank ({local} rollouts / {k} samples per prompt) do not split into num_mini_batches {nmb} × gradient_accumulation_steps {gas} = {nmb * gas} micro-batches of whole prompt groups");
        var batch = local * ws;
        long steps;
        if (c.Training.MaxSteps is long max)
        {
            if (max < 1) throw new ArgumentException($"training.max_steps must be ≥ 1, got {max}");
            steps = max;
        }
        else if (c.Training.TotalEpisodes is long total)
        {
            if (total < batch)
                throw new ArgumentException($"batch arithmetic: training.total_episodes {total} is less than one step's batch of {batch} rollouts (per_device_train_batch_size {mb} × gradient_accumulation_steps {gas} × num_mini_batches {nmb} × world_size {ws})");
            steps = (total + batch - 1) / batch;
        }
        else throw new ArgumentException($"{name} is online: set training.total_episodes or training.max_steps");
        var epochs = EpochsOf(c);
        if (epochs < 1) throw new ArgumentException($"{name}: the number of epochs per batch must be ≥ 1, got {epochs}");
        return new OnlinePlan(alg, ws, mb, gas, nmb, k, batch, prompts, epochs, steps);
    }

    /// <summary>Parameters of <paramref name="config"/>'s model, each named tensor counted once.</summary>
    public static long ParameterCount(ModelConfig config) =>
        new TransformerLayers(config).Layers.SelectMany(l => l.Parameters).DistinctBy(p => p.Name).Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>
    /// Bytes per rank of the trained model's states, ZeRO paper style (Rajbhandari et al. 2020, §3: 2Ψ + 2Ψ + KΨ with K = 12
    /// for mixed precision; fp32 holds 4Ψ + 4Ψ + 8Ψ = 16Ψ): parameters, gradients and AdamW states, partitioned over
    /// <paramref name="worldSize"/> ranks as the stage says; frozen models add their parameters.
    /// </summary>
    public static (long Parameters, long Gradients, long Optimizer) TrainedStateBytes(long psi, bool halfPrecision, int stage, long worldSize)
    {
        var p = (halfPrecision ? 2 : 4) * psi;
        var g = (halfPrecision ? 2 : 4) * psi;
        var o = (halfPrecision ? 12 : 8) * psi;
        if (stage >= 1) o /= worldSize;
        if (stage >= 2) g /= worldSize;
        if (stage >= 3) p /= worldSize;
        return (p, g, o);
    }

    /// <summary>
    /// The plan as the lines <c>rlhf train --dry-run</c> prints; PPO's critic is described by <paramref name="criticSource"/> and
    /// counted with <paramref name="criticParameters"/> (trained: the same 16Ψ-style accounting as the policy).
    /// </summary>
    public string Describe(RlhfConfig c, long parameters, string policySource, string referenceSource, string rewardSource,
        string? criticSource = null, long criticParameters = 0)
    {
        var ci = CultureInfo.InvariantCulture;
        var half = c.Engine.Bf16?.Enabled is true || c.Engine.Fp16?.Enabled is true;
        var stage = (int)(c.Engine.ZeroOptimization?.Stage ?? 0);
        var (p, g, o) = TrainedStateBytes(parameters, half, stage, WorldSize);
        var frozen = (half ? 2 : 4) * parameters / (stage >= 3 ? WorldSize : 1);
        var (cp, cg, co) = Algorithm == Algorithm.Ppo ? TrainedStateBytes(criticParameters, half, stage, WorldSize) : (0, 0, 0);
        static string Mb(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("0.00", CultureInfo.InvariantCulture) + " MiB";
        var s = new StringBuilder();
        s.Append(ci, $"algorithm: {AlgorithmYaml.ToYaml(Algorithm)}\n");
        s.Append("roles:\n");
        s.Append(ci, $"  actor_train (policy, trained): {policySource}, {parameters:N0} parameters\n");
        s.Append(ci, $"  actor_infer (generator): the paged generator reading the policy's live weights\n");
        s.Append(ci, $"  reference (frozen): {referenceSource}, {parameters:N0} parameters\n");
        s.Append(ci, $"  reward: {rewardSource}\n");
        if (Algorithm == Algorithm.Ppo)
            s.Append(ci, $"  critic (trained): value model from {criticSource ?? "the policy's initial weights with a fresh score head"}, {criticParameters:N0} parameters\n");
        s.Append("batch:\n");
        s.Append(ci, $"  world_size {WorldSize} × per_device_train_batch_size {MicroBatch} × gradient_accumulation_steps {GradientAccumulation} × num_mini_batches {MiniBatches} = {RolloutsPerStep} rollouts (episodes) per step\n");
        s.Append(ci, $"  samples per prompt {SamplesPerPrompt} → {PromptsPerStep} prompts per step ({PromptsPerRank} per rank), {GroupsPerMicroBatch} prompt groups per micro-batch\n");
        s.Append(ci, $"  steps {Steps} ({Episodes} episodes), epochs per step {Epochs}, optimizer steps {OptimizerSteps} ({OptimizerStepsPerStep} per step)\n");
        s.Append(ci, $"memory per rank (ZeRO stage {stage}, {(half ? "bf16/fp16 mixed" : "fp32")}):\n");
        var critic = Algorithm == Algorithm.Ppo ? $"; critic {Mb(cp + cg + co)}" : "";
        s.Append(ci, $"  policy parameters {Mb(p)}, gradients {Mb(g)}, optimizer {Mb(o)}; reference {Mb(frozen)}{critic}; total {Mb(p + g + o + frozen + cp + cg + co)}\n");
        return s.ToString();
    }
}
