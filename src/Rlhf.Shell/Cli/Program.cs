using System.CommandLine;

namespace Rlhf.Shell.Cli;

/// <summary>The <c>rlhf</c> entry point (minimal on the dist branch: launch and checkpoint commands).</summary>
public static class Program
{
    /// <summary>Parses and runs the command line.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("rlhf: training language models from feedback")
        {
            LaunchCommand.Build(),
            CheckpointCommands.Build(),
        };
        return root.Parse(args).Invoke();
    }
}
