using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Generation;

using Torch = Rlhf.Torch.Torch;

public class PagedAttentionTests
{
    /// <summary>Plain causal attention of one sequence, computed directly: q [T, H, hd], k, v [T, KV, hd] → [T, H, hd] (float64).</summary>
    private static Tensor Reference(Tensor q, Tensor k, Tensor v, double scale)
    {
        long t = q.Size(0), h = q.Size(1), kv = k.Size(1);
        var qh = q.Transpose(0, 1);                                                     // [H, T, hd]
        var kh = k.RepeatInterleave(h / kv, 1).Transpose(0, 1);                          // [H, T, hd]
        var vh = v.RepeatInterleave(h / kv, 1).Transpose(0, 1);
        var scores = qh.Matmul(kh.Transpose(1, 2)) * scale;                              // [H, T, T]
        var future = Torch.Ones([t, t], ScalarType.Bool).Triu(1);
        var probs = scores.MaskedFill(future, double.NegativeInfinity).Softmax(-1);
        return probs.Matmul(vh).Transpose(0, 1);                                         // [T, H, hd]
    }

    private static readonly Gen<(int Seed, int NumSeqs, int Bs, int Kv, int Rep)> Cases =
        from seed in Gen.Choose(0, 100_000)
        from n in Gen.Choose(1, 5)
        from bs in Gen.Elements(1, 3, 4, 16)
        from kv in Gen.Choose(1, 2)
        from rep in Gen.Elements(1, 2, 3)
        select (seed, n, bs, kv, rep);

    /// <summary>
    /// Two steps over random sequences in shuffled physical blocks: first each sequence's leading tokens (a prefill), then
    /// the rest (a decode when one token is left, a prefill over cached context otherwise), mixed in one batch. Both
    /// steps' outputs equal plain causal attention over the whole sequence.
    /// </summary>
    [Fact]
    public void Paged_attention_equals_plain_causal_attention_for_mixed_prefill_and_decode() =>
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(Cases), c =>
        {
            using var scope = Torch.NewScope();
            var rng = new Random(c.Seed);
            int hd = 8, kvh = c.Kv, h = c.Kv * c.Rep, bs = c.Bs;
            var lens = Enumerable.Range(0, c.NumSeqs).Select(_ => rng.Next(1, 20)).ToArray();
            var first = lens.Select(l => rng.Next(1, l + 1)).ToArray();
            var blocksPer = lens.Select(l => (l + bs - 1) / bs).ToArray();
            var numBlocks = blocksPer.Sum() + 3;
            var pool = Enumerable.Range(0, numBlocks).OrderBy(_ => rng.Next()).ToArray();
            var tables = new List<int[]>();
            var used = 0;
            foreach (var nb in blocksPer) { tables.Add(pool.Skip(used).Take(nb).ToArray()); used += nb; }

            using var gen = new Generator((ulong)c.Seed);
            var q = lens.Select(l => Torch.Randn([l, h, hd], gen, ScalarType.Float64)).ToArray();
            var k = lens.Select(l => Torch.Randn([l, kvh, hd], gen, ScalarType.Float64)).ToArray();
            var v = lens.Select(l => Torch.Randn([l, kvh, hd], gen, ScalarType.Float64)).ToArray();
            var scale = 1 / Math.Sqrt(hd);
            using var cache = new KvCache(1, numBlocks, bs, kvh, hd, ScalarType.Float64);

            // Step 1: tokens [0, first) of every sequence.
            var step1 = Enumerable.Range(0, c.NumSeqs).Select(i => new AttentionSeq(first[i], first[i], tables[i])).ToList();
            Tensor Cat(Tensor[] xs, Func<int, (int, int)> range) =>
                Torch.Cat(Enumerable.Range(0, xs.Length).Where(i => range(i).Item2 > range(i).Item1)
                    .Select(i => xs[i].Narrow(0, range(i).Item1, range(i).Item2 - range(i).Item1)).ToList());
            using (var md = new PagedAttentionMetadata(step1, bs))
            {
                var o = md.Attend(cache, 0, Cat(q, i => (0, first[i])), Cat(k, i => (0, first[i])), Cat(v, i => (0, first[i])), scale);
                var row = 0;
                for (var i = 0; i < c.NumSeqs; i++)
                {
                    var want = Reference(q[i], k[i], v[i], scale).Narrow(0, 0, first[i]);
                    Assert.True(o.Narrow(0, row, first[i]).AllClose(want, 1e-9, 1e-9), $"step 1, sequence {i}");
                    row += first[i];
                }
            }
            // Step 2: the remaining tokens of the sequences that have any.
            var rest = Enumerable.Range(0, c.NumSeqs).Where(i => lens[i] > first[i]).ToArray();
            if (rest.Length == 0) return;
            var step2 = rest.Select(i => new AttentionSeq(lens[i] - first[i], lens[i], tables[i])).ToList();
            Tensor Cat2(Tensor[] xs) => Torch.Cat(rest.Select(i => xs[i].Narrow(0, first[i], lens[i] - first[i])).ToList());
            using (var md = new PagedAttentionMetadata(step2, bs))
            {
                var o = md.Attend(cache, 0, Cat2(q), Cat2(k), Cat2(v), scale);
                var row = 0;
                foreach (var i in rest)
                {
                    var n = lens[i] - first[i];
                    var want = Reference(q[i], k[i], v[i], scale).Narrow(0, first[i], n);
                    Assert.True(o.Narrow(0, row, n).AllClose(want, 1e-9, 1e-9), $"step 2, sequence {i}");
                    row += n;
                }
            }
        }));

    [Fact]
    public void Keys_and_values_land_in_their_slots()
    {
        using var scope = Torch.NewScope();
        using var cache = new KvCache(2, 4, 2, 1, 1);
        using var md = new PagedAttentionMetadata([new AttentionSeq(3, 3, [2, 0])], 2);
        Assert.Equal([4L, 5L, 0L], md.SlotMapping.ToArray<long>());                         // block 2 offsets 0,1; block 0 offset 0
        var k = Torch.From([1f, 2f, 3f], 3, 1, 1);
        md.Attend(cache, 1, Torch.Zeros([3, 1, 1]), k, k * 10, 1.0);
        Assert.Equal([3f, 0f, 0f, 0f, 1f, 2f, 0f, 0f], cache.Keys(1).Contiguous().View(-1).ToArray<float>());
        Assert.Equal([30f, 0f, 0f, 0f, 10f, 20f, 0f, 0f], cache.Values(1).Contiguous().View(-1).ToArray<float>());
        Assert.Equal(0f, cache.Keys(0).Abs().Sum().Item<float>());                          // other layers untouched
    }

    [Fact]
    public void Copy_blocks_copies_every_layer()
    {
        using var scope = Torch.NewScope();
        using var cache = new KvCache(2, 3, 2, 1, 2);
        for (var l = 0; l < 2; l++) { cache.Keys(l)[1].Fill_(l + 1); cache.Values(l)[1].Fill_(-(l + 1)); }
        cache.CopyBlocks([new BlockCopy(1, 2)]);
        for (var l = 0; l < 2; l++)
        {
            Assert.True(cache.Keys(l)[2].Equal(cache.Keys(l)[1]));
            Assert.True(cache.Values(l)[2].Equal(cache.Values(l)[1]));
            Assert.Equal(0f, cache.Keys(l)[0].Abs().Sum().Item<float>());
        }
    }

    [Fact]
    public void Cache_size_follows_the_memory_budget()
    {
        // 2 (K and V) × 4 layers × 16 slots × 2 heads × 8 dims × 4 bytes = 8192 bytes per block.
        Assert.Equal(8192, KvCache.BytesPerBlock(4, 16, 2, 8, ScalarType.Float32));
        Assert.Equal(12, KvCache.BlocksForBudget(100_000, 4, 16, 2, 8, ScalarType.Float32));
    }
}
