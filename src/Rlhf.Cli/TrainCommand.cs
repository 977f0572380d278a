using System.CommandLine;
using System.Runtime.InteropServices;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Offline;
using Rlhf.Shell.Training.Online;

namespace Rlhf.Cli;

/// <summary>
/// <c>rlhf train CONFIG [key=value …] [--dry-run] [--resume [DIR]]</c>: loads and resolves the config, then runs the stage its
/// <c>training.algorithm</c> names — the online loop (<see cref="OnlineTrainer.Run"/>) or an offline stage
/// (<see cref="OfflineStages.Run"/>) — into the run directory <c>training.output_dir</c> (or DIR, resumed from its
/// <c>checkpoints/latest</c>). SIGINT or SIGTERM asks the run to stop after the step in progress and write a checkpoint; the
/// command then exits 130 or 143 saying how to resume. A second signal ends the process at once.
/// </summary>
public static class TrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Build()
    {
        var file = new Argument<string>("config") { Description = "The YAML config to train with." };
        var overrides = new Argument<string[]>("overrides") { Description = "Overrides such as training.max_steps=10 training.output_dir=out.", Arity = ArgumentArity.ZeroOrMore };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan (roles, parameter counts, batch arithmetic, memory per rank) and exit without training." };
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue the run in DIR (default: training.output_dir) from its checkpoints/latest: weights, optimizer, step, data order. Put it after the overrides, or write --resume=DIR.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var strict = ConfigCommands.StrictOption();
        var cmd = new Command("train", "Train with the algorithm the config names (online DPO, PPO, RLOO, best-of-K, GRPO, REINFORCE++, SFT, reward model, DPO).")
        {
            file, overrides, dryRun, resume, strict,
        };
        cmd.SetAction(r =>
        {
            var extra = r.GetValue(overrides) ?? [];
            string? resumeDir = null;
            if (r.GetResult(resume) is not null)
            {
                resumeDir = r.GetValue(resume) ?? "";
                // `--resume key=value` swallowed an override: take it back unless it names a directory.
                if (resumeDir.Contains('=') && !Directory.Exists(resumeDir)) (extra, resumeDir) = ([.. extra, resumeDir], "");
            }
            return Run(r.GetValue(file)!, extra, r.GetValue(dryRun), r.InvocationConfiguration.Output, r.InvocationConfiguration.Error, resumeDir, r.GetValue(strict));
        });
        return cmd;
    }

    /// <summary>
    /// Loads <paramref name="file"/> with <paramref name="overrides"/> and trains (or prints the plan); returns the exit code.
    /// <paramref name="resume"/>: null for a fresh run, "" to resume <c>training.output_dir</c>, else the run directory to resume.
    /// </summary>
    public static int Run(string file, IReadOnlyList<string> overrides, bool dryRun, TextWriter output, TextWriter error, string? resume = null, bool strict = false)
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
        if (dryRun) return DryRun(config!, output);
        using var stop = new StopSignals(error);
        var command = $"rlhf train {file}{string.Concat(overrides.Select(o => " " + o))}";
        try
        {
            return Train(config!, output, resume, stop.Token);
        }
        catch (OperationCanceledException e) when (stop.Signal is { } sig)
        {
            var dir = resume is { Length: > 0 } d ? d : null;
            var next = e is TrainingStoppedException s ? $" after step {s.Step}; checkpoint {s.Checkpoint}; continue with: {command} --resume{(dir is null ? "" : "=" + dir)}"
                : TrainingRun.HasCheckpoint(config!, dir) ? $" (its last checkpoint stays); continue with: {command} --resume{(dir is null ? "" : "=" + dir)}"
                : $" before its first checkpoint; start again with: {command}";
            error.WriteLine($"rlhf train: stopped by {(sig == PosixSignal.SIGTERM ? "SIGTERM" : "SIGINT")}{next}");
            error.Flush();
            return sig == PosixSignal.SIGTERM ? 143 : 130;
        }
    }

    /// <summary>
    /// The one dispatch from algorithm to stage: online algorithms to the online loop, the rest to the offline stages. The run
    /// directory is opened (and proved writable) before any model loads. <paramref name="resume"/>: see <see cref="Run"/>;
    /// <paramref name="stopping"/> becomes <see cref="TrainingRun.Stopping"/>.
    /// </summary>
    public static int Train(RlhfConfig config, TextWriter output, string? resume = null, CancellationToken stopping = default)
    {
        var directory = resume is { Length: > 0 } d ? d : null;
        // Under a launcher with restarts (rlhf launch --max-restarts, torchrun) the same command line starts every attempt:
        // --resume on an attempt that finds no checkpoint yet starts the run fresh.
        var restart = Environment.GetEnvironmentVariable(LaunchSpec.RestartCountVariable) ?? Environment.GetEnvironmentVariable("TORCHELASTIC_RESTART_COUNT");
        if (resume is not null && restart is not null && !TrainingRun.HasCheckpoint(config, directory))
        {
            output.WriteLine($"--resume: no checkpoint yet (restart {restart} under a launcher): starting the run fresh");
            resume = null;
        }
        if (OnlinePlan.IsOnline(config.Training.Algorithm))
        {
            OnlineTrainer.CheckSupported(config);
            _ = OnlinePlan.From(config);                      // batch arithmetic fails before the run directory is made
            using var run = TrainingRun.Open(config, directory, new TextMetricsSink(output), resume is not null);
            run.Stopping = stopping;
            if (run.ResumedTag is { } t) output.WriteLine($"resuming {AlgorithmYaml.ToYaml(config.Training.Algorithm)} from {Path.Combine(run.CheckpointsDirectory, t)}");
            var code = OnlineTrainer.Run(config, run, resume: run.ResumedTag is not null);
            output.WriteLine($"trained {AlgorithmYaml.ToYaml(config.Training.Algorithm)}: {run.Directory} (final/ = the policy as a Hugging Face directory)");
            return code;
        }
        using (var run = TrainingRun.Open(config, directory, new TextMetricsSink(output), resume is not null))
        {
            run.Stopping = stopping;
            if (run.Resumed is { } r) output.WriteLine($"resuming {AlgorithmYaml.ToYaml(config.Training.Algorithm)} from {Path.Combine(run.CheckpointsDirectory, run.ResumedTag!)} (step {r.Step})");
            OfflineStages.Run(config, run);
            output.WriteLine($"trained {AlgorithmYaml.ToYaml(config.Training.Algorithm)}: {run.Directory} (final/ = the model as a Hugging Face directory)");
        }
        return 0;
    }

    /// <summary>
    /// SIGINT and SIGTERM while training: the first cancels <see cref="Token"/> (the loop finishes its step and checkpoints),
    /// a second ends the process at once with 128 + the signal, as a shell reports a process killed by it.
    /// </summary>
    private sealed class StopSignals : IDisposable
    {
        private readonly CancellationTokenSource cts = new();
        private readonly List<PosixSignalRegistration> regs = [];
        private readonly TextWriter error;
        private int received;

        public StopSignals(TextWriter error)
        {
            this.error = error;
            regs.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, On));
            regs.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, On));
        }

        public CancellationToken Token => cts.Token;

        public PosixSignal? Signal { get; private set; }

        private void On(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            var name = ctx.Signal == PosixSignal.SIGTERM ? "SIGTERM" : "SIGINT";
            if (Interlocked.Increment(ref received) == 1)
            {
                Signal = ctx.Signal;
                error.WriteLine($"rlhf train: {name} received: stopping after the current step and writing a checkpoint (send it again to abort at once)");
                error.Flush();
                cts.Cancel();
                return;
            }
            error.WriteLine($"rlhf train: second signal ({name}): aborting at once, without a checkpoint");
            error.Flush();
            Exit(ctx.Signal == PosixSignal.SIGTERM ? 143 : 130);
        }

        public void Dispose()
        {
            foreach (var r in regs) r.Dispose();
            cts.Dispose();
        }

        [DllImport("libc", EntryPoint = "_exit")]
        private static extern void Exit(int code);
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
