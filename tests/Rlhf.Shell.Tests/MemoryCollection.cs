namespace Rlhf.Shell.Tests;

/// <summary>
/// Tests that assert on the process-wide <c>Torch.LiveTensors</c>/<c>LiveBytes</c> counters: xunit runs this
/// collection alone, after the parallel ones, so no other test's tensors move the counters mid-assertion.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Memory";
}
