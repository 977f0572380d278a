namespace Rlhf.Shell.Generation;

/// <summary>A sequence scheduled this step: compute its tokens <c>[NumComputed, NumComputed + NumNewTokens)</c>.</summary>
/// <param name="Seq">The sequence.</param>
/// <param name="Group">Its request.</param>
/// <param name="NumNewTokens">Tokens to run through the model this step (1 for decode).</param>
/// <param name="IsPrefill">True for a prompt (or a recompute after preemption or a weights update), false for one decode token.</param>
public readonly record struct ScheduledSeq(Sequence Seq, SequenceGroup Group, int NumNewTokens, bool IsPrefill);

/// <summary>What one step runs: the sequences, the copy-on-write block copies to do first, and who was preempted.</summary>
public sealed class SchedulerOutput
{
    /// <summary>Scheduled sequences: decodes first (oldest request first), then prefills.</summary>
    public List<ScheduledSeq> Seqs { get; } = new();

    /// <summary>Block copies to perform before the forward (copy-on-write).</summary>
    public List<BlockCopy> Copies { get; } = new();

    /// <summary>Requests preempted this step (their blocks freed; they will be recomputed).</summary>
    public List<SequenceGroup> Preempted { get; } = new();

    /// <summary>Tokens this step computes.</summary>
    public int NumBatchedTokens { get; internal set; }

    /// <summary>True when nothing was scheduled.</summary>
    public bool IsEmpty => Seqs.Count == 0;
}

/// <summary>
/// Continuous-batching scheduler (vLLM): a waiting and a running queue served first come, first served.
/// Each step decodes every running sequence (one token each), preempting the newest running request by
/// recompute when the KV blocks run out, then admits waiting requests while the token budget, the sequence
/// cap and the free blocks allow — prefill and decode share one step.
/// </summary>
public sealed class Scheduler
{
    private readonly BlockManager blocks;
    private readonly LinkedList<SequenceGroup> waiting = new();
    private List<SequenceGroup> running = new();
    private List<SequenceGroup> spare = new();

    /// <summary>A scheduler over a block manager with the budgets of one step (vLLM's <c>SchedulerConfig</c>).</summary>
    /// <param name="blocks">The block manager.</param>
    /// <param name="maxNumBatchedTokens">Most tokens computed in one forward (decode tokens count one each): <c>generation.max_num_batched_tokens</c>.</param>
    /// <param name="maxNumSeqs">Most sequences running at once: <c>generation.max_num_seqs</c>.</param>
    public Scheduler(BlockManager blocks, int maxNumBatchedTokens, int maxNumSeqs)
    {
        if (maxNumSeqs < 1) throw new ArgumentOutOfRangeException(nameof(maxNumSeqs), $"max_num_seqs must be positive, got {maxNumSeqs}");
        if (maxNumBatchedTokens < maxNumSeqs)
            throw new ArgumentOutOfRangeException(nameof(maxNumBatchedTokens), $"max_num_batched_tokens ({maxNumBatchedTokens}) must be at least max_num_seqs ({maxNumSeqs})");
        this.blocks = blocks;
        MaxNumBatchedTokens = maxNumBatchedTokens;
        MaxNumSeqs = maxNumSeqs;
    }

    /// <summary>Most tokens computed in one step.</summary>
    public int MaxNumBatchedTokens { get; }

    /// <summary>Most sequences running at once.</summary>
    public int MaxNumSeqs { get; }

    /// <summary>The block manager.</summary>
    public BlockManager Blocks => blocks;

    /// <summary>Requests without blocks, in arrival order.</summary>
    public IReadOnlyCollection<SequenceGroup> Waiting => waiting;

    /// <summary>Requests holding blocks, oldest admitted first.</summary>
    public IReadOnlyList<SequenceGroup> Running => running;

    /// <summary>Total preemptions so far.</summary>
    public long NumPreemptions { get; private set; }

    /// <summary>True while any request is unfinished.</summary>
    public bool HasUnfinished => waiting.Count > 0 || running.Count > 0;

    /// <summary>Queues a new request.</summary>
    public void Add(SequenceGroup group)
    {
        var need = blocks.BlocksFor(group.Prompt.Length);
        if (need > blocks.NumBlocks - blocks.WatermarkBlocks)
            throw new InvalidOperationException($"request {group.RequestId}: prompt of {group.Prompt.Length} tokens needs {need} KV blocks; the cache has {blocks.NumBlocks}");
        waiting.AddLast(group);
    }

    /// <summary>Removes finished requests from the running queue (their sequences' blocks are already freed).</summary>
    public void RemoveFinished()
    {
        if (running.Any(g => g.IsFinished)) running.RemoveAll(g => g.IsFinished);
    }

    /// <summary>Frees a sequence's blocks and marks it finished.</summary>
    public void Finish(Sequence seq, FinishReason reason)
    {
        if (seq.Status == SequenceStatus.Running) blocks.Free(seq.Id);
        seq.Status = SequenceStatus.Finished;
        seq.FinishReason = reason;
    }

    /// <summary>Aborts a request wherever it is, freeing its blocks. Returns false when unknown.</summary>
    public bool Abort(string requestId)
    {
        foreach (var g in waiting)
            if (g.RequestId == requestId) { waiting.Remove(g); return true; }
        var i = running.FindIndex(g => g.RequestId == requestId);
        if (i < 0) return false;
        foreach (var s in running[i].Seqs)
            if (s.Status == SequenceStatus.Running) { blocks.Free(s.Id); s.Status = SequenceStatus.Finished; s.FinishReason ??= FinishReason.Length; }
        running.RemoveAt(i);
        return true;
    }

    /// <summary>Decides the next step: which sequences compute which tokens, and the block copies to make first.</summary>
    public SchedulerOutput Schedule()
    {
        var output = new SchedulerOutput();
        var tokenBudget = MaxNumBatchedTokens;
        var seqBudget = MaxNumSeqs;

        // 1. Decode every running request, oldest first; preempt the newest when blocks run out.
        spare.Clear();
        var lo = 0;
        var hi = running.Count; // running[lo..hi) still to place
        while (lo < hi)
        {
            var g = running[lo++];
            var ok = true;
            while (!blocks.CanAppendSlots(RunningIds(g)))
            {
                if (lo < hi)
                {
                    Preempt(running[--hi], output);
                }
                else
                {
                    Preempt(g, output);
                    ok = false;
                    break;
                }
            }
            if (!ok) break;
            foreach (var s in g.Seqs)
            {
                if (s.Status != SequenceStatus.Running) continue;
                if (blocks.AppendSlot(s.Id) is { } copy) output.Copies.Add(copy);
                var n = s.Tokens.Count - s.NumComputed;        // 1, or all tokens after PagedGenerator.UpdateWeights with KvOnUpdate.Recompute
                output.Seqs.Add(new ScheduledSeq(s, g, n, n > 1));
                tokenBudget -= n;
                seqBudget--;
            }
            spare.Add(g);
        }
        (running, spare) = (spare, running);

        // 2. Admit waiting requests in arrival order while everything fits (not in a step that had to preempt).
        if (output.Preempted.Count == 0)
        {
            while (waiting.First is { } node)
            {
                var g = node.Value;
                var tokens = 0;
                var needBlocks = 0;
                foreach (var s in g.Unfinished) { tokens += s.Tokens.Count; needBlocks += blocks.BlocksFor(s.Tokens.Count); }
                if (g.MaxRunningSeqs > seqBudget) break;
                // A request larger than the whole token budget runs alone rather than never.
                if (tokens > tokenBudget && output.Seqs.Count > 0) break;
                if (!blocks.CanAllocate(needBlocks))
                {
                    if (running.Count == 0 && output.Seqs.Count == 0)
                        throw new InvalidOperationException(
                            $"request {g.RequestId} needs {needBlocks} KV blocks but only {blocks.NumFreeBlocks - blocks.WatermarkBlocks} can ever be free; enlarge the KV cache");
                    break;
                }
                waiting.RemoveFirst();
                foreach (var s in g.Unfinished)
                {
                    var cachedTokens = blocks.Allocate(s.Id, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens));
                    s.NumComputed = cachedTokens;
                    s.Status = SequenceStatus.Running;
                    var n = s.Tokens.Count - cachedTokens;
                    output.Seqs.Add(new ScheduledSeq(s, g, n, true));
                    tokenBudget -= n;
                }
                seqBudget -= g.MaxRunningSeqs;
                running.Add(g);
            }
        }
        output.NumBatchedTokens = MaxNumBatchedTokens - tokenBudget;
        return output;
    }

    private static IEnumerable<long> RunningIds(SequenceGroup g)
    {
        foreach (var s in g.Seqs)
            if (s.Status == SequenceStatus.Running) yield return s.Id;
    }

    private void Preempt(SequenceGroup g, SchedulerOutput output)
    {
        foreach (var s in g.Seqs)
        {
            if (s.Status != SequenceStatus.Running) continue;
            blocks.Free(s.Id);
            s.Status = SequenceStatus.Waiting;
            s.NumComputed = 0;
            s.Preemptions++;
        }
        waiting.AddFirst(g);
        output.Preempted.Add(g);
        NumPreemptions++;
    }
}
