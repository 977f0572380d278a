using System.CommandLine;

namespace Rlhf.Shell.Cli;

/// <summary>The <c>rlhf</c> console program.</summary>
public static class Program
{
    /// <summary>Builds the command tree (also used by tests).</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("rlhf: train language models from feedback (online DPO, PPO, RLOO, best-of-K, GRPO, REINFORCE++).");
        root.Subcommands.Add(DoctorCommand.Build());
        root.Subcommands.Add(ConfigCommands.Build());
        root.Subcommands.Add(LaunchCommand.Build());
        root.Subcommands.Add(CheckpointCommands.Build());
        // With no subcommand, run the main job on the embedded default.
        root.SetAction(parse => DoctorCommand.Run(DoctorCommand.DefaultSteps));
        return root;
    }

    /// <summary>Entry point.</summary>
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();
}
