using Rlhf.Torch;

namespace Rlhf.Shell.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The paged KV cache: per layer a K and a V tensor of [num_blocks, block_size, kv_heads, head_dim], allocated once
/// and owned here (dispose to free). Token slot <c>s = block · block_size + offset</c> is row s of the flat view
/// [num_blocks · block_size, kv_heads, head_dim].
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] k, v, kFlat, vFlat;

    /// <summary>Allocates zeroed K and V for every layer.</summary>
    public KvCache(int numLayers, int numBlocks, int blockSize, int kvHeads, long headDim, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (numLayers <= 0 || numBlocks <= 0 || blockSize <= 0 || kvHeads <= 0 || headDim <= 0)
            throw new ArgumentException($"KV cache dimensions must be positive: layers {numLayers}, blocks {numBlocks}, block size {blockSize}, kv heads {kvHeads}, head dim {headDim}");
        NumLayers = numLayers; NumBlocks = numBlocks; BlockSize = blockSize; KvHeads = kvHeads; HeadDim = headDim; Dtype = dtype;
        k = new Tensor[numLayers]; v = new Tensor[numLayers]; kFlat = new Tensor[numLayers]; vFlat = new Tensor[numLayers];
        for (var l = 0; l < numLayers; l++)
        {
            k[l] = Torch.Zeros([numBlocks, blockSize, kvHeads, headDim], dtype, device).DetachFromScope();             // [NB, bs, KV, hd]
            v[l] = Torch.Zeros([numBlocks, blockSize, kvHeads, headDim], dtype, device).DetachFromScope();
            kFlat[l] = k[l].View((long)numBlocks * blockSize, kvHeads, headDim).DetachFromScope();                     // [NB·bs, KV, hd]
            vFlat[l] = v[l].View((long)numBlocks * blockSize, kvHeads, headDim).DetachFromScope();
        }
    }

    /// <summary>Bytes one block takes over all layers, K and V.</summary>
    public static long BytesPerBlock(int numLayers, int blockSize, int kvHeads, long headDim, ScalarType dtype) =>
        2L * numLayers * blockSize * kvHeads * headDim * ScalarTypes.ElementSize(dtype);

    /// <summary>How many blocks fit in <paramref name="bytes"/> (the memory budget setting).</summary>
    public static int BlocksForBudget(long bytes, int numLayers, int blockSize, int kvHeads, long headDim, ScalarType dtype) =>
        (int)Math.Min(int.MaxValue, bytes / BytesPerBlock(numLayers, blockSize, kvHeads, headDim, dtype));

    /// <summary>Layers.</summary>
    public int NumLayers { get; }
    /// <summary>Physical blocks per layer.</summary>
    public int NumBlocks { get; }
    /// <summary>Token slots per block.</summary>
    public int BlockSize { get; }
    /// <summary>Key/value heads.</summary>
    public int KvHeads { get; }
    /// <summary>Head dimension.</summary>
    public long HeadDim { get; }
    /// <summary>Element type.</summary>
    public ScalarType Dtype { get; }

    /// <summary>Total bytes held.</summary>
    public long NumBytes => NumBlocks * BytesPerBlock(NumLayers, BlockSize, KvHeads, HeadDim, Dtype);

    /// <summary>Keys of a layer: [num_blocks, block_size, kv_heads, head_dim].</summary>
    public Tensor Keys(int layer) => k[layer];
    /// <summary>Values of a layer: [num_blocks, block_size, kv_heads, head_dim].</summary>
    public Tensor Values(int layer) => v[layer];
    /// <summary>Keys of a layer by slot: [num_blocks · block_size, kv_heads, head_dim] (a view).</summary>
    public Tensor KeySlots(int layer) => kFlat[layer];
    /// <summary>Values of a layer by slot: [num_blocks · block_size, kv_heads, head_dim] (a view).</summary>
    public Tensor ValueSlots(int layer) => vFlat[layer];

    /// <summary>Performs copy-on-write block copies (src → dst) in every layer.</summary>
    public void CopyBlocks(IReadOnlyList<BlockCopy> copies)
    {
        if (copies.Count == 0) return;
        using var scope = Torch.NewScope();
        var src = new long[copies.Count];
        var dst = new long[copies.Count];
        for (var i = 0; i < copies.Count; i++) { src[i] = copies[i].Src; dst[i] = copies[i].Dst; }
        var s = Torch.From<long>(src, null, k[0].Device);
        var d = Torch.From<long>(dst, null, k[0].Device);
        for (var l = 0; l < NumLayers; l++)
        {
            k[l].IndexCopy_(0, d, k[l].IndexSelect(0, s));
            v[l].IndexCopy_(0, d, v[l].IndexSelect(0, s));
        }
    }

    /// <summary>Frees the cache tensors.</summary>
    public void Dispose()
    {
        foreach (var t in kFlat) t.Dispose();
        foreach (var t in vFlat) t.Dispose();
        foreach (var t in k) t.Dispose();
        foreach (var t in v) t.Dispose();
    }
}
