using Rlhf.Bench;

// Benchmark dispatcher: `dotnet run -c Release --project bench/Rlhf.Bench -- <suite> [args]`.
var suites = new Dictionary<string, Func<string[], int>>
{
    ["engine"] = EngineBench.Run,
    ["engine-worker"] = EngineBench.Worker,
};
if (args.Length == 0 || !suites.TryGetValue(args[0], out var suite))
{
    Console.Error.WriteLine("usage: Rlhf.Bench <suite> [args]; suites: " + string.Join(", ", suites.Keys));
    return 2;
}
return suite(args[1..]);
