namespace Rlhf.Shell.Cli;

/// <summary>Placeholder entry point so Rlhf.Shell (an Exe) builds before the CLI lands; the CLI work replaces this file.</summary>
internal static class Program
{
    /// <summary>Prints a notice and exits.</summary>
    private static int Main() { Console.WriteLine("rlhf: the CLI is not built yet"); return 0; }
}
