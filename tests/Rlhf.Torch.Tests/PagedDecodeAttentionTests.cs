// The fused paged decode attention kernel (native/src/attention.cpp) against a float64 reference of its formula.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

using Torch = Rlhf.Torch.Torch;

public class PagedDecodeAttentionTests
{
    /// <summary>softmax(scale · q·kᵀ, blocked excluded; all blocked: uniform) · v in float64, one row at a time.</summary>
    private static double[] Reference(float[] q, float[] k, float[] v, long[] rows, bool[] blocked, int b, int kv, int m, int qLen, int c, int hd, double scale)
    {
        var out_ = new double[b * kv * m * hd];
        for (var s = 0; s < b; s++)
            for (var j = 0; j < kv; j++)
                for (var r = 0; r < m; r++)
                {
                    var scores = new double[c];
                    var allBlocked = true;
                    for (var p = 0; p < c; p++)
                    {
                        var row = rows[(s * kv + j) * c + p];
                        if (blocked[(s * qLen + r % qLen) * c + p]) { scores[p] = double.NegativeInfinity; continue; }
                        allBlocked = false;
                        double dot = 0;
                        for (var d = 0; d < hd; d++) dot += (double)q[((s * kv + j) * m + r) * hd + d] * k[row * hd + d];
                        scores[p] = dot * scale;
                    }
                    if (allBlocked) Array.Fill(scores, 0.0);
                    var max = scores.Max();
                    var w = scores.Select(x => Math.Exp(x - max)).ToArray();
                    var sum = w.Sum();
                    for (var p = 0; p < c; p++)
                    {
                        var row = rows[(s * kv + j) * c + p];
                        for (var d = 0; d < hd; d++) out_[((s * kv + j) * m + r) * hd + d] += w[p] / sum * v[row * hd + d];
                    }
                }
        return out_;
    }

    [Theory]
    [InlineData(3, 2, 3, 1, 17, 64)]    // grouped-query decode: 3 query heads per key/value head, one token each
    [InlineData(2, 1, 4, 2, 9, 8)]      // two query tokens per sequence (Q = 2) sharing one key/value head
    [InlineData(1, 4, 1, 1, 1, 5)]      // one position, odd head size
    public void Matches_the_float64_formula_with_masks_and_grouped_heads(int b, int kv, int m, int qLen, int c, int hd)
    {
        using var scope = Torch.NewScope();
        var rng = new Random(b * 1000 + kv * 100 + m * 10 + c);
        const int cacheRows = 97;
        float[] F(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var q = F(b * kv * m * hd);
        var k = F(cacheRows * hd);
        var v = F(cacheRows * hd);
        var rows = Enumerable.Range(0, b * kv * c).Select(_ => (long)rng.Next(cacheRows)).ToArray();
        var blocked = Enumerable.Range(0, b * qLen * c).Select(_ => rng.NextDouble() < 0.3).ToArray();
        for (var p = 0; p < c; p++) blocked[p] = true;                                  // sequence 0, query row 0: nothing allowed → uniform
        var scale = 1 / Math.Sqrt(hd);
        var got = Functional.PagedDecodeAttention(Torch.From(q, b, kv, m, hd), Torch.From(k, cacheRows, hd), Torch.From(v, cacheRows, hd),
            Torch.From(rows, b, kv, c), Torch.From(blocked, b, qLen, c), scale);
        Assert.Equal(new long[] { b, kv, m, hd }, got.Shape);
        var want = Reference(q, k, v, rows, blocked, b, kv, m, qLen, c, hd, scale);
        var g = got.ToArray<float>();
        for (var i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(g[i] - want[i]) <= 1e-5 * (1 + Math.Abs(want[i])), $"element {i}: {g[i]} vs float64 {want[i]}");
    }

    [Fact]
    public void Rejects_what_it_cannot_compute_in_one_clear_line()
    {
        using var scope = Torch.NewScope();
        var q = Torch.Zeros([1, 1, 1, 4]);
        var k = Torch.Zeros([5, 4]);
        var rows = Torch.From(new long[] { 0, 5 }, 1, 1, 2);
        var blocked = Torch.From(new[] { false, false }, 1, 1, 2);
        var e = Assert.ThrowsAny<Exception>(() => Functional.PagedDecodeAttention(q, k, k, rows, blocked, 0.5));
        Assert.Contains("outside the cache's 5 rows", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.PagedDecodeAttention(q.To(ScalarType.Float64), k.To(ScalarType.Float64), k.To(ScalarType.Float64),
            Torch.From(new long[] { 0, 1 }, 1, 1, 2), blocked, 0.5));
        Assert.Contains("float32", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Functional.PagedDecodeAttention(q.Clone().RequiresGrad_(), k, k, Torch.From(new long[] { 0, 1 }, 1, 1, 2), blocked, 0.5));
        Assert.Contains("no backward", e.Message);
    }
}
