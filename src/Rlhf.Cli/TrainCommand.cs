using System.CommandLine;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Offline;
using Rlhf.Shell.Training.Online;

namespace Rlhf.Cli;

/// <summary>
/// <c>rlhf train CONFIG [key=value …] [--dry-run]</c>: loads and resolves the config, then runs the stage its
/// <c>training.algorithm</c> names — the online loop (<see cref="OnlineTrainer.Run"/>) or an offline stage
/// (<see cref="OfflineStages.Run"/>) — into the run directory <c>training.output_dir</c>.
/// </summary>
public static class TrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Build()
    {
        var file = new Argument<string>("config") { Description = "The YAML config to train with." };
        var overrides = new Argument<string[]>("overrides") { Description = "Overrides such as training.max_steps=10 training.output_dir=out.", Arity = ArgumentArity.ZeroOrMore };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan (roles, parameter counts, batch arithmetic, memory per rank) and exit without training." };
        var strict = ConfigCommands.StrictOption();
        var cmd = new Command("train", "Train with the algorithm the config names (online DPO, PPO, RLOO, best-of-K, GRPO, REINFORCE++, SFT, reward model, DPO).")
        {
            file, overrides, dryRun, strict,
        };
        cmd.SetAction(r => Run(r.GetValue(file)!, r.GetValue(overrides) ?? [], r.GetValue(dryRun), r.InvocationConfiguration.Output, r.InvocationConfiguration.Error, r.GetValue(strict)));
        return cmd;
    }

    /// <summary>Loads <paramref name="file"/> with <paramref name="overrides"/> and trains (or prints the plan); returns the exit code.</summary>
    public static int Run(string file, IReadOnlyList<string> overrides, bool dryRun, TextWriter output, TextWriter error, bool strict = false)
    {
        var loaded = ConfigCommands.Load(file, overrides, strict, error);
        RlhfConfig? config = null;
        var failed = loaded.Match(
            Succ: c => { config = c; return false; },
            Fail: errors =>
            {
                error.Write(ConfigLoader.Format(errors) + "\n");
                error.Write($"{errors.Count} error{(errors.Count == 1 ? "" : "s")} in {file}\n");
                return true;
            });
        if (failed) return Program.FailureExitCode;
        return dryRun ? DryRun(config!, output) : Train(config!, output);
    }

    /// <summary>The one dispatch from algorithm to stage: online algorithms to the online loop, the rest to the offline stages.</summary>
    public static int Train(RlhfConfig config, TextWriter output)
    {
        if (OnlinePlan.IsOnline(config.Training.Algorithm))
        {
            OnlineTrainer.CheckSupported(config);
            _ = OnlinePlan.From(config);                      // batch arithmetic fails before the run directory is made
            using var run = TrainingRun.Open(config, console: new TextMetricsSink(output));
            var code = OnlineTrainer.Run(config, run);
            output.WriteLine($"trained {AlgorithmYaml.ToYaml(config.Training.Algorithm)}: {run.Directory} (final/ = the policy as a Hugging Face directory)");
            return code;
        }
        using (var run = TrainingRun.Open(config, console: new TextMetricsSink(output)))
        {
            OfflineStages.Run(config, run);
            output.WriteLine($"trained {AlgorithmYaml.ToYaml(config.Training.Algorithm)}: {run.Directory} (final/ = the model as a Hugging Face directory)");
        }
        return 0;
    }

    /// <summary>Prints the plan of an online run; offline stages print their algorithm and model only.</summary>
    public static int DryRun(RlhfConfig config, TextWriter output)
    {
        var alg = config.Training.Algorithm;
        var policy = RoleModels.Settings(config, ModelRole.ActorTrain);
        var modelConfig = RoleModels.Config(policy);
        var parameters = OnlinePlan.ParameterCount(modelConfig);
        if (!OnlinePlan.IsOnline(alg))
        {
            output.Write($"algorithm: {AlgorithmYaml.ToYaml(alg)} (offline stage)\nmodel: {RoleModels.Describe(policy)}, {parameters:N0} parameters\noutput: {Path.GetFullPath(config.Training.OutputDir)}\n");
            return 0;
        }
        var plan = OnlinePlan.From(config);
        var reward = OnlineTrainer.RewardSource(config, OnlineTrainer.DefaultRegistry());
        var criticParameters = alg == Algorithm.Ppo
            ? OnlinePlan.ParameterCount((RoleModels.CriticSource(config) is { } dir ? RoleModels.Config(policy with { Path = dir }) : modelConfig) with { Head = ModelHead.Score })
            : 0;
        var reference = RoleModels.Path(config, ModelRole.Reference) == RoleModels.Path(config, ModelRole.ActorTrain)
            ? "frozen copy of the initial policy" : RoleModels.Describe(RoleModels.Settings(config, ModelRole.Reference));
        output.Write(plan.Describe(config, parameters, RoleModels.Describe(policy), reference, $"{reward.Name} (rule function)",
            alg == Algorithm.Ppo ? Critic.Describe(config) : null, criticParameters));
        output.Write($"output: {Path.GetFullPath(config.Training.OutputDir)}\n");
        try { OnlineTrainer.CheckSupported(config); }
        catch (NotSupportedException e) { output.Write($"note: {e.Message}\n"); }
        return 0;
    }
}
