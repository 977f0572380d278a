using Rlhf.Core.Models;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Bench;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The comparison point, for benchmarks only: static batching as Hugging Face <c>generate</c> does it. Every
/// completion is a row (prompts repeated n times), rows are left-padded to the longest prompt, a contiguous KV
/// cache of [rows, KV, longest prompt + max new tokens, hd] per layer is reserved up front, and the batch steps
/// until every row has stopped — finished rows keep computing padding. Same model functions and sampler as the
/// paged generator, so only the batching differs.
/// </summary>
public sealed class StaticBatchGenerator
{
    private readonly ModelWeights weights;

    /// <summary>A baseline over a weights record.</summary>
    public StaticBatchGenerator(ModelWeights weights) => this.weights = weights;

    /// <summary>Token slots reserved by the last call (rows × (longest prompt + max new tokens)).</summary>
    public long ReservedSlots { get; private set; }

    /// <summary>Token slots that held a real (prompt or generated) token at the end of the last call.</summary>
    public long FilledSlots { get; private set; }

    /// <summary>Decode steps of the last call.</summary>
    public int Steps { get; private set; }

    /// <summary>Generated token ids per completion (prompt j, sample i at row j·n + i), each cut after its stop token.</summary>
    public int[][] Generate(IReadOnlyList<int[]> prompts, SamplingParams p)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var c = weights.Config;
        int n = p.N, rows = prompts.Count * n, tmax = prompts.Max(x => x.Length), total = tmax + p.MaxTokens;
        var ids = new long[rows * tmax];
        var mask = new long[rows * total];
        for (var j = 0; j < prompts.Count; j++)
            for (var i = 0; i < n; i++)
            {
                var r = j * n + i;
                var pad = tmax - prompts[j].Length;
                for (var t = 0; t < prompts[j].Length; t++) { ids[r * tmax + pad + t] = prompts[j][t]; mask[r * total + pad + t] = 1; }
            }
        var dtype = weights.Tensors.Values.First().Dtype;
        var dev = weights.Tensors.Values.First().Device;                                               // inputs go where the weights are
        var attention = new StaticCacheAttention(c.NumHiddenLayers, rows, c.NumKeyValueHeads, total, c.HeadDim, dtype, dev);
        var promptMask = Torch.From<long>(mask, [rows, total], dev).Narrow(1, 0, tmax).Contiguous();                // [B, tmax]
        var positions = Transformer.PositionsFromMask(promptMask);                                    // [B, tmax]
        attention.Begin(promptMask, 0);
        var hidden = Transformer.ForwardHidden(weights, Torch.From<long>(ids, [rows, tmax], dev), positions, promptMask, attention);
        var logits = Transformer.LmHead(weights, hidden.Narrow(1, tmax - 1, 1)).Select(1, 0);        // [B, V]
        var promptLen = new long[rows];
        for (var r = 0; r < rows; r++) promptLen[r] = prompts[r / n].Length;

        var outs = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var done = new bool[rows];
        var seeds = new ulong[rows];
        var baseSeed = (ulong)(p.Seed ?? 0);
        for (var r = 0; r < rows; r++) seeds[r] = baseSeed + (ulong)r;
        var stops = p.StopTokenIds ?? [];
        Steps = 0;
        for (var step = 0; step < p.MaxTokens; step++)
        {
            using var stepScope = Torch.NewScope();
            var sampleRows = new SampleRow[rows];
            for (var r = 0; r < rows; r++) sampleRows[r] = new SampleRow(p, seeds[r], step, step < p.MinTokens);
            var res = Sampler.Sample(logits, sampleRows);
            var next = new long[rows];
            for (var r = 0; r < rows; r++)
            {
                if (done[r]) { next[r] = 0; continue; }                                              // pad after the stop, as HF
                outs[r].Add(res.Tokens[r]);
                next[r] = res.Tokens[r];
                if (stops.Contains(res.Tokens[r])) done[r] = true;
            }
            if (done.All(d => d) || step == p.MaxTokens - 1) break;
            // HF grows attention_mask by a one for every row, finished or not.
            for (var r = 0; r < rows; r++) mask[r * total + tmax + step] = 1;
            var curMask = Torch.From<long>(mask, [rows, total], dev).Narrow(1, 0, tmax + step + 1).Contiguous();    // [B, L]
            var pos = new long[rows];
            for (var r = 0; r < rows; r++) pos[r] = promptLen[r] + step;
            attention.Begin(curMask, tmax + step);
            var h = Transformer.ForwardHidden(weights, Torch.From<long>(next, [rows, 1], dev), Torch.From<long>(pos, [rows, 1], dev), null, attention);
            var newLogits = Transformer.LmHead(weights, h).Select(1, 0);                               // [B, V]
            logits.Dispose();
            logits = newLogits.MoveToOuter();
            Steps++;
        }
        ReservedSlots = (long)rows * total;
        FilledSlots = prompts.Sum(x => (long)x.Length) * n + outs.Sum(o => (long)o.Count);
        attention.Dispose();
        return outs.Select(o => o.ToArray()).ToArray();
    }

    /// <summary>A contiguous per-row KV cache: writes the step's k, v at [start, start + T) and attends over [0, start + T) with the padding mask.</summary>
    private sealed class StaticCacheAttention : IAttention, IDisposable
    {
        private readonly Tensor[] k, v;
        private Tensor? mask;
        private long start;

        public StaticCacheAttention(int layers, long rows, long kvHeads, long total, long hd, ScalarType dtype, Device device)
        {
            k = new Tensor[layers]; v = new Tensor[layers];
            for (var l = 0; l < layers; l++)
            {
                k[l] = Torch.Zeros([rows, kvHeads, total, hd], dtype, device).DetachFromScope();      // [B, KV, total, hd]
                v[l] = Torch.Zeros([rows, kvHeads, total, hd], dtype, device).DetachFromScope();
            }
        }

        /// <summary>The next forward writes at <paramref name="at"/>; mask [B, at + T] marks real tokens.</summary>
        public void Begin(Tensor paddingMask, long at) { mask = paddingMask; start = at; }

        public Tensor Attend(int layer, Tensor q, Tensor kNew, Tensor vNew, double scale)
        {
            using var scope = Torch.NewScope();
            var t = q.Size(2);
            k[layer].Narrow(2, start, t).Copy_(kNew);
            v[layer].Narrow(2, start, t).Copy_(vNew);
            var keys = k[layer].Narrow(2, 0, start + t);                                              // [B, KV, L, hd]
            var values = v[layer].Narrow(2, 0, start + t);
            Tensor allowed;
            if (start == 0) allowed = Attention.CausalMask(t, mask, q.Device);                        // [B, 1, T, T]
            else allowed = mask!.Ne(0).View(mask.Size(0), 1, 1, start + t);                           // [B, 1, 1, L]
            return Attention.ScaledDotProduct(q, keys, values, allowed, scale).MoveToOuter();
        }

        public void Dispose()
        {
            foreach (var t in k) t.Dispose();
            foreach (var t in v) t.Dispose();
        }
    }
}
