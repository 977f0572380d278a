using Rlhf.Torch.Native;
using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary>A seeded random generator (<c>torch.Generator</c>); pass it to every random op for reproducibility.</summary>
public sealed class Generator : IDisposable
{
    internal readonly GeneratorHandle Handle;

    /// <summary>A generator seeded with <paramref name="seed"/> on a device (<see cref="Torch.DefaultDevice"/> by default).</summary>
    public Generator(ulong seed, Device? device = null)
    {
        var d = device ?? Torch.DefaultDevice;
        Handle = new GeneratorHandle(Tensor.Check(N.rt_generator_new(seed, (int)d.Type, d.NativeIndex)));
    }

    internal static GeneratorHandle H(Generator? g) => g?.Handle ?? GeneratorHandle.Null;

    /// <summary>The seed; setting it restarts the stream.</summary>
    public ulong Seed
    {
        get => N.rt_generator_seed(Handle);
        set => Tensor.Check(N.rt_generator_set_seed(Handle, value));
    }

    /// <summary>A snapshot of the generator's state (a uint8 tensor).</summary>
    public Tensor GetState() => Tensor.Wrap(N.rt_generator_get_state(Handle));

    /// <summary>Restores a snapshot from <see cref="GetState"/>.</summary>
    public void SetState(Tensor state) => Tensor.Check(N.rt_generator_set_state(Handle, state.H));

    /// <summary>Releases the native generator.</summary>
    public void Dispose() => Handle.Dispose();
}
