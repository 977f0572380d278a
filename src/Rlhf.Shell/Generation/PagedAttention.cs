using Rlhf.Torch;

namespace Rlhf.Shell.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// One sequence of a flattened batch, as attention sees it: it contributes its last <paramref name="QueryLength"/>
/// tokens (positions <c>ContextLength − QueryLength … ContextLength − 1</c>) and attends over all
/// <paramref name="ContextLength"/> tokens through its block table.
/// </summary>
/// <param name="QueryLength">Tokens computed this step (1 for decode, the uncached prompt for prefill).</param>
/// <param name="ContextLength">Tokens whose K/V the sequence attends over, the current ones included.</param>
/// <param name="BlockTable">Physical blocks in logical order (at least ⌈ContextLength / block_size⌉).</param>
public readonly record struct AttentionSeq(int QueryLength, int ContextLength, IReadOnlyList<int> BlockTable);

/// <summary>
/// The index tensors of one step, built once and shared by every layer: the slot of every new token, and for each
/// group of sequences with equal shape class (decode: one query; prefill: several) the gather of their queries,
/// cached keys and the "may attend" mask. Queries are padded only inside a group's attention (to its longest
/// query), never in the projections and MLP, which run on the flat tokens.
/// </summary>
public sealed class PagedAttentionMetadata : IDisposable
{
    private readonly List<Tensor> owned = new();

    /// <summary>One attention group: G sequences padded to maxQ queries and maxCtx keys.</summary>
    internal sealed class Group
    {
        public long G, MaxQ, MaxCtx;
        public Tensor? QueryIndex;   // [G·maxQ] flat token row of each padded query (null: the group is the whole batch in order, maxQ = 1)
        public Tensor KeySlots = null!;      // [G·maxCtx] cache slot of each key position (padding → a valid slot, masked)
        public Tensor? KeyRows;      // [G·KV·maxCtx] row of each (sequence, key/value head, key position) in the cache's [slots·KV, hd] view
        public long KeyRowsKv;       // the KV that KeyRows was built for
        public Tensor Blocked = null!;       // [G, 1, 1, maxQ, maxCtx] bool: true where attention is NOT allowed
        public Tensor? OutIndex;     // [Ng] padded row of each of the group's tokens, in flat order (null: identity)
        public Tensor? TokenIndex;   // [Ng] flat rows of the group's tokens (null when the group is the whole batch)
    }

    internal readonly List<Group> Groups = new();

    /// <summary>Cache slot of each new token, in flat order: [N] int64.</summary>
    public Tensor SlotMapping { get; }

    /// <summary>New tokens in the flat batch.</summary>
    public int NumTokens { get; }

    /// <summary>Block size the slots refer to.</summary>
    public int BlockSize { get; }

    /// <summary>Builds the step's index tensors for sequences laid out one after another in the flat batch.</summary>
    public PagedAttentionMetadata(IReadOnlyList<AttentionSeq> seqs, int blockSize, Device? device = null)
    {
        BlockSize = blockSize;
        using var scope = Torch.NewScope();
        try
        {
            var starts = new int[seqs.Count];
            var n = 0;
            for (var i = 0; i < seqs.Count; i++)
            {
                var s = seqs[i];
                if (s.QueryLength < 1 || s.QueryLength > s.ContextLength)
                    throw new ArgumentException($"sequence {i}: query length {s.QueryLength} must be in [1, context length {s.ContextLength}]");
                if (s.BlockTable.Count * blockSize < s.ContextLength)
                    throw new ArgumentException($"sequence {i}: {s.BlockTable.Count} blocks cannot hold {s.ContextLength} tokens");
                starts[i] = n;
                n += s.QueryLength;
            }
            NumTokens = n;
            var slots = new long[n];
            for (var i = 0; i < seqs.Count; i++)
            {
                var s = seqs[i];
                for (var j = 0; j < s.QueryLength; j++)
                {
                    var p = s.ContextLength - s.QueryLength + j;
                    slots[starts[i] + j] = (long)s.BlockTable[p / blockSize] * blockSize + p % blockSize;
                }
            }
            SlotMapping = Keep(Torch.From<long>(slots, null, device ?? Device.Cpu));

            var decode = new List<int>();
            var prefill = new List<int>();
            for (var i = 0; i < seqs.Count; i++) (seqs[i].QueryLength == 1 ? decode : prefill).Add(i);
            foreach (var members in new[] { decode, prefill })
                if (members.Count > 0) Groups.Add(BuildGroup(seqs, starts, members, blockSize, device));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private Tensor Keep(Tensor t)
    {
        owned.Add(t.DetachFromScope());
        return t;
    }

    private Group BuildGroup(IReadOnlyList<AttentionSeq> seqs, int[] starts, List<int> members, int bs, Device? device)
    {
        var g = new Group { G = members.Count };
        int maxQ = 0, maxCtx = 0, maxBlocks = 0;
        foreach (var i in members)
        {
            maxQ = Math.Max(maxQ, seqs[i].QueryLength);
            maxCtx = Math.Max(maxCtx, seqs[i].ContextLength);
        }
        maxBlocks = (maxCtx + bs - 1) / bs;
        g.MaxQ = maxQ; g.MaxCtx = maxCtx;
        var gCount = members.Count;

        var table = new long[gCount * maxBlocks];           // padded with block 0: padded keys are masked
        var ctx = new long[gCount];
        var qStart = new long[gCount];
        var qLen = new long[gCount];
        var ng = 0;
        for (var r = 0; r < gCount; r++)
        {
            var s = seqs[members[r]];
            var nb = (s.ContextLength + bs - 1) / bs;
            for (var b = 0; b < nb; b++) table[r * maxBlocks + b] = s.BlockTable[b];
            ctx[r] = s.ContextLength;
            qLen[r] = s.QueryLength;
            qStart[r] = s.ContextLength - s.QueryLength;
            ng += s.QueryLength;
        }

        // Keys: slot = block_table[pos / bs] · bs + pos % bs (REFERENCE: block_table.gather(1, pos / bs) * bs + pos % bs);
        // padded key positions point at slot 0 and are masked. Mask: key position < context length and ≤ the query's.
        var dev = device ?? Device.Cpu;
        var keySlots = new long[gCount * maxCtx];
        var blocked = new bool[gCount * maxQ * maxCtx];
        for (var r = 0; r < gCount; r++)
        {
            for (var p = 0; p < ctx[r]; p++) keySlots[r * maxCtx + p] = table[r * maxBlocks + p / bs] * bs + p % bs;
            for (var j = 0; j < maxQ; j++)
            {
                var qp = qStart[r] + j;
                var row = (r * maxQ + j) * maxCtx;
                for (var p = 0; p < maxCtx; p++) blocked[row + p] = p > qp || p >= ctx[r];
            }
        }
        g.KeySlots = Keep(Torch.From<long>(keySlots, null, dev));                                                   // [G·maxCtx]
        g.Blocked = Keep(Torch.From<bool>(blocked, [gCount, 1, 1, maxQ, maxCtx], dev));                          // [G, 1, 1, maxQ, maxCtx]

        var wholeBatchInOrder = gCount == seqs.Count;
        if (maxQ == 1 && wholeBatchInOrder)
        {
            g.QueryIndex = null;
            g.OutIndex = null;
            g.TokenIndex = null;
            return g;
        }
        var qIndex = new long[gCount * maxQ];
        var outIndex = new long[ng];
        var tokIndex = new long[ng];
        var k = 0;
        for (var r = 0; r < gCount; r++)
        {
            var i = members[r];
            for (var j = 0; j < maxQ; j++) qIndex[r * maxQ + j] = starts[i] + Math.Min(j, (int)qLen[r] - 1);
            for (var j = 0; j < qLen[r]; j++) { outIndex[k] = r * maxQ + j; tokIndex[k] = starts[i] + j; k++; }
        }
        g.QueryIndex = Keep(Torch.From<long>(qIndex, null, dev));
        g.OutIndex = Keep(Torch.From<long>(outIndex, null, dev));
        g.TokenIndex = wholeBatchInOrder ? null : Keep(Torch.From<long>(tokIndex, null, dev));
        return g;
    }

    /// <summary>
    /// Writes this step's k, v (each [N, KV, hd]) into the layer's cache slots, then attends: q [N, H, hd] → [N, H, hd].
    /// Per group: gather queries [G, maxQ], gather cached keys/values [G, maxCtx] through the block tables, scores in
    /// float32, masked, softmax, weighted values. Grouped-query heads share their key/value head without copying it
    /// (query head h uses key/value head h / (H / KV), as HF <c>repeat_kv</c>).
    /// </summary>
    public Tensor Attend(KvCache cache, int layer, Tensor q, Tensor k, Tensor v, double scale)
    {
        using var scope = Torch.NewScope();
        var kSlots = cache.KeySlots(layer);
        var vSlots = cache.ValueSlots(layer);
        kSlots.IndexCopy_(0, SlotMapping, k.To(cache.Dtype));
        vSlots.IndexCopy_(0, SlotMapping, v.To(cache.Dtype));

        long n = q.Size(0), h = q.Size(1), hd = q.Size(2), kv = cache.KvHeads;
        if (h % kv != 0) throw new ArgumentException($"query heads {h} are not a multiple of key/value heads {kv}");
        var rep = h / kv;
        var work = q.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        Tensor? result = null;
        var kRows = kSlots.View(-1, hd);                                                            // [slots·KV, hd]
        var vRows = vSlots.View(-1, hd);
        foreach (var g in Groups)
        {
            var qg = g.QueryIndex is null ? q : q.IndexSelect(0, g.QueryIndex);                     // [G·maxQ, H, hd]
            qg = qg.Reshape(g.G, g.MaxQ, kv, rep, hd).Permute(0, 2, 3, 1, 4)
                   .Reshape(g.G, kv, rep * g.MaxQ, hd);                                             // [G, KV, rep·maxQ, hd]
            // One gather per layer straight into [G, KV, maxCtx, hd] (row slot·KV + j of the flat cache), so both products
            // below run on contiguous batches; gathering [G, maxCtx, KV, hd] and permuting made libtorch copy each operand
            // again inside matmul (measured 3.9 → 2.2 ms per layer for 64 decodes at context 160, one thread).
            var rows = KeyRows(g, kv);
            if (Fused(q, kRows))
            {
                // The fused kernel reads keys and values straight from the cache rows (no gather, no per-sequence matmul).
                var of = Functional.PagedDecodeAttention(qg.Contiguous(), kRows, vRows, rows.View(g.G, kv, g.MaxCtx),
                                                         g.Blocked.View(g.G, g.MaxQ, g.MaxCtx), scale)
                                   .View(g.G, kv, rep, g.MaxQ, hd).Permute(0, 3, 1, 2, 4).Reshape(g.G * g.MaxQ, h, hd);
                if (g.OutIndex is not null) of = of.IndexSelect(0, g.OutIndex);
                if (g.TokenIndex is null) { result = of; break; }
                result ??= Torch.Empty([n, h, hd], q.Dtype, q.Device);
                result.IndexCopy_(0, g.TokenIndex, of);
                continue;
            }
            var kg = kRows.IndexSelect(0, rows).View(g.G, kv, g.MaxCtx, hd).Transpose(2, 3);         // [G, KV, hd, maxCtx]
            var vg = vRows.IndexSelect(0, rows).View(g.G, kv, g.MaxCtx, hd);                         // [G, KV, maxCtx, hd]
            var scores = qg.Matmul(kg.To(qg.Dtype)).To(work).Mul_(scale)
                           .View(g.G, kv, rep, g.MaxQ, g.MaxCtx);                                  // [G, KV, rep, maxQ, maxCtx]
            scores.MaskedFill_(g.Blocked, work == ScalarType.Float64 ? double.MinValue : float.MinValue);
            var probs = scores.Softmax(-1).To(q.Dtype).View(g.G, kv, rep * g.MaxQ, g.MaxCtx);       // [G, KV, rep·maxQ, maxCtx]
            var og = probs.Matmul(vg.To(q.Dtype)).View(g.G, kv, rep, g.MaxQ, hd)
                          .Permute(0, 3, 1, 2, 4).Reshape(g.G * g.MaxQ, h, hd);                     // [G·maxQ, H, hd]
            if (g.OutIndex is not null) og = og.IndexSelect(0, g.OutIndex);                         // [Ng, H, hd]
            if (g.TokenIndex is null) { result = og; break; }
            result ??= Torch.Empty([n, h, hd], q.Dtype, q.Device);
            result.IndexCopy_(0, g.TokenIndex, og);
        }
        return result!.MoveToOuter();                                                               // [N, H, hd]
    }

    /// <summary>
    /// Whether <see cref="Attend"/> runs the fused kernel (<see cref="Functional.PagedDecodeAttention"/>): float32 queries
    /// and cache on the CPU, nothing that needs a gradient, and not switched off with <c>RLHF_PAGED_KERNEL=0</c> (which
    /// keeps the gather-and-matmul path, for comparison).
    /// </summary>
    internal static bool Fused(Tensor q, Tensor cacheRows) =>
        q.Dtype == ScalarType.Float32 && cacheRows.Dtype == ScalarType.Float32 && q.Device.Type == DeviceType.Cpu && cacheRows.Device.Type == DeviceType.Cpu &&
        !q.RequiresGrad && !cacheRows.RequiresGrad && FusedEnabled;

    private static readonly bool FusedEnabled = Environment.GetEnvironmentVariable("RLHF_PAGED_KERNEL") != "0";

    /// <summary>
    /// The group's cache rows in [G, KV, maxCtx] order for a cache of <paramref name="kv"/> key/value heads:
    /// row = slot · KV + j. Built on the first layer's call and shared by the others.
    /// </summary>
    private Tensor KeyRows(Group g, long kv)
    {
        if (g.KeyRows is not null && g.KeyRowsKv == kv) return g.KeyRows;
        using var scope = Torch.NewScope();
        var heads = Torch.Arange(kv, device: g.KeySlots.Device).View(1, kv, 1);                     // [1, KV, 1]
        var rows = (g.KeySlots.View(g.G, 1, g.MaxCtx) * kv + heads).Reshape(-1);                    // [G·KV·maxCtx]
        g.KeyRows = Keep(rows);
        g.KeyRowsKv = kv;
        return g.KeyRows;
    }

    /// <summary>Frees the index tensors.</summary>
    public void Dispose()
    {
        foreach (var t in owned) t.Dispose();
        owned.Clear();
    }
}
