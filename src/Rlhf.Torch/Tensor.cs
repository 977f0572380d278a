using System.Runtime.InteropServices;
using Rlhf.Torch.Native;
using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary>
/// A libtorch tensor. Owns one native handle; dispose it, or let the enclosing <see cref="TensorScope"/>
/// dispose it. Finalizers are only a safety net: the GC does not see native memory.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    internal readonly TensorHandle H;

    internal Tensor(IntPtr handle)
    {
        H = new TensorHandle(handle);
        var scope = TensorScope.Current;
        if (scope is not null)
        {
            Owner = scope;
            scope.Add(this);
        }
    }

    /// <summary>Wraps a native result, throwing the shim's error when it is NULL.</summary>
    internal static Tensor Wrap(IntPtr p) => new(Check(p));

    internal static IntPtr Check(IntPtr p)
    {
        if (p == IntPtr.Zero) ThrowLastError();
        return p;
    }

    internal static void Check(int rc)
    {
        if (rc != 0) ThrowLastError();
    }

    internal static void ThrowLastError() => throw new TorchException(TakeError() ?? "libtorch call failed without a message");

    /// <summary>The shim's last error message on this thread (null when none), which taking clears.</summary>
    internal static string? TakeError()
    {
        var p = N.rt_take_error();
        if (p == IntPtr.Zero) return null;
        var msg = Marshal.PtrToStringUTF8(p) ?? "";
        N.rt_free_string(p);
        return msg;
    }

    internal static string TakeString(IntPtr p)
    {
        Check(p);
        var s = Marshal.PtrToStringUTF8(p) ?? "";
        N.rt_free_string(p);
        return s;
    }

    internal TensorScope? Owner { get; set; }

    /// <summary>True once the native tensor has been released.</summary>
    public bool IsDisposed => H.IsClosed;

    /// <summary>Releases the native tensor now.</summary>
    public void Dispose() => H.Dispose();

    /// <summary>Hands this tensor to the scope outside its current one (or to no scope) and returns it.</summary>
    public Tensor MoveToOuter()
    {
        if (Owner is { } s)
        {
            Owner = s.Outer;
            s.Outer?.Add(this);
        }
        return this;
    }

    /// <summary>Removes this tensor from every scope: the caller now disposes it.</summary>
    public Tensor DetachFromScope()
    {
        Owner = null;
        return this;
    }

    // ---- queries ----

    /// <summary>Number of dimensions.</summary>
    public int Dim => N.rt_tensor_ndim(H);

    /// <summary>The sizes of every dimension.</summary>
    public unsafe long[] Shape
    {
        get
        {
            var s = new long[Dim];
            fixed (long* p = s) Check(N.rt_tensor_shape(H, p));
            return s;
        }
    }

    /// <summary>The strides of every dimension, in elements.</summary>
    public unsafe long[] Strides
    {
        get
        {
            var s = new long[Dim];
            fixed (long* p = s) Check(N.rt_tensor_strides(H, p));
            return s;
        }
    }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public long Size(int dim)
    {
        var s = Shape;
        var d = dim < 0 ? s.Length + dim : dim;
        if (d < 0 || d >= s.Length)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"Dimension out of range (expected to be in range of [{-s.Length}, {s.Length - 1}], but got {dim})");
        return s[d];
    }

    /// <summary>Number of elements.</summary>
    public long NumEl => N.rt_tensor_numel(H);

    /// <summary>Element type.</summary>
    public ScalarType Dtype => (ScalarType)N.rt_tensor_dtype(H);

    /// <summary>Bytes per element.</summary>
    public int ElementSize => N.rt_tensor_element_size(H);

    /// <summary>Bytes of the elements (numel × element size).</summary>
    public long NumBytes => NumEl * ElementSize;

    /// <summary>The device the tensor lives on.</summary>
    public Device Device => N.rt_tensor_device_type(H) == 0 ? Device.Cpu : Device.Cuda(N.rt_tensor_device_index(H));

    /// <summary>True when the elements are laid out row-major without gaps.</summary>
    public bool IsContiguous => N.rt_tensor_is_contiguous(H) != 0;

    /// <summary>Whether autograd records operations on this tensor.</summary>
    public bool RequiresGrad
    {
        get => N.rt_tensor_requires_grad(H) != 0;
        set => Check(N.rt_requires_grad_(H, value ? 1 : 0));
    }

    /// <summary>True for tensors created by the user rather than by a recorded operation.</summary>
    public bool IsLeaf => N.rt_tensor_is_leaf(H) != 0;

    /// <summary>True when autograd recorded the operation that produced this tensor.</summary>
    public bool HasGradFn => N.rt_tensor_has_grad_fn(H) != 0;

    /// <summary>The name of the autograd node that made this tensor (libtorch's, e.g. <c>MmBackward0</c>); "" for a leaf.</summary>
    public string GradFnName => TakeString(N.rt_tensor_grad_fn_name(H));

    // ---- data ----

    /// <summary>The single element as a double.</summary>
    public unsafe double Item()
    {
        double v;
        Check(N.rt_tensor_item_double(H, &v));
        return v;
    }

    /// <summary>The single element as a long.</summary>
    public unsafe long ItemLong()
    {
        long v;
        Check(N.rt_tensor_item_long(H, &v));
        return v;
    }

    /// <summary>The single element as <typeparamref name="T"/>.</summary>
    public T Item<T>() where T : unmanaged
    {
        var a = ToArray<T>();
        if (a.Length != 1) throw new InvalidOperationException($"Item() needs one element; tensor has {a.Length}");
        return a[0];
    }

    /// <summary>Copies the elements (row-major) into a new array; <typeparamref name="T"/> must match the dtype's size.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        var a = new T[NumEl];
        CopyTo<T>(a);
        return a;
    }

    /// <summary>Copies the elements (row-major) into <paramref name="dst"/>, whose length must equal <see cref="NumEl"/>.</summary>
    public unsafe void CopyTo<T>(Span<T> dst) where T : unmanaged
    {
        if (ScalarTypes.Of<T>() != Dtype)
            throw new InvalidOperationException($"tensor dtype is {Dtype}; cannot copy into {typeof(T).Name} (convert with To() first, or use ToBytes())");
        fixed (T* p = dst) Check(N.rt_tensor_copy_to(H, p, (long)dst.Length * sizeof(T)));
    }

    /// <summary>Copies the raw bytes (row-major) into a new array — any dtype, bf16 included.</summary>
    public unsafe byte[] ToBytes()
    {
        var a = new byte[NumBytes];
        fixed (byte* p = a) Check(N.rt_tensor_copy_to(H, p, a.Length));
        return a;
    }

    /// <summary>A view of the elements of a contiguous CPU tensor; valid while the tensor lives.</summary>
    public unsafe Span<T> Data<T>() where T : unmanaged
    {
        if (Device.Type != DeviceType.Cpu) throw new InvalidOperationException("Data<T>() needs a CPU tensor");
        if (!IsContiguous) throw new InvalidOperationException("Data<T>() needs a contiguous tensor; call Contiguous() first");
        if (sizeof(T) != ElementSize) throw new InvalidOperationException($"tensor elements are {ElementSize} bytes; {typeof(T).Name} is {sizeof(T)}");
        return new Span<T>((void*)N.rt_tensor_data_ptr(H), checked((int)NumEl));
    }

    /// <summary>libtorch's printout of the tensor.</summary>
    public string Print() => TakeString(N.rt_tensor_to_string(H));

    /// <inheritdoc />
    public override string ToString() =>
        IsDisposed ? "Tensor(disposed)" : $"Tensor[{string.Join(", ", Shape)}] {Dtype} {Device}";
}
