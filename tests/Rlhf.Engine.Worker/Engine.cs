namespace Rlhf.Engine.Worker;

internal static partial class Scenarios
{
    private static int RunEngine(string name, Dictionary<string, string> kv) => throw new ArgumentException($"unknown scenario '{name}'");
}
