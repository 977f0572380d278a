using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Shell.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Core's <see cref="IAttention"/> seam over the paged KV cache: each layer writes the step's k, v into their slots and
/// attends through the block tables (<see cref="PagedAttentionMetadata.Attend"/>). The flat batch is one row:
/// q [1, H, N, hd], k, v [1, KV, N, hd] → [1, H, N, hd].
/// </summary>
public sealed class PagedKvAttention(KvCache cache, PagedAttentionMetadata metadata) : IAttention
{
    /// <inheritdoc />
    public Tensor Attend(int layer, Tensor q, Tensor k, Tensor v, double scale)
    {
        if (q.Size(0) != 1) throw new ArgumentException($"paged attention runs a flat batch [1, H, N, hd]; got [{string.Join(", ", q.Shape)}]", nameof(q));
        using var scope = Torch.NewScope();
        var o = metadata.Attend(cache, layer, q[0].Transpose(0, 1), k[0].Transpose(0, 1), v[0].Transpose(0, 1), scale);   // [N, H, hd]
        return o.Transpose(0, 1).Unsqueeze(0).MoveToOuter();                                                                  // [1, H, N, hd]
    }
}

/// <summary>
/// Runs one scheduler step through Core's model functions: every scheduled sequence's new tokens go into one flat
/// batch [1, N] (no padding to the longest), positions are their true positions, attention goes through
/// <see cref="PagedKvAttention"/>, and only each sequence's last position is normed and projected to logits.
/// </summary>
public sealed class ModelRunner
{
    private readonly KvCache cache;

    /// <summary>A runner over a weights record and a KV cache laid out for it.</summary>
    public ModelRunner(ModelWeights weights, KvCache cache)
    {
        Weights = weights;
        this.cache = cache;
    }

    /// <summary>The weights read on every forward (the trainer's live record, when shared in-process).</summary>
    public ModelWeights Weights { get; set; }

    /// <summary>
    /// Logits [S, V] (float32) at the last new token of each sequence. Sequence i computes its tokens
    /// <c>[NumComputed, NumComputed + NumNewTokens)</c> whose slots the block manager has already reserved.
    /// </summary>
    public Tensor Execute(IReadOnlyList<ScheduledSeq> seqs, BlockManager blocks)
    {
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        var n = 0;
        foreach (var s in seqs) n += s.NumNewTokens;
        var ids = new long[n];
        var pos = new long[n];
        var last = new long[seqs.Count];
        var attn = new AttentionSeq[seqs.Count];
        var k = 0;
        for (var i = 0; i < seqs.Count; i++)
        {
            var s = seqs[i];
            var seq = s.Seq;
            var start = seq.NumComputed;
            if (start + s.NumNewTokens != seq.Tokens.Count)
                throw new InvalidOperationException($"sequence {seq.Id}: {start} computed + {s.NumNewTokens} new ≠ {seq.Tokens.Count} tokens");
            for (var j = 0; j < s.NumNewTokens; j++) { ids[k] = seq.Tokens[start + j]; pos[k] = start + j; k++; }
            last[i] = k - 1;
            attn[i] = new AttentionSeq(s.NumNewTokens, seq.Tokens.Count, blocks.BlockTable(seq.Id));
        }
        var device = Weights.Tensors.Values.First().Device;
        using var md = new PagedAttentionMetadata(attn, cache.BlockSize, device);
        var attention = new PagedKvAttention(cache, md);
        var idT = Torch.From<long>(ids, [1, n], device);                                   // [1, N]
        var posT = Torch.From<long>(pos, [1, n], device);                                  // [1, N]
        using var memos = Transformer.KeepForwardInputs();                           // rotary tables once per step, not per layer
        var x = Transformer.Embed(Weights, idT, posT);                                // [1, N, D]
        for (var l = 0; l < Weights.Config.NumHiddenLayers; l++)
        {
            var next = Transformer.Block(Weights, l, x, posT, attention);             // [1, N, D]
            x.Dispose();
            x = next;
        }
        var h = x.IndexSelect(1, Torch.From<long>(last, null, device));                        // [1, S, D]
        var logits = Transformer.LmHead(Weights, Transformer.FinalNorm(Weights, h));  // [1, S, V]
        return logits[0].To(ScalarType.Float32).MoveToOuter();                        // [S, V]
    }
}
