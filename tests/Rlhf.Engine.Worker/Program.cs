using Rlhf.Engine.Worker;

// Entry: `dotnet Rlhf.Engine.Worker.dll <scenario> [key=value ...]`. Exit 0 = the scenario's own checks passed.
try
{
    return Scenarios.Run(args);
}
catch (Exception e)
{
    Console.Error.WriteLine($"worker failed: {e.GetType().Name}: {e.Message}");
    Console.Error.WriteLine(e.StackTrace);
    return 3;
}
