namespace Rlhf.Shell.Cli;

/// <summary>Placeholder entry point so Rlhf.Shell builds on the models branch; the lead replaces it with the real CLI.</summary>
public static class Program
{
    /// <summary>Does nothing yet.</summary>
    public static int Main(string[] args) => 0;
}
