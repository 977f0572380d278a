namespace Rlhf.Bench;

/// <summary>Benchmark entry point: <c>dotnet run -c Release --project bench/Rlhf.Bench -- &lt;suite&gt; [options]</c>.</summary>
public static class Program
{
    /// <summary>Dispatches to a suite by name.</summary>
    public static int Main(string[] args)
    {
        var suite = args.Length > 0 ? args[0].ToLowerInvariant() : "";
        var rest = args.Length > 0 ? args[1..] : [];
        switch (suite)
        {
            case "generation": return GenerationBench.Run(rest);
            default:
                Console.Error.WriteLine("usage: Rlhf.Bench <suite> [options]; suites: generation");
                return 2;
        }
    }
}
