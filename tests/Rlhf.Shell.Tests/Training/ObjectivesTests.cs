using LanguageExt;
using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Objectives;
using Rlhf.Core.Rollouts;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Training;

namespace Rlhf.Shell.Tests.Training;

/// <summary>
/// The config → objective mapping carries every key of each algorithm section: every key is either asserted to reach the Core
/// objective with a non-default value, or listed as a key the training loop reads. A key added to a schema fails here until it is
/// placed in one of the two.
/// </summary>
public class ObjectivesTests
{
    private static readonly string[] LoopKeys = ["learning_rate", "temperature", "num_epochs", "non_eos_penalty", "penalty_reward_value", "missing_eos_penalty"];

    private static void AllKeysCovered(IReadOnlyList<string> keys, string[] mapped, params string[] loop)
    {
        var covered = mapped.Concat(loop).ToHashSet();
        var unplaced = keys.Where(k => !covered.Contains(k)).ToList();
        var unknown = covered.Where(k => !keys.Contains(k)).ToList();
        Assert.True(unplaced.Count == 0, "keys neither mapped nor read by the loop: " + string.Join(", ", unplaced));
        Assert.True(unknown.Count == 0, "listed keys the section does not have: " + string.Join(", ", unknown));
    }

    private static readonly ImportanceSamplingSettings Is = new()
    {
        Enabled = true, Level = ImportanceSamplingLevel.Sequence, Mode = ImportanceSamplingMode.Mask, Cap = 4.5, ClipMin = 0.25,
    };

    [Fact]
    public void Importance_sampling_section_maps_every_key()
    {
        var c = Objectives.Correction(Is)!;
        Assert.Equal((ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Mask, 4.5, 0.25), (c.Level, c.Mode, c.Cap, c.Floor));
        Assert.Null(Objectives.Correction(Is with { Enabled = false }));
        AllKeysCovered(ImportanceSamplingSettings.Keys, ["enabled", "level", "mode", "cap", "clip_min"]);
    }

    [Fact]
    public void Ppo_maps_every_key()
    {
        var s = new PpoSettings
        {
            Cliprange = 0.11, CliprangeValue = 0.12, VfCoef = 0.13, Gamma = 0.9, Lam = 0.8, KlCoef = 0.07, KlEstimator = KlEstimator.K3,
            WhitenRewards = true, DualClip = 3.5, ImportanceSampling = Is,
        };
        var o = Objectives.Ppo(s);
        Assert.Equal((0.11, 0.12, 0.13, 0.9, 0.8, 0.07, KlEstimator.K3, true, (double?)3.5),
            (o.ClipRange, o.VfClipRange, o.VfCoef, o.Gamma, o.Lambda, o.KlCoef, o.KlEstimator, o.WhitenRewards, o.DualClip));
        AllKeysCovered(PpoSettings.Keys, ["cliprange", "cliprange_value", "vf_coef", "gamma", "lam", "kl_coef", "kl_estimator", "whiten_rewards", "dual_clip", "importance_sampling"], LoopKeys);
    }

    [Fact]
    public void Grpo_maps_every_key()
    {
        var s = new GrpoSettings
        {
            Epsilon = 0.15, EpsilonHigh = 0.28, Beta = 0.04, ScaleRewards = GroupScaling.Batch, LossType = LossAggregation.DrGrpo, ImportanceSampling = Is,
        };
        var o = Objectives.Grpo(s, 77);
        Assert.Equal((0.15, 0.28, 0.04, GroupScaling.Batch, LossAggregation.DrGrpo, (long?)77),
            (o.EpsilonLow, o.EpsilonHigh, o.Beta, o.Scaling, o.Aggregation, o.MaxCompletionLength));
        Assert.Equal(0.15, Objectives.Grpo(s with { EpsilonHigh = null }, 77).EpsilonHigh);
        AllKeysCovered(GrpoSettings.Keys, ["epsilon", "epsilon_high", "beta", "scale_rewards", "loss_type", "importance_sampling"],
            [.. LoopKeys.Where(k => k != "num_epochs"), "num_generations", "num_iterations"]);
    }

    [Fact]
    public void Rloo_maps_every_key()
    {
        var s = new RlooSettings { Cliprange = 0.3, CliprangeLow = 0.1, CliprangeHigh = 0.4, KlCoef = 0.02, NormalizeAdvantage = true, ImportanceSampling = Is };
        var o = Objectives.Rloo(s);
        Assert.Equal((0.1, 0.4, 0.02, true), (o.ClipRangeLow, o.ClipRangeHigh, o.KlCoef, o.NormalizeAdvantages));
        var fallback = Objectives.Rloo(s with { CliprangeLow = null, CliprangeHigh = null });
        Assert.Equal((0.3, 0.3), (fallback.ClipRangeLow, fallback.ClipRangeHigh));
        AllKeysCovered(RlooSettings.Keys, ["cliprange", "cliprange_low", "cliprange_high", "kl_coef", "normalize_advantage", "importance_sampling"], [.. LoopKeys, "rloo_k"]);
    }

    [Fact]
    public void Reinforce_pp_maps_every_key()
    {
        var s = new ReinforcePpSettings
        {
            KlCoef = 0.03, KlEstimator = KlEstimator.K2, Gamma = 0.97, ReinforceBaseline = true, NoAdvantageStdNorm = true,
            RewardClipRange = new EquatableList<double>([-3.0, 5.0]), EpsClip = 0.25, ImportanceSampling = Is,
        };
        var o = Objectives.ReinforcePlusPlus(s);
        Assert.Equal((0.25, 0.03, KlEstimator.K2, 0.97, true, ((double, double)?)(-3.0, 5.0), false),
            (o.ClipRange, o.KlCoef, o.KlEstimator, o.Gamma, o.Baseline, o.RewardClipRange, o.NormalizeStd));
        Assert.Null(Objectives.ReinforcePlusPlus(s with { RewardClipRange = EquatableList<double>.Empty }).RewardClipRange);
        var e = Assert.Throws<ArgumentException>(() => Objectives.ReinforcePlusPlus(s with { RewardClipRange = new EquatableList<double>([5.0, -3.0]) }));
        Assert.Contains("reinforce_pp.reward_clip_range", e.Message);
        AllKeysCovered(ReinforcePpSettings.Keys, ["kl_coef", "kl_estimator", "gamma", "reinforce_baseline", "no_advantage_std_norm", "reward_clip_range",
            "eps_clip", "importance_sampling"], [.. LoopKeys, "n_samples_per_prompt"]);
    }

    [Fact]
    public void Online_dpo_bok_and_the_offline_stages_map_every_key()
    {
        var od = Objectives.OnlineDpo(new OnlineDpoSettings { Beta = 0.3, LossType = DpoLossType.Hinge, ImportanceSampling = Is });
        Assert.Equal((0.3, DpoLossType.Hinge), (od.Beta, od.LossType));
        AllKeysCovered(OnlineDpoSettings.Keys, ["beta", "loss_type", "importance_sampling"], [.. LoopKeys, "kl_coef", "num_samples"]);

        Assert.IsType<BestOfKObjective>(Objectives.BestOfK(new BokSettings()));
        AllKeysCovered(BokSettings.Keys, ["importance_sampling"], [.. LoopKeys, "k", "kl_coef"]);

        var dpo = Objectives.Dpo(new DpoSettings { Beta = 0.2, LossType = DpoLossType.Ipo, LabelSmoothing = 0.1 });
        Assert.Equal((0.2, DpoLossType.Ipo, 0.1), (dpo.Beta, dpo.LossType, dpo.LabelSmoothing));
        AllKeysCovered(DpoSettings.Keys, ["beta", "loss_type", "label_smoothing"], "learning_rate", "max_length");

        var rm = Objectives.RewardModel(new RewardModelSettings { CenterRewardsCoefficient = 0.01, UseMargin = true });
        Assert.Equal(((double?)0.01, true), (rm.CenterCoefficient, rm.UseMargin));
        AllKeysCovered(RewardModelSettings.Keys, ["center_rewards_coefficient", "use_margin"], "learning_rate", "max_length");

        Assert.IsType<SftObjective>(Objectives.Sft(new SftSettings()));
        AllKeysCovered(SftSettings.Keys, [], "learning_rate", "max_seq_length", "packing", "completion_only_loss");
    }

    private static RlhfConfig Load(string yaml) =>
        ConfigLoader.LoadText(yaml).Match(c => c, errors => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(errors)));

    [Fact]
    public void Yaml_names_bind_to_core_enums_and_for_picks_the_configured_algorithm()
    {
        var c = Load("""
            training: { algorithm: grpo, total_episodes: 64 }
            data: { task: reverse }
            generation: { max_new_tokens: 31 }
            grpo:
              loss_type: dr_grpo
              scale_rewards: none
              importance_sampling: { enabled: true, level: sequence, mode: mask, cap: 2.5, clip_min: 0.4 }
            """);
        var g = Assert.IsType<GrpoObjective>(Objectives.For(c));
        Assert.Equal((LossAggregation.DrGrpo, GroupScaling.None, (long?)31), (g.Aggregation, g.Scaling, g.MaxCompletionLength));
        var corr = Objectives.Correction(c)!;
        Assert.Equal((ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Mask, 2.5, 0.4), (corr.Level, corr.Mode, corr.Cap, corr.Floor));

        var p = Load("training: { algorithm: ppo, total_episodes: 64 }\ndata: { task: reverse }\nppo: { kl_estimator: k3 }\n");
        Assert.Equal(KlEstimator.K3, Assert.IsType<PpoObjective>(Objectives.For(p)).KlEstimator);
        Assert.Null(Objectives.Correction(p));

        var d = Load("training: { algorithm: online_dpo, total_episodes: 64 }\ndata: { task: reverse }\nonline_dpo: { loss_type: ipo }\n");
        Assert.Equal(DpoLossType.Ipo, Assert.IsType<OnlineDpoObjective>(Objectives.For(d)).LossType);

        var sft = Load("training: { algorithm: sft }\ndata: { task: reverse }\n");
        Assert.Contains("offline stage", Assert.Throws<ArgumentException>(() => Objectives.For(sft)).Message);
    }

    [Fact]
    public void A_misspelt_enum_value_is_an_error_naming_the_file_position_and_the_accepted_names()
    {
        var v = ConfigLoader.LoadText("training: { algorithm: grpo, total_episodes: 64 }\ndata: { task: reverse }\ngrpo: { loss_type: drgrpo }\n", "run.yaml");
        var errors = v.Match(_ => throw new Xunit.Sdk.XunitException("expected an error"), es => es.Select(e => e.ToString()).ToList());
        var e = Assert.Single(errors);
        Assert.StartsWith("run.yaml:3:20: grpo.loss_type: expected one of grpo, bnpo, dr_grpo, dapo", e);
    }
}
