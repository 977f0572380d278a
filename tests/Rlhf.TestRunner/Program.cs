// Runs xunit v2 test assemblies with xunit's own engine (Xunit.Sdk.XunitTestFramework: discovery, then execution),
// where `dotnet test` cannot: the GPU machine has no .NET SDK, so tools/gpu-check.sh carries this runner published
// self-contained beside the test assemblies.
//
//   rlhf-testrunner [--filter TEXT]... [--exclude TEXT]... [--report FILE] ASSEMBLY.dll...
//
// --filter keeps the test cases whose display name contains any TEXT; --exclude drops those containing any TEXT.
// Prints one line per failure (name, message, top of the stack) and a summary per assembly; --report writes a
// Markdown table (assembly, passed, failed, skipped, seconds) and the failing names. Exit code 1 when any failed.
using System.Diagnostics;
using System.Reflection;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Rlhf.TestRunner;

/// <summary>The runner's entry point.</summary>
public static class Program
{
    /// <summary>Runs the assemblies named on the command line; 0 when every selected test passed, 1 when any failed, 2 on bad arguments.</summary>
    public static int Main(string[] args)
    {
        var filters = new List<string>();
        var excludes = new List<string>();
        var assemblies = new List<string>();
        string? report = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--filter" when i + 1 < args.Length: filters.Add(args[++i]); break;
                case "--exclude" when i + 1 < args.Length: excludes.Add(args[++i]); break;
                case "--report" when i + 1 < args.Length: report = args[++i]; break;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal) || !args[i].EndsWith(".dll", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine($"rlhf-testrunner: unexpected argument '{args[i]}'. Usage: rlhf-testrunner [--filter TEXT]... [--exclude TEXT]... [--report FILE] ASSEMBLY.dll...");
                        return 2;
                    }
                    assemblies.Add(args[i]);
                    break;
            }
        }
        if (assemblies.Count == 0) { Console.Error.WriteLine("rlhf-testrunner: name at least one test assembly (.dll)"); return 2; }

        var results = new List<AssemblyResult>();
        foreach (var path in assemblies)
        {
            if (!File.Exists(path)) { Console.Error.WriteLine($"rlhf-testrunner: {path}: no such file"); return 2; }
            results.Add(Run(Path.GetFullPath(path), filters, excludes));
        }
        if (report is not null) File.WriteAllText(report, Markdown(results));
        return results.Any(r => r.Failed.Count > 0) ? 1 : 0;
    }

    private sealed record AssemblyResult(string Name, int Passed, List<string> Failed, int Skipped, double Seconds);

    private static AssemblyResult Run(string path, List<string> filters, List<string> excludes)
    {
        var assembly = Assembly.LoadFrom(path);   // LoadFrom: the assembly's own folder resolves its dependencies
        var name = assembly.GetName().Name ?? Path.GetFileNameWithoutExtension(path);
        var diagnostics = new Sink();
        var framework = new XunitTestFramework(diagnostics);
        var options = new Options();
        options.SetValue("xunit.discovery.PreEnumerateTheories", true);
        options.SetValue("xunit.execution.SynchronousMessageReporting", true);

        var discovery = new Sink();
        using (var discoverer = framework.GetDiscoverer(Reflector.Wrap(assembly)))
        {
            discoverer.Find(includeSourceInformation: false, discovery, options);
            discovery.Done.Wait();
        }
        var selected = discovery.TestCases
            .Where(t => filters.Count == 0 || filters.Any(f => t.DisplayName.Contains(f, StringComparison.Ordinal)))
            .Where(t => !excludes.Any(x => t.DisplayName.Contains(x, StringComparison.Ordinal)))
            .ToList();
        Console.WriteLine($"{name}: {selected.Count} of {discovery.TestCases.Count} test cases selected");

        var execution = new Sink();
        var clock = Stopwatch.StartNew();
        using (var executor = framework.GetExecutor(assembly.GetName()))
        {
            executor.RunTests(selected, execution, options);
            execution.Done.Wait();
        }
        var seconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"{name}: passed {execution.Passed}, failed {execution.Failed.Count}, skipped {execution.Skipped} ({seconds:F1} s)");
        return new(name, execution.Passed, execution.Failed, execution.Skipped, seconds);
    }

    private static string Markdown(List<AssemblyResult> results)
    {
        var w = new StringWriter();
        w.WriteLine("| assembly | passed | failed | skipped | seconds |");
        w.WriteLine("|---|---|---|---|---|");
        foreach (var r in results) w.WriteLine($"| {r.Name} | {r.Passed} | {r.Failed.Count} | {r.Skipped} | {r.Seconds:F1} |");
        foreach (var r in results.Where(r => r.Failed.Count > 0))
        {
            w.WriteLine();
            w.WriteLine($"Failed in {r.Name}:");
            foreach (var f in r.Failed) w.WriteLine($"- {f}");
        }
        return w.ToString();
    }

    /// <summary>Collects discovery and execution messages; <see cref="Done"/> is set by the closing message.</summary>
    private sealed class Sink : Xunit.LongLivedMarshalByRefObject, IMessageSink
    {
        public readonly ManualResetEventSlim Done = new();
        public readonly List<ITestCase> TestCases = [];
        public readonly List<string> Failed = [];
        public int Passed, Skipped;

        public bool OnMessage(IMessageSinkMessage message)
        {
            switch (message)
            {
                case ITestCaseDiscoveryMessage d: lock (TestCases) TestCases.Add(d.TestCase); break;
                case IDiscoveryCompleteMessage: Done.Set(); break;
                case ITestPassed: Interlocked.Increment(ref Passed); break;
                case ITestSkipped: Interlocked.Increment(ref Skipped); break;
                case ITestFailed f:
                    var first = (f.Messages.FirstOrDefault() ?? "").Split('\n')[0].Trim();
                    var where = (f.StackTraces.FirstOrDefault() ?? "").Split('\n').FirstOrDefault(l => l.Contains(" in ", StringComparison.Ordinal) || l.Contains(" at ", StringComparison.Ordinal))?.Trim();
                    lock (Failed) Failed.Add($"{f.Test.DisplayName}: {first}");
                    Console.WriteLine($"FAIL {f.Test.DisplayName}\n     {first}{(where is null ? "" : "\n     " + where)}");
                    break;
                case IErrorMessage e:
                    lock (Failed) Failed.Add($"(error) {string.Join(" ", e.Messages)}");
                    Console.WriteLine($"ERROR {string.Join(" ", e.Messages)}");
                    break;
                case ITestAssemblyFinished: Done.Set(); break;
            }
            return true;
        }
    }

    /// <summary>Discovery and execution options as a name → value map (what xunit's runners pass).</summary>
    private sealed class Options : ITestFrameworkDiscoveryOptions, ITestFrameworkExecutionOptions
    {
        private readonly Dictionary<string, object?> _values = new();
        public TValue GetValue<TValue>(string name) => _values.TryGetValue(name, out var v) && v is TValue t ? t : default!;
        public void SetValue<TValue>(string name, TValue value) => _values[name] = value;
    }
}
