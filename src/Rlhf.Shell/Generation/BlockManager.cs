namespace Rlhf.Shell.Generation;

/// <summary>A block copy the model runner must perform before writing (copy-on-write of a shared partial block).</summary>
/// <param name="Src">Physical block to copy from.</param>
/// <param name="Dst">Freshly allocated physical block to copy into.</param>
public readonly record struct BlockCopy(int Src, int Dst);

/// <summary>
/// vLLM-style block manager: maps each sequence's logical KV blocks to physical blocks of the KV cache.
/// Physical blocks are reference counted, so the n samples of one prompt share the prompt's blocks
/// (<see cref="Fork"/>); appending into a shared partial last block copies it first (copy-on-write).
/// With prefix caching, a full block is found again by the hash of (parent hash, its tokens); freed
/// cached blocks stay evictable (least recently freed first) until their slot is needed again.
/// Pure bookkeeping: no tensors. <c>free + used = total</c> always.
/// </summary>
public sealed class BlockManager
{
    private readonly int[] refCount;
    private readonly Stack<int> free = new();
    private readonly Dictionary<long, SeqState> seqs = new();

    // Prefix cache: hash → block; per block its hash (0 = none) and its node in the evictable LRU list.
    private readonly Dictionary<ulong, int> cached = new();
    private readonly ulong[] blockHash;
    private readonly int[][] blockTokens;
    private readonly ulong[] blockParent;
    private readonly LinkedList<int> evictable = new();
    private readonly LinkedListNode<int>?[] evictNode;

    private sealed class SeqState
    {
        public readonly List<int> Table = new();
        public int NumTokens;
    }

    /// <summary>A manager over <paramref name="numBlocks"/> blocks of <paramref name="blockSize"/> token slots.</summary>
    /// <param name="numBlocks">Physical blocks in the KV cache.</param>
    /// <param name="blockSize">Token slots per block (<c>generation.block_size</c>).</param>
    /// <param name="enablePrefixCaching">Reuse full blocks whose (parent, tokens) hash was seen before.</param>
    /// <param name="watermark">Fraction of blocks kept free when admitting new sequences (<c>generation.watermark</c>), to avoid preempting at once.</param>
    public BlockManager(int numBlocks, int blockSize, bool enablePrefixCaching, double watermark)
    {
        if (numBlocks <= 0) throw new ArgumentOutOfRangeException(nameof(numBlocks), numBlocks, "need at least one block");
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive");
        if (watermark is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(watermark), watermark, "watermark is a fraction in [0, 1)");
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        EnablePrefixCaching = enablePrefixCaching;
        WatermarkBlocks = (int)(watermark * numBlocks);
        refCount = new int[numBlocks];
        blockHash = new ulong[numBlocks];
        blockTokens = new int[numBlocks][];
        blockParent = new ulong[numBlocks];
        evictNode = new LinkedListNode<int>?[numBlocks];
        for (var b = numBlocks - 1; b >= 0; b--) free.Push(b); // block 0 is handed out first
    }

    /// <summary>Physical blocks in total.</summary>
    public int NumBlocks { get; }

    /// <summary>Token slots per block.</summary>
    public int BlockSize { get; }

    /// <summary>Whether full blocks are shared by hash.</summary>
    public bool EnablePrefixCaching { get; }

    /// <summary>Blocks held back when admitting new sequences.</summary>
    public int WatermarkBlocks { get; }

    /// <summary>Blocks that can be handed out now (the free list plus evictable cached blocks).</summary>
    public int NumFreeBlocks => free.Count + evictable.Count;

    /// <summary>Blocks referenced by at least one sequence.</summary>
    public int NumUsedBlocks => NumBlocks - NumFreeBlocks;

    /// <summary>Sequences that hold a block table.</summary>
    public int NumSequences => seqs.Count;

    /// <summary>Prefix-cache hits (blocks reused by hash) since construction.</summary>
    public long PrefixCacheHits { get; private set; }

    /// <summary>Token slots allocated to sequences (with sharing counted once per sequence).</summary>
    public long TokenSlotsInUse
    {
        get { long s = 0; foreach (var st in seqs.Values) s += st.NumTokens; return s; }
    }

    /// <summary>
    /// Physical token slots holding a token: over the blocks in use, each counted once however many sequences share
    /// it. <c>FilledSlots / (NumUsedBlocks · BlockSize)</c> is the KV memory utilisation.
    /// </summary>
    public long FilledSlots()
    {
        filled ??= new int[NumBlocks];
        Array.Clear(filled);
        foreach (var st in seqs.Values)
            for (var j = 0; j < st.Table.Count; j++)
            {
                var n = Math.Min(BlockSize, st.NumTokens - j * BlockSize);
                if (n > filled[st.Table[j]]) filled[st.Table[j]] = n;
            }
        long sum = 0;
        foreach (var n in filled) sum += n;
        return sum;
    }

    private int[]? filled;

    /// <summary>Blocks needed to hold <paramref name="numTokens"/> tokens.</summary>
    public int BlocksFor(int numTokens) => (numTokens + BlockSize - 1) / BlockSize;

    /// <summary>True when a sequence is known.</summary>
    public bool Contains(long seqId) => seqs.ContainsKey(seqId);

    /// <summary>The physical blocks of a sequence, in logical order.</summary>
    public IReadOnlyList<int> BlockTable(long seqId) => State(seqId).Table;

    /// <summary>Number of token slots allocated to a sequence.</summary>
    public int NumTokens(long seqId) => State(seqId).NumTokens;

    /// <summary>Reference count of a physical block (0 when free or evictable).</summary>
    public int RefCount(int block) => refCount[block];

    /// <summary>
    /// Whether new sequences needing <paramref name="numBlocks"/> fresh blocks fit, keeping the watermark free.
    /// (An upper bound with prefix caching: cache hits need fewer.)
    /// </summary>
    public bool CanAllocate(int numBlocks) => NumFreeBlocks - numBlocks >= WatermarkBlocks;

    /// <summary>
    /// Allocates the blocks of a new sequence holding <paramref name="tokens"/>. With prefix caching, leading
    /// full blocks already cached are shared instead (never the block holding the last token, which must be
    /// computed to produce logits). Returns the number of leading tokens whose KV is already in the cache.
    /// </summary>
    public int Allocate(long seqId, ReadOnlySpan<int> tokens)
    {
        if (seqs.ContainsKey(seqId)) throw new InvalidOperationException($"sequence {seqId} already has blocks");
        if (tokens.Length == 0) throw new ArgumentException("cannot allocate an empty sequence", nameof(tokens));
        var need = BlocksFor(tokens.Length);
        if (need > NumFreeBlocks) throw new InvalidOperationException($"out of KV blocks: sequence {seqId} needs {need}, {NumFreeBlocks} free");
        var st = new SeqState { NumTokens = tokens.Length };
        var hits = 0;
        ulong parent = 0;
        var maxHits = EnablePrefixCaching ? (tokens.Length - 1) / BlockSize : 0;
        for (var j = 0; j < need; j++)
        {
            var full = (j + 1) * BlockSize <= tokens.Length;
            ulong h = 0;
            var span = full ? tokens.Slice(j * BlockSize, BlockSize) : default;
            if (EnablePrefixCaching && full) h = HashBlock(parent, span);
            if (j < maxHits && hits == j && h != 0 && cached.TryGetValue(h, out var b) && Matches(b, parent, span))
            {
                if (refCount[b] == 0) Unevict(b);
                refCount[b]++;
                st.Table.Add(b);
                hits++;
                PrefixCacheHits++;
            }
            else
            {
                var nb = Take();
                st.Table.Add(nb);
                if (h != 0 && !cached.ContainsKey(h)) Register(nb, h, parent, span);
            }
            parent = h;
        }
        seqs[seqId] = st;
        return hits * BlockSize;
    }

    /// <summary>
    /// Makes <paramref name="childId"/> share every block of <paramref name="parentId"/> (reference counts + 1):
    /// the n samples of one prompt hold the prompt's KV once.
    /// </summary>
    public void Fork(long parentId, long childId)
    {
        var p = State(parentId);
        if (seqs.ContainsKey(childId)) throw new InvalidOperationException($"sequence {childId} already has blocks");
        var c = new SeqState { NumTokens = p.NumTokens };
        foreach (var b in p.Table) { refCount[b]++; c.Table.Add(b); }
        seqs[childId] = c;
    }

    /// <summary>Fresh blocks that appending one slot to each of these sequences would take (including copy-on-write).</summary>
    public int BlocksNeededToAppend(IEnumerable<long> seqIds)
    {
        var n = 0;
        foreach (var id in seqIds)
        {
            var st = State(id);
            if (st.NumTokens % BlockSize == 0) n++;                   // a new logical block
            else if (refCount[st.Table[^1]] > 1) n++;                 // copy-on-write of a shared partial block
        }
        return n;
    }

    /// <summary>Whether one slot can be appended to each of these sequences.</summary>
    public bool CanAppendSlots(IEnumerable<long> seqIds) => BlocksNeededToAppend(seqIds) <= NumFreeBlocks;

    /// <summary>
    /// Reserves the slot for one more token of a sequence. Returns the block copy to perform first when the
    /// last block was shared (copy-on-write), or null.
    /// </summary>
    public BlockCopy? AppendSlot(long seqId)
    {
        var st = State(seqId);
        BlockCopy? copy = null;
        if (st.NumTokens % BlockSize == 0)
        {
            st.Table.Add(Take());
        }
        else
        {
            var last = st.Table[^1];
            if (refCount[last] > 1)
            {
                var nb = Take();
                refCount[last]--;
                st.Table[^1] = nb;
                copy = new BlockCopy(last, nb);
            }
            else if (blockHash[last] != 0)
            {
                // A partial block is never registered, but be safe: writing into a block invalidates its hash.
                Unregister(last);
            }
        }
        st.NumTokens++;
        return copy;
    }

    /// <summary>Releases a sequence's blocks (reference counts − 1; a block at zero becomes free or evictable).</summary>
    public void Free(long seqId)
    {
        if (!seqs.Remove(seqId, out var st)) throw new InvalidOperationException($"sequence {seqId} has no blocks (freed twice?)");
        // Release in reverse so the longest prefixes are evicted last.
        for (var i = st.Table.Count - 1; i >= 0; i--) Release(st.Table[i]);
    }

    /// <summary>Forgets every cached block hash (call after every weight update: old KV is stale).</summary>
    public void ResetPrefixCache()
    {
        cached.Clear();
        foreach (var b in evictable) { evictNode[b] = null; free.Push(b); }
        evictable.Clear();
        for (var b = 0; b < NumBlocks; b++) { blockHash[b] = 0; blockTokens[b] = null!; blockParent[b] = 0; }
    }

    /// <summary>The slot (block × block size + offset) of token position <paramref name="pos"/> of a sequence.</summary>
    public int Slot(long seqId, int pos)
    {
        var st = State(seqId);
        if ((uint)pos >= (uint)st.NumTokens) throw new ArgumentOutOfRangeException(nameof(pos), pos, $"sequence {seqId} has {st.NumTokens} slots");
        return st.Table[pos / BlockSize] * BlockSize + pos % BlockSize;
    }

    private SeqState State(long seqId) =>
        seqs.TryGetValue(seqId, out var st) ? st : throw new InvalidOperationException($"sequence {seqId} has no blocks");

    private int Take()
    {
        int b;
        if (free.Count > 0) b = free.Pop();
        else if (evictable.First is { } node)
        {
            b = node.Value;
            evictable.RemoveFirst();
            evictNode[b] = null;
            Unregister(b);
        }
        else throw new InvalidOperationException("out of KV blocks");
        refCount[b] = 1;
        return b;
    }

    private void Release(int b)
    {
        if (refCount[b] <= 0) throw new InvalidOperationException($"block {b} released more often than referenced");
        if (--refCount[b] > 0) return;
        if (blockHash[b] != 0) evictNode[b] = evictable.AddLast(b);
        else free.Push(b);
    }

    private void Unevict(int b)
    {
        evictable.Remove(evictNode[b]!);
        evictNode[b] = null;
    }

    private void Register(int b, ulong h, ulong parent, ReadOnlySpan<int> tokens)
    {
        cached[h] = b;
        blockHash[b] = h;
        blockParent[b] = parent;
        blockTokens[b] = tokens.ToArray();
    }

    private void Unregister(int b)
    {
        if (blockHash[b] == 0) return;
        if (cached.TryGetValue(blockHash[b], out var cb) && cb == b) cached.Remove(blockHash[b]);
        blockHash[b] = 0;
        blockTokens[b] = null!;
        blockParent[b] = 0;
    }

    private bool Matches(int b, ulong parent, ReadOnlySpan<int> tokens) =>
        blockParent[b] == parent && blockTokens[b] is { } t && tokens.SequenceEqual(t);

    /// <summary>Hash of a full block: (parent hash, its tokens), never 0 (0 means "no hash").</summary>
    internal static ulong HashBlock(ulong parent, ReadOnlySpan<int> tokens)
    {
        var h = Mix(parent ^ 0x9E3779B97F4A7C15UL);
        foreach (var t in tokens) h = Mix(h ^ (uint)t);
        return h == 0 ? 1 : h;
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
