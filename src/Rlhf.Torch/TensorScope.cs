namespace Rlhf.Torch;

/// <summary>
/// Deterministic native memory: every tensor created on this thread while the scope is innermost is
/// disposed when the scope ends, unless moved out (<see cref="Tensor.MoveToOuter"/>) or detached
/// (<see cref="Tensor.DetachFromScope"/>). Scopes nest; create them with <see cref="Torch.NewScope"/>.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? current;

    private readonly TensorScope? outer;
    private readonly List<Tensor> owned = new();
    private bool disposed;

    internal TensorScope()
    {
        outer = current;
        current = this;
    }

    internal static TensorScope? Current => current;

    /// <summary>The nearest enclosing scope that is still open (an outer scope disposed before this one is skipped).</summary>
    internal TensorScope? Outer
    {
        get
        {
            var s = outer;
            while (s is { disposed: true }) s = s.outer;
            return s;
        }
    }

    /// <summary>Number of tensors this scope will dispose.</summary>
    public int Count
    {
        get
        {
            var n = 0;
            foreach (var t in owned) if (ReferenceEquals(t.Owner, this) && !t.IsDisposed) n++;
            return n;
        }
    }

    internal void Add(Tensor t) => owned.Add(t);

    /// <summary>Adopts a tensor created elsewhere, so this scope disposes it.</summary>
    public Tensor Include(Tensor t)
    {
        t.Owner = this;
        owned.Add(t);
        return t;
    }

    /// <summary>Disposes every tensor still owned by this scope and makes the outer scope current.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in owned)
            if (ReferenceEquals(t.Owner, this)) t.Dispose();
        owned.Clear();
        // Skip outer scopes already disposed out of order, so no dead scope becomes current again.
        if (ReferenceEquals(current, this)) current = Outer;
    }
}
