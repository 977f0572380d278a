using Rlhf.Torch;

namespace Rlhf.Core;

using Torch = Rlhf.Torch.Torch;

/// <summary>Shape and argument checks shared by the pure functions: fail early with the names and numbers involved.</summary>
internal static class Guard
{
    /// <summary>Throws unless <paramref name="t"/> has rank <paramref name="rank"/>.</summary>
    public static void Rank(Tensor t, int rank, string name)
    {
        if (t.Dim != rank)
            throw new ArgumentException($"{name} must have rank {rank}; got shape [{string.Join(", ", t.Shape)}]", name);
    }

    /// <summary>Throws unless both tensors have the same shape.</summary>
    public static void SameShape(Tensor a, string an, Tensor b, string bn)
    {
        var sa = a.Shape;
        var sb = b.Shape;
        if (!sa.SequenceEqual(sb))
            throw new ArgumentException($"{an} [{string.Join(", ", sa)}] and {bn} [{string.Join(", ", sb)}] must have the same shape");
    }

    /// <summary>Throws unless <paramref name="t"/> is [B] with B = <paramref name="b"/>.</summary>
    public static void Vector(Tensor t, long b, string name)
    {
        if (t.Dim != 1 || t.Size(0) != b)
            throw new ArgumentException($"{name} must be [{b}]; got [{string.Join(", ", t.Shape)}]", name);
    }

    /// <summary>Throws unless <paramref name="cond"/> holds.</summary>
    public static void That(bool cond, string message)
    {
        if (!cond) throw new ArgumentException(message);
    }

    /// <summary><c>a + c</c> for an int64 index tensor, staying int64 (the binding passes integral scalars to integer tensors as integers).</summary>
    public static Tensor IndexAdd(Tensor a, long c) => a.Long() + c;

    /// <summary>A mask as bool (non-zero = active).</summary>
    public static Tensor BoolMask(Tensor mask) => mask.Dtype == ScalarType.Bool ? mask : mask.Ne(0);
}
