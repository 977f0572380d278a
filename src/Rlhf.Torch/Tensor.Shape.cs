using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

public sealed partial class Tensor
{
    /// <summary>A view with another shape (one dimension may be −1); needs compatible strides.</summary>
    public unsafe Tensor View(params long[] shape) { fixed (long* p = shape) return Wrap(N.rt_view(H, p, shape.Length)); }
    /// <summary>Another shape, as a view when possible, else a copy.</summary>
    public unsafe Tensor Reshape(params long[] shape) { fixed (long* p = shape) return Wrap(N.rt_reshape(H, p, shape.Length)); }
    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(long d0, long d1) => Wrap(N.rt_transpose(H, d0, d1));
    /// <summary>Transpose of a 2-D tensor.</summary>
    public Tensor T => Transpose(0, 1);
    /// <summary>Reorders dimensions.</summary>
    public unsafe Tensor Permute(params long[] dims) { fixed (long* p = dims) return Wrap(N.rt_permute(H, p, dims.Length)); }
    /// <summary>Elements [start, start+length) along a dimension (a view).</summary>
    public Tensor Narrow(long dim, long start, long length) => Wrap(N.rt_narrow(H, dim, start, length));
    /// <summary>Python slicing <c>t[..., start:end:step]</c> along one dimension (a view; negative indices count from the end).</summary>
    public Tensor Slice(long dim, long start, long end, long step = 1) => Wrap(N.rt_slice(H, dim, start, end, step));
    /// <summary>Index <paramref name="index"/> along a dimension, which disappears (a view).</summary>
    public Tensor Select(long dim, long index) => Wrap(N.rt_select(H, dim, index));
    /// <summary><c>t[i]</c>: index along the first dimension.</summary>
    [System.Runtime.CompilerServices.IndexerName("At")]
    public Tensor this[long index] => Select(0, index);
    /// <summary>Removes every dimension of size 1.</summary>
    public Tensor Squeeze() => Wrap(N.rt_squeeze(H));
    /// <summary>Removes dimension <paramref name="dim"/> if its size is 1.</summary>
    public Tensor Squeeze(long dim) => Wrap(N.rt_squeeze_dim(H, dim));
    /// <summary>Inserts a dimension of size 1.</summary>
    public Tensor Unsqueeze(long dim) => Wrap(N.rt_unsqueeze(H, dim));
    /// <summary>Merges dimensions start..end into one.</summary>
    public Tensor Flatten(long start = 0, long end = -1) => Wrap(N.rt_flatten(H, start, end));
    /// <summary>Broadcasts size-1 dimensions to a shape (a view; −1 keeps a size).</summary>
    public unsafe Tensor Expand(params long[] shape) { fixed (long* p = shape) return Wrap(N.rt_expand(H, p, shape.Length)); }
    /// <summary>Tiles the tensor (<c>torch.Tensor.repeat</c>).</summary>
    public unsafe Tensor Repeat(params long[] reps) { fixed (long* p = reps) return Wrap(N.rt_repeat(H, p, reps.Length)); }
    /// <summary>Repeats each element <paramref name="repeats"/> times along a dimension.</summary>
    public Tensor RepeatInterleave(long repeats, long dim) => Wrap(N.rt_repeat_interleave(H, repeats, dim));
    /// <summary>Repeats element i <c>repeats[i]</c> times along a dimension.</summary>
    public Tensor RepeatInterleave(Tensor repeats, long dim) => Wrap(N.rt_repeat_interleave_t(H, repeats.H, dim));
    /// <summary>Reverses the order along dimensions.</summary>
    public unsafe Tensor Flip(params long[] dims) { fixed (long* p = dims) return Wrap(N.rt_flip(H, p, dims.Length)); }
    /// <summary>A row-major copy if needed (the tensor itself if already contiguous).</summary>
    public Tensor Contiguous() => Wrap(N.rt_contiguous(H));
    /// <summary>Lower triangle (elements with col − row ≤ k).</summary>
    public Tensor Tril(long k = 0) => Wrap(N.rt_tril(H, k));
    /// <summary>Upper triangle (elements with col − row ≥ k).</summary>
    public Tensor Triu(long k = 0) => Wrap(N.rt_triu(H, k));
    /// <summary>Rolls elements along a dimension.</summary>
    public Tensor Roll(long shift, long dim) => Wrap(N.rt_roll(H, shift, dim));

    /// <summary>Rows (along <paramref name="dim"/>) picked by an int64 index vector.</summary>
    public Tensor IndexSelect(long dim, Tensor index) => Wrap(N.rt_index_select(H, dim, index.H));
    /// <summary>out[i][j] = this[i][index[i][j]] for dim 1 (<c>torch.gather</c>).</summary>
    public Tensor Gather(long dim, Tensor index) => Wrap(N.rt_gather(H, dim, index.H));
    /// <summary>Writes src at index along dim (<c>torch.scatter</c>).</summary>
    public Tensor Scatter(long dim, Tensor index, Tensor src) => Wrap(N.rt_scatter(H, dim, index.H, src.H));
    /// <summary>Adds src at index along dim (<c>torch.scatter_add</c>).</summary>
    public Tensor ScatterAdd(long dim, Tensor index, Tensor src) => Wrap(N.rt_scatter_add(H, dim, index.H, src.H));
    /// <summary>In-place scatter.</summary>
    public Tensor Scatter_(long dim, Tensor index, Tensor src) { Check(N.rt_scatter_(H, dim, index.H, src.H)); return this; }
    /// <summary>In-place scatter-add.</summary>
    public Tensor ScatterAdd_(long dim, Tensor index, Tensor src) { Check(N.rt_scatter_add_(H, dim, index.H, src.H)); return this; }
    /// <summary>Copies rows of src into this at index along dim (the KV-cache write).</summary>
    public Tensor IndexCopy_(long dim, Tensor index, Tensor src) { Check(N.rt_index_copy_(H, dim, index.H, src.H)); return this; }
    /// <summary>Out-of-place index_copy (differentiable).</summary>
    public Tensor IndexCopy(long dim, Tensor index, Tensor src) => Wrap(N.rt_index_copy(H, dim, index.H, src.H));
    /// <summary>Fills rows at index along dim with a value.</summary>
    public Tensor IndexFill_(long dim, Tensor index, double value) { Check(N.rt_index_fill_(H, dim, index.H, value)); return this; }
    /// <summary>Adds rows of src at index along dim.</summary>
    public Tensor IndexAdd_(long dim, Tensor index, Tensor src) { Check(N.rt_index_add_(H, dim, index.H, src.H)); return this; }

    /// <summary>Advanced indexing <c>t[i0, i1, …]</c>; a null index stands for <c>:</c>.</summary>
    public unsafe Tensor Index(params Tensor?[] indices)
    {
        var hs = Handles(indices);
        fixed (nint* p = hs)
        {
            var r = Wrap(N.rt_index(H, p, hs.Length));
            GC.KeepAlive(indices);
            return r;
        }
    }

    /// <summary><c>t[i0, i1, …] = values</c> (or += with accumulate) in place.</summary>
    public unsafe Tensor IndexPut_(Tensor?[] indices, Tensor values, bool accumulate = false)
    {
        var hs = Handles(indices);
        fixed (nint* p = hs) Check(N.rt_index_put_(H, p, hs.Length, values.H, accumulate ? 1 : 0));
        GC.KeepAlive(indices);
        return this;
    }

    /// <summary>Out-of-place <see cref="IndexPut_"/> (differentiable).</summary>
    public unsafe Tensor IndexPut(Tensor?[] indices, Tensor values, bool accumulate = false)
    {
        var hs = Handles(indices);
        fixed (nint* p = hs)
        {
            var r = Wrap(N.rt_index_put(H, p, hs.Length, values.H, accumulate ? 1 : 0));
            GC.KeepAlive(indices);
            return r;
        }
    }

    /// <summary>Replaces elements where mask is true.</summary>
    public Tensor MaskedFill(Tensor mask, double value) => Wrap(N.rt_masked_fill(H, mask.H, value));
    /// <summary>In-place masked fill.</summary>
    public Tensor MaskedFill_(Tensor mask, double value) { Check(N.rt_masked_fill_(H, mask.H, value)); return this; }
    /// <summary>The elements where mask is true, as a vector.</summary>
    public Tensor MaskedSelect(Tensor mask) => Wrap(N.rt_masked_select(H, mask.H));
    /// <summary>Indices of the non-zero elements, [n, dim].</summary>
    public Tensor Nonzero() => Wrap(N.rt_nonzero(H));

    /// <summary>Pieces of <paramref name="size"/> along dim (the last may be smaller).</summary>
    public unsafe Tensor[] Split(long size, long dim = 0)
    {
        var len = SizeOrZero(dim);
        // A non-positive size is libtorch's to reject (with its message); only size the buffer here.
        var cap = size > 0 ? (int)Math.Max(1, (len + size - 1) / size) : 1;
        var o = new nint[cap];
        int n;
        fixed (nint* p = o) Check(N.rt_split(H, size, dim, p, cap, &n));
        return WrapMany(o, n);
    }

    /// <summary>Pieces of the given sizes along dim.</summary>
    public unsafe Tensor[] Split(long[] sizes, long dim = 0)
    {
        var o = new nint[sizes.Length];
        int n;
        fixed (long* s = sizes)
        fixed (nint* p = o) Check(N.rt_split_sizes(H, s, sizes.Length, dim, p, o.Length, &n));
        return WrapMany(o, n);
    }

    /// <summary>At most <paramref name="chunks"/> near-equal pieces along dim.</summary>
    public unsafe Tensor[] Chunk(long chunks, long dim = 0)
    {
        var o = new nint[Math.Max(1, chunks)]; // chunks ≤ 0 is libtorch's to reject
        int n;
        fixed (nint* p = o) Check(N.rt_chunk(H, chunks, dim, p, o.Length, &n));
        return WrapMany(o, n);
    }

    /// <summary>Slices along dim, which disappears.</summary>
    public unsafe Tensor[] Unbind(long dim = 0)
    {
        var o = new nint[Math.Max(1, SizeOrZero(dim))]; // a bad dim is libtorch's to reject
        int n;
        fixed (nint* p = o) Check(N.rt_unbind(H, dim, p, o.Length, &n));
        return WrapMany(o, n);
    }

    /// <summary>Size of a dimension, or 0 when it is out of range (so that libtorch reports the error).</summary>
    private long SizeOrZero(long dim)
    {
        var s = Shape;
        var d = dim < 0 ? dim + s.Length : dim;
        return d >= 0 && d < s.Length ? s[d] : 0;
    }

    internal static Tensor[] WrapMany(nint[] handles, int n)
    {
        var r = new Tensor[n];
        for (var i = 0; i < n; i++) r[i] = new Tensor(handles[i]);
        return r;
    }

    /// <summary>Raw handles of a list argument (0 for null). A disposed tensor is refused here: its raw pointer
    /// would reach native code as freed memory (single-tensor arguments get this check from SafeHandle marshalling).</summary>
    internal static nint[] Handles(IReadOnlyList<Tensor?> ts)
    {
        var hs = new nint[ts.Count];
        for (var i = 0; i < hs.Length; i++)
        {
            if (ts[i] is not { } t) continue;
            ObjectDisposedException.ThrowIf(t.IsDisposed, t);
            hs[i] = t.H.DangerousGetHandle();
        }
        return hs;
    }
}
