namespace Rlhf.Bench;

/// <summary>Benchmark harness: <c>dotnet run -c Release --project bench/Rlhf.Bench -- SUITE</c>; each suite prints a table.</summary>
public static class Program
{
    private static readonly Dictionary<string, (string Description, Func<string[], int> Run)> Suites = new()
    {
        ["binding"] = ("per-call cost of a 4-element add and matmul GFLOP/s, beside raw libtorch C++ and PyTorch", BindingSuite.Run),
    };

    /// <summary>Runs the named suite.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 0 || !Suites.TryGetValue(args[0], out var suite))
        {
            Console.Error.WriteLine("usage: Rlhf.Bench SUITE [options]\nsuites:");
            foreach (var (name, s) in Suites) Console.Error.WriteLine($"  {name,-12} {s.Description}");
            return args.Length == 0 ? 0 : 2;
        }
        return suite.Run(args[1..]);
    }
}
