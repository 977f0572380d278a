using Rlhf.Core.Losses;
using Rlhf.Core.Objectives;
using Rlhf.Settings;

namespace Rlhf.Shell.Training;

/// <summary>
/// The one place where a config section becomes a Core objective: each generated algorithm section (schema-defined keys and
/// defaults) maps onto the named scalars of its Core objective, and the <c>importance_sampling</c> section onto the off-policy
/// correction. Keys that drive the loop rather than the loss (learning rate, epochs, temperature, samples per prompt, missing-stop
/// penalties) are read by the training loop, not here.
/// </summary>
public static class Objectives
{
    /// <summary>The objective of the configured online algorithm; offline stages (sft, reward_model, dpo) have their own methods.</summary>
    public static IObjective For(RlhfConfig config) => config.Training.Algorithm switch
    {
        Algorithm.Ppo => Ppo(config.Ppo),
        Algorithm.Grpo => Grpo(config.Grpo, config.Generation.MaxNewTokens),
        Algorithm.Rloo => Rloo(config.Rloo),
        Algorithm.ReinforcePp => ReinforcePlusPlus(config.ReinforcePp),
        Algorithm.OnlineDpo => OnlineDpo(config.OnlineDpo),
        Algorithm.Bok => BestOfK(config.Bok),
        var a => throw new ArgumentException(
            $"training.algorithm: {AlgorithmYaml.ToYaml(a)} is an offline stage with no rollouts; use Objectives.{(a == Algorithm.Sft ? "Sft" : a == Algorithm.Dpo ? "Dpo" : "RewardModel")}"),
    };

    /// <summary>The configured algorithm's off-policy correction, or null when it is off (or the stage is offline).</summary>
    public static ImportanceCorrection? Correction(RlhfConfig config) => config.Training.Algorithm switch
    {
        Algorithm.Ppo => Correction(config.Ppo.ImportanceSampling),
        Algorithm.Grpo => Correction(config.Grpo.ImportanceSampling),
        Algorithm.Rloo => Correction(config.Rloo.ImportanceSampling),
        Algorithm.ReinforcePp => Correction(config.ReinforcePp.ImportanceSampling),
        Algorithm.OnlineDpo => Correction(config.OnlineDpo.ImportanceSampling),
        Algorithm.Bok => Correction(config.Bok.ImportanceSampling),
        _ => null,
    };

    /// <summary><c>importance_sampling</c> → the correction (TRL <c>vllm_importance_sampling_*</c>), or null when not enabled.</summary>
    public static ImportanceCorrection? Correction(ImportanceSamplingSettings s) =>
        s.Enabled ? new ImportanceCorrection(s.Level, s.Mode, s.Cap, s.ClipMin) : null;

    /// <summary><c>ppo</c> → TRL PPOv2's objective.</summary>
    public static PpoObjective Ppo(PpoSettings s) =>
        new(s.Cliprange, s.CliprangeValue, s.VfCoef, s.Gamma, s.Lam, s.KlCoef, s.KlEstimator, s.WhitenRewards, s.DualClip);

    /// <summary><c>grpo</c> → TRL GRPOTrainer's objective; Dr. GRPO divides by <paramref name="maxCompletionLength"/> (<c>generation.max_new_tokens</c>).</summary>
    public static GrpoObjective Grpo(GrpoSettings s, long maxCompletionLength) =>
        new(s.Epsilon, s.EpsilonHigh ?? s.Epsilon, s.Beta, s.ScaleRewards, s.LossType, maxCompletionLength);

    /// <summary><c>rloo</c> → async_rlhf / TRL RLOO's objective (ε_low, ε_high fall back to <c>cliprange</c>).</summary>
    public static RlooObjective Rloo(RlooSettings s) =>
        new(s.CliprangeLow ?? s.Cliprange, s.CliprangeHigh ?? s.Cliprange, s.KlCoef, s.NormalizeAdvantage);

    /// <summary><c>reinforce_pp</c> → OpenRLHF's REINFORCE++ objective.</summary>
    public static ReinforcePlusPlusObjective ReinforcePlusPlus(ReinforcePpSettings s) =>
        new(s.EpsClip, s.KlCoef, s.KlEstimator, s.Gamma, s.ReinforceBaseline, RewardClipRange(s.RewardClipRange), !s.NoAdvantageStdNorm);

    /// <summary><c>online_dpo</c> → async_rlhf / TRL OnlineDPO's objective.</summary>
    public static OnlineDpoObjective OnlineDpo(OnlineDpoSettings s) => new(s.Beta, s.LossType);

    /// <summary><c>bok</c> → async_rlhf's best-of-K objective (its keys all drive the loop: K, the logged KL, epochs, sampling).</summary>
    public static BestOfKObjective BestOfK(BokSettings s) => new();

    /// <summary><c>sft</c> → TRL SFTTrainer's token objective (its keys drive the data and the optimiser).</summary>
    public static SftObjective Sft(SftSettings s) => new();

    /// <summary><c>dpo</c> → TRL DPOTrainer's offline objective.</summary>
    public static OfflineDpoObjective Dpo(DpoSettings s) => new(s.Beta, s.LossType, s.LabelSmoothing);

    /// <summary><c>reward_model</c> → TRL RewardTrainer's Bradley–Terry objective.</summary>
    public static RewardModelObjective RewardModel(RewardModelSettings s) => new(s.CenterRewardsCoefficient, s.UseMargin);

    private static (double Min, double Max)? RewardClipRange(EquatableList<double> range)
    {
        var r = range.ToArray();
        if (r.Length == 0) return null;
        if (r.Length != 2 || r[0] > r[1])
            throw new ArgumentException($"reinforce_pp.reward_clip_range: expected [min, max] with min ≤ max (OpenRLHF --reward_clip_range), or [] for none; got [{string.Join(", ", r)}]");
        return (r[0], r[1]);
    }
}
