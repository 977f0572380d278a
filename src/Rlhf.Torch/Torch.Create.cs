using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

public static partial class Torch
{
    private static int Dt(ScalarType t) => (int)t;
    private static int DevT(Device? d) => (int)(d ?? DefaultDevice).Type;
    private static int DevI(Device? d) => (d ?? DefaultDevice).NativeIndex;

    /// <summary>The variable that sets <see cref="DefaultDevice"/> at start-up (e.g. <c>cuda:0</c>).</summary>
    public const string DefaultDeviceVariable = "RLHF_DEFAULT_DEVICE";

    private static readonly Lazy<Device> ProcessDefaultDevice = new(DefaultDeviceFromEnvironment);
    [ThreadStatic] private static Device? _threadDefaultDevice;

    /// <summary>
    /// Where factory functions (and new generators) put a tensor when no device is passed — <c>torch.set_default_device</c>,
    /// and like it, setting it affects the calling thread only. Unset, it is CPU unless <c>RLHF_DEFAULT_DEVICE</c> names
    /// another device for the whole process (how the binding's tests run on a GPU); null restores that.
    /// </summary>
    public static Device DefaultDevice
    {
        get => _threadDefaultDevice ?? ProcessDefaultDevice.Value;
        set => _threadDefaultDevice = value;
    }

    /// <summary>Sets (or with null, clears) the calling thread's <see cref="DefaultDevice"/>.</summary>
    public static void SetDefaultDevice(Device? device) => _threadDefaultDevice = device;

    private static Device DefaultDeviceFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(DefaultDeviceVariable);
        if (string.IsNullOrWhiteSpace(text)) return Device.Cpu;
        try { return Device.Parse(text); }
        catch (FormatException e) { throw new FormatException($"{DefaultDeviceVariable}={text}: {e.Message}", e); }
    }

    /// <summary>Uninitialised tensor.</summary>
    public static unsafe Tensor Empty(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_empty(p, shape.Length, Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Zeros.</summary>
    public static unsafe Tensor Zeros(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_zeros(p, shape.Length, Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Ones.</summary>
    public static unsafe Tensor Ones(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_ones(p, shape.Length, Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Filled with a value.</summary>
    public static unsafe Tensor Full(long[] shape, double value, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_full(p, shape.Length, value, Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Filled with an integer value (exact for all of int64).</summary>
    public static unsafe Tensor Full(long[] shape, long value, ScalarType dtype = ScalarType.Int64, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_full_long(p, shape.Length, value, Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>A 0-dimensional tensor holding one value.</summary>
    public static Tensor Scalar(double value, ScalarType dtype = ScalarType.Float32, Device? device = null) => Full([], value, dtype, device);
    /// <summary>[start, end) in steps (int64 by default, like <c>torch.arange</c> over integers).</summary>
    public static Tensor Arange(long start, long end, long step = 1, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Tensor.Wrap(N.rt_arange(start, end, step, Dt(dtype), DevT(device), DevI(device)));
    /// <summary>[0, end).</summary>
    public static Tensor Arange(long end, ScalarType dtype = ScalarType.Int64, Device? device = null) => Arange(0, end, 1, dtype, device);
    /// <summary>Floating-point range [start, end) in steps.</summary>
    public static Tensor Arange(double start, double end, double step, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Tensor.Wrap(N.rt_arange(start, end, step, Dt(dtype), DevT(device), DevI(device)));
    /// <summary>Evenly spaced values from start to end inclusive.</summary>
    public static Tensor Linspace(double start, double end, long steps, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Tensor.Wrap(N.rt_linspace(start, end, steps, Dt(dtype), DevT(device), DevI(device)));
    /// <summary>Identity matrix.</summary>
    public static Tensor Eye(long n, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        Tensor.Wrap(N.rt_eye(n, Dt(dtype), DevT(device), DevI(device)));
    /// <summary>Zeros shaped, typed and placed like t.</summary>
    public static Tensor ZerosLike(Tensor t) => Tensor.Wrap(N.rt_zeros_like(t.H));
    /// <summary>Ones shaped, typed and placed like t.</summary>
    public static Tensor OnesLike(Tensor t) => Tensor.Wrap(N.rt_ones_like(t.H));
    /// <summary>Uninitialised, shaped like t.</summary>
    public static Tensor EmptyLike(Tensor t) => Tensor.Wrap(N.rt_empty_like(t.H));
    /// <summary>A value, shaped like t.</summary>
    public static Tensor FullLike(Tensor t, double value) => Tensor.Wrap(N.rt_full_like(t.H, value));

    /// <summary>Standard normal samples from <paramref name="generator"/> (the global one when null).</summary>
    public static unsafe Tensor Randn(long[] shape, Generator? generator = null, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_randn(p, shape.Length, Generator.H(generator), Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Uniform [0, 1) samples.</summary>
    public static unsafe Tensor Rand(long[] shape, Generator? generator = null, ScalarType dtype = ScalarType.Float32, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_rand(p, shape.Length, Generator.H(generator), Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>Uniform integers in [low, high).</summary>
    public static unsafe Tensor Randint(long low, long high, long[] shape, Generator? generator = null, ScalarType dtype = ScalarType.Int64, Device? device = null)
    { fixed (long* p = shape) return Tensor.Wrap(N.rt_randint(low, high, p, shape.Length, Generator.H(generator), Dt(dtype), DevT(device), DevI(device))); }
    /// <summary>A random permutation of [0, n).</summary>
    public static Tensor Randperm(long n, Generator? generator = null, ScalarType dtype = ScalarType.Int64, Device? device = null) =>
        Tensor.Wrap(N.rt_randperm(n, Generator.H(generator), Dt(dtype), DevT(device), DevI(device)));

    /// <summary>A tensor copied from .NET values, shaped as given (a vector when no shape).</summary>
    public static unsafe Tensor From<T>(ReadOnlySpan<T> data, long[]? shape = null, Device? device = null) where T : unmanaged
    {
        shape ??= [data.Length];
        fixed (T* d = data)
        fixed (long* s = shape)
            return Tensor.Wrap(N.rt_from_data(d, (long)data.Length * sizeof(T), s, shape.Length, Dt(ScalarTypes.Of<T>()), DevT(device), DevI(device)));
    }

    /// <summary>A tensor copied from .NET values.</summary>
    public static Tensor From<T>(T[] data, params long[] shape) where T : unmanaged => From<T>((ReadOnlySpan<T>)data, shape.Length == 0 ? null : shape);

    /// <summary>A 2-D tensor from a rectangular array.</summary>
    public static Tensor From<T>(T[,] data) where T : unmanaged
    {
        var flat = new T[data.Length];
        var k = 0;
        foreach (var v in data) flat[k++] = v;
        return From<T>(flat, data.GetLength(0), data.GetLength(1));
    }

    /// <summary>A tensor of any dtype (bf16 and f16 included) from raw little-endian bytes.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes, long[] shape, ScalarType dtype, Device? device = null)
    {
        fixed (byte* d = bytes)
        fixed (long* s = shape)
            return Tensor.Wrap(N.rt_from_data(d, bytes.Length, s, shape.Length, Dt(dtype), DevT(device), DevI(device)));
    }

    /// <summary>Concatenates along an existing dimension.</summary>
    public static unsafe Tensor Cat(IReadOnlyList<Tensor> tensors, long dim = 0)
    {
        var hs = Tensor.Handles(tensors);
        fixed (nint* p = hs)
        {
            var r = Tensor.Wrap(N.rt_cat(p, hs.Length, dim));
            GC.KeepAlive(tensors);
            return r;
        }
    }

    /// <summary>Stacks along a new dimension.</summary>
    public static unsafe Tensor Stack(IReadOnlyList<Tensor> tensors, long dim = 0)
    {
        var hs = Tensor.Handles(tensors);
        fixed (nint* p = hs)
        {
            var r = Tensor.Wrap(N.rt_stack(p, hs.Length, dim));
            GC.KeepAlive(tensors);
            return r;
        }
    }

    /// <summary>Elementwise choice: a where cond, else b.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b) => Tensor.Wrap(N.rt_where(cond.H, a.H, b.H));

    /// <summary>Elementwise choice: a where cond, else the scalar b.</summary>
    public static Tensor Where(Tensor cond, Tensor a, double b) => Tensor.Wrap(N.rt_where_scalar(cond.H, a.H, b));

    /// <summary>beta·bias + alpha·(a @ b).</summary>
    public static Tensor Addmm(Tensor bias, Tensor a, Tensor b, double beta = 1, double alpha = 1) => Tensor.Wrap(N.rt_addmm(bias.H, a.H, b.H, beta, alpha));

    /// <summary>Batched beta·bias + alpha·(a @ b).</summary>
    public static Tensor Baddbmm(Tensor bias, Tensor a, Tensor b, double beta = 1, double alpha = 1) => Tensor.Wrap(N.rt_baddbmm(bias.H, a.H, b.H, beta, alpha));
}
