namespace Rlhf.Bench;

/// <summary>A named benchmark suite; every public non-abstract implementation is found by reflection.</summary>
public interface IBenchSuite
{
    /// <summary>The name given on the command line (lower case).</summary>
    string Name { get; }

    /// <summary>One line saying what the suite measures.</summary>
    string Description { get; }

    /// <summary>Runs the suite with the remaining arguments; returns the exit code.</summary>
    int Run(string[] args);
}

/// <summary>Entry point: <c>dotnet run -c Release --project bench/Rlhf.Bench -- &lt;suite&gt; [args]</c>.</summary>
public static class Program
{
    /// <summary>Dispatches args[0] to the suite of that name, or lists the suites.</summary>
    public static int Main(string[] args)
    {
        var suites = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(IBenchSuite).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IBenchSuite)Activator.CreateInstance(t)!)
            .ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
        if (args.Length == 0 || !suites.TryGetValue(args[0], out var suite))
        {
            Console.Error.WriteLine(args.Length == 0 ? "usage: Rlhf.Bench <suite> [args]" : $"unknown suite '{args[0]}'");
            foreach (var s in suites.Values.OrderBy(s => s.Name)) Console.Error.WriteLine($"  {s.Name,-12} {s.Description}");
            return 2;
        }
        Console.WriteLine(Machine.Line);
        return suite.Run(args[1..]);
    }
}
