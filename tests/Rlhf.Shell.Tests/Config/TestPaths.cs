namespace Rlhf.Shell.Tests.Config;

/// <summary>Where the repository and the test corpus are.</summary>
internal static class TestPaths
{
    /// <summary>The repository root (the folder holding Rlhf.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The configs/ folder of the repository.</summary>
    public static string Configs => Path.Combine(RepoRoot, "configs");

    /// <summary>The malformed corpus, copied next to the test assembly.</summary>
    public static string Malformed => Path.Combine(AppContext.BaseDirectory, "Config", "Malformed");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rlhf.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Rlhf.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A fresh temporary folder for a test.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "rlhf-config-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
