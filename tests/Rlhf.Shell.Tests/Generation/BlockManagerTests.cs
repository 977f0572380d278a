using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Generation;

namespace Rlhf.Shell.Tests.Generation;

public class BlockManagerTests
{
    private static readonly FsCheck.Config Cfg = FsCheck.Config.QuickThrowOnFailure.WithMaxTest(150).WithQuietOnSuccess(true);

    /// <summary>An operation: kind (0 allocate, 1 fork, 2 append, 3 free, 4 reset prefix cache) and two choice numbers.</summary>
    private static readonly Gen<(int Kind, int A, int B)> Op =
        from k in Gen.Frequency((4, Gen.Constant(0)), (3, Gen.Constant(1)), (8, Gen.Constant(2)), (3, Gen.Constant(3)), (1, Gen.Constant(4)))
        from a in Gen.Choose(0, 1_000_000)
        from b in Gen.Choose(0, 1_000_000)
        select (k, a, b);

    private static readonly Gen<(int Blocks, int BlockSize, bool Prefix, (int Kind, int A, int B)[] Ops)> Scenario =
        from blocks in Gen.Choose(1, 24)
        from bs in Gen.Elements(1, 2, 4, 16)
        from prefix in Gen.Elements(false, true)
        from n in Gen.Choose(1, 80)
        from ops in Gen.ArrayOf(Op, n)
        select (blocks, bs, prefix, ops);

    /// <summary>
    /// Random allocate/fork/append/free (and prefix-cache resets) against a shadow model: reference counts equal the
    /// number of tables holding each block, free + used = total with no block free and used at once, and — through
    /// a simulated physical store that receives every write and every copy-on-write copy — every sequence reads
    /// back exactly its own tokens (so sharing, copy-on-write and prefix-cache hits never corrupt anyone).
    /// </summary>
    [Fact]
    public void Random_operation_sequences_keep_every_invariant() =>
        Check.One(Cfg, Prop.ForAll(Arb.From(Scenario), sc =>
        {
            var (numBlocks, bs, prefix, ops) = sc;
            var bm = new BlockManager(numBlocks, bs, prefix, watermark: 0);
            var phys = new int[numBlocks * bs];
            var contents = new Dictionary<long, List<int>>();
            var live = new List<long>();
            long nextId = 0;
            foreach (var (kind, a, b) in ops)
            {
                switch (kind)
                {
                    case 0:
                    {
                        var len = 1 + a % (3 * bs + 2);
                        // A tiny alphabet, sometimes the prefix of a live sequence: prefix-cache hits happen.
                        var tokens = new List<int>();
                        if (live.Count > 0 && b % 2 == 0)
                        {
                            var src = contents[live[b % live.Count]];
                            tokens.AddRange(src.Take(len));
                        }
                        var rng = new Random(b);
                        while (tokens.Count < len) tokens.Add(rng.Next(2));
                        if (!bm.CanAllocate(bm.BlocksFor(len))) break;
                        var id = nextId++;
                        var cached = bm.Allocate(id, tokens.ToArray());
                        Assert.True(cached % bs == 0 && cached < len, $"cached {cached} of {len}");
                        if (!prefix) Assert.Equal(0, cached);
                        for (var p = cached; p < len; p++) phys[bm.Slot(id, p)] = tokens[p];
                        contents[id] = tokens;
                        live.Add(id);
                        break;
                    }
                    case 1 when live.Count > 0:
                    {
                        var parent = live[a % live.Count];
                        var id = nextId++;
                        bm.Fork(parent, id);
                        contents[id] = new List<int>(contents[parent]);
                        live.Add(id);
                        break;
                    }
                    case 2 when live.Count > 0:
                    {
                        var id = live[a % live.Count];
                        var need = bm.BlocksNeededToAppend([id]);
                        if (need > bm.NumFreeBlocks) { Assert.False(bm.CanAppendSlots([id])); break; }
                        var freeBefore = bm.NumFreeBlocks;
                        var copy = bm.AppendSlot(id);
                        Assert.Equal(freeBefore - need, bm.NumFreeBlocks);
                        if (copy is { } c)
                            Array.Copy(phys, c.Src * bs, phys, c.Dst * bs, bs);
                        var tok = 2 + b % 5;
                        contents[id].Add(tok);
                        phys[bm.Slot(id, contents[id].Count - 1)] = tok;
                        break;
                    }
                    case 3 when live.Count > 0:
                    {
                        var id = live[a % live.Count];
                        bm.Free(id);
                        live.Remove(id);
                        contents.Remove(id);
                        Assert.Throws<InvalidOperationException>(() => bm.Free(id));   // never freed twice
                        break;
                    }
                    case 4:
                        bm.ResetPrefixCache();
                        break;
                }
                CheckInvariants(bm, live, contents, phys);
            }
            foreach (var id in live) bm.Free(id);
            Assert.Equal(numBlocks, bm.NumFreeBlocks);
            for (var blk = 0; blk < numBlocks; blk++) Assert.Equal(0, bm.RefCount(blk));
        }));

    private static void CheckInvariants(BlockManager bm, List<long> live, Dictionary<long, List<int>> contents, int[] phys)
    {
        var holders = new int[bm.NumBlocks];
        foreach (var id in live)
        {
            var table = bm.BlockTable(id);
            Assert.Equal(contents[id].Count, bm.NumTokens(id));
            Assert.Equal(bm.BlocksFor(contents[id].Count), table.Count);
            Assert.Equal(table.Count, table.Distinct().Count());
            foreach (var b in table) holders[b]++;
            for (var p = 0; p < contents[id].Count; p++)
                Assert.True(contents[id][p] == phys[bm.Slot(id, p)], $"sequence {id} position {p}: wrote {contents[id][p]}, reads {phys[bm.Slot(id, p)]}");
        }
        var zero = 0;
        for (var b = 0; b < bm.NumBlocks; b++)
        {
            Assert.True(holders[b] == bm.RefCount(b), $"block {b}: ref count {bm.RefCount(b)}, held by {holders[b]} tables");
            if (holders[b] == 0) zero++;
        }
        Assert.Equal(zero, bm.NumFreeBlocks);
        Assert.Equal(bm.NumBlocks, bm.NumFreeBlocks + bm.NumUsedBlocks);
        Assert.Equal(live.Count, bm.NumSequences);
    }

    [Fact]
    public void Fork_shares_blocks_and_copy_on_write_copies_only_the_shared_partial_block()
    {
        var bm = new BlockManager(10, 4, enablePrefixCaching: false, watermark: 0);
        bm.Allocate(0, [1, 2, 3, 4, 5, 6]);                     // blocks: one full, one partial (2 of 4)
        var table = bm.BlockTable(0).ToArray();
        for (var c = 1; c <= 3; c++) bm.Fork(0, c);
        Assert.All(table, b => Assert.Equal(4, bm.RefCount(b)));
        Assert.Equal(8, bm.NumFreeBlocks);

        var copies = new List<BlockCopy?>();
        for (var s = 0; s <= 3; s++) copies.Add(bm.AppendSlot(s));
        // The first three writers copy the shared partial block; the last one owns it and writes in place.
        Assert.Equal(3, copies.Count(c => c is not null));
        Assert.All(copies.Where(c => c is not null), c => Assert.Equal(table[1], c!.Value.Src));
        Assert.Null(copies[3]);
        Assert.Equal(table[1], bm.BlockTable(3)[1]);
        Assert.Equal(4, bm.RefCount(table[0]));                 // the full prompt block stays shared
        Assert.Equal(1, bm.RefCount(table[1]));
        Assert.Equal(5, bm.NumFreeBlocks);
    }

    [Fact]
    public void Prefix_cache_reuses_full_blocks_by_hash_and_forgets_them_on_reset()
    {
        var bm = new BlockManager(16, 4, enablePrefixCaching: true, watermark: 0);
        int[] prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        Assert.Equal(0, bm.Allocate(0, prompt));
        Assert.Equal(8, bm.Allocate(1, prompt));                // two full blocks found again; the last must be computed
        Assert.Equal(bm.BlockTable(0).Take(2), bm.BlockTable(1).Take(2));
        Assert.NotEqual(bm.BlockTable(0)[2], bm.BlockTable(1)[2]);
        Assert.Equal(0, bm.Allocate(2, [9, 2, 3, 4, 5]));        // a different first block: no hit
        Assert.Equal(4, bm.Allocate(3, [1, 2, 3, 4, 0, 0, 0, 0, 1]));   // same first block, different second
        bm.Free(0); bm.Free(1);
        Assert.Equal(8, bm.Allocate(4, prompt));                // freed but still cached (evictable)
        bm.Free(4);
        Assert.Equal(5, bm.PrefixCacheHits);                    // 2 + 1 + 2
        bm.ResetPrefixCache();
        Assert.Equal(0, bm.Allocate(5, prompt));                // after a weight update nothing is reused
        Assert.Equal(5, bm.PrefixCacheHits);
    }

    [Fact]
    public void Exact_block_multiple_never_shares_the_block_holding_the_last_token()
    {
        var bm = new BlockManager(8, 4, enablePrefixCaching: true, watermark: 0);
        int[] prompt = [1, 2, 3, 4, 5, 6, 7, 8];
        bm.Allocate(0, prompt);
        Assert.Equal(4, bm.Allocate(1, prompt));                // block 2 holds the last token: recomputed
        Assert.Equal(bm.BlockTable(0)[0], bm.BlockTable(1)[0]);
        Assert.NotEqual(bm.BlockTable(0)[1], bm.BlockTable(1)[1]);
    }

    [Fact]
    public void Misuse_is_reported()
    {
        var bm = new BlockManager(2, 4, enablePrefixCaching: false, watermark: 0);
        Assert.Throws<InvalidOperationException>(() => bm.Allocate(0, new int[9]));   // needs 3 of 2 blocks
        bm.Allocate(0, [1]);
        Assert.Throws<InvalidOperationException>(() => bm.Allocate(0, [1]));
        Assert.Throws<InvalidOperationException>(() => bm.Fork(7, 8));
        Assert.Throws<InvalidOperationException>(() => bm.Free(3));
    }
}
