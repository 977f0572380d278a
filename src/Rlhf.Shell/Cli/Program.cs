using System.CommandLine;

namespace Rlhf.Shell.Cli;

/// <summary>Minimal entry point on the config branch: the root command with the config subcommands (main's Program.cs wins on merge).</summary>
public static class Program
{
    /// <summary>Runs the rlhf command line.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("Rlhf: training language models from feedback.");
        root.Subcommands.Add(ConfigCommands.Build());
        return root.Parse(args).Invoke();
    }
}
