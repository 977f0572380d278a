namespace Rlhf.Torch;

/// <summary>Kinds of device a tensor lives on.</summary>
public enum DeviceType { Cpu = 0, Cuda = 1 }

/// <summary>A device: <c>cpu</c> or <c>cuda:N</c>. CUDA works only when the linked libtorch has it.</summary>
public readonly record struct Device(DeviceType Type, int Index = -1)
{
    /// <summary>The CPU.</summary>
    public static readonly Device Cpu = new(DeviceType.Cpu);

    /// <summary>CUDA device <paramref name="index"/>.</summary>
    public static Device Cuda(int index = 0) => new(DeviceType.Cuda, index);

    /// <summary>Parses <c>cpu</c>, <c>cuda</c>, <c>cuda:1</c>.</summary>
    public static Device Parse(string s)
    {
        var t = s.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda") return Cuda(0);
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0) return Cuda(i);
        throw new FormatException($"unknown device '{s}': expected cpu, cuda or cuda:N");
    }

    /// <inheritdoc />
    public override string ToString() => Type == DeviceType.Cpu ? "cpu" : $"cuda:{Math.Max(Index, 0)}";

    internal int NativeIndex => Type == DeviceType.Cpu ? -1 : Math.Max(Index, 0);
}
