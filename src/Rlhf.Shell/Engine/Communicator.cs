using System.Diagnostics;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The engine's collectives over one process group (null: one process), timed. Every rank must issue the same
/// collectives in the same order; with one rank each is a no-op.
/// </summary>
internal sealed class Communicator(ProcessGroup? group)
{
    private readonly Stopwatch clock = new();

    /// <summary>The process group (null for one process).</summary>
    public ProcessGroup? Group => group;
    /// <summary>This rank.</summary>
    public int Rank { get; } = group?.Rank ?? 0;
    /// <summary>Data-parallel world size.</summary>
    public int WorldSize { get; } = group?.Size ?? 1;
    /// <summary>True when collectives actually communicate (more than one rank).</summary>
    public bool Active => group is not null && WorldSize > 1;
    /// <summary>Seconds spent inside collectives (issue + wait).</summary>
    public double Seconds => clock.Elapsed.TotalSeconds;

    /// <summary>Runs <paramref name="op"/> and waits for it (no-op with one rank).</summary>
    public void Run(Func<ProcessGroup, Work> op)
    {
        if (!Active) return;
        clock.Start();
        try { op(group!).Wait(); }
        finally { clock.Stop(); }
    }

    /// <summary>All-reduces (SUM) a double across ranks in fp64.</summary>
    public double Sum(double value)
    {
        if (!Active) return value;
        using var scope = Torch.NewScope();
        var t = Torch.From([value], 1);
        Run(g => g.AllReduce(t));
        return t.Item();
    }

    /// <summary>Every rank waits for every other.</summary>
    public void Barrier() => Run(g => g.Barrier());
}
