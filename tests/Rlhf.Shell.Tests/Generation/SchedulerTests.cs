using Rlhf.Shell.Generation;

namespace Rlhf.Shell.Tests.Generation;

public class SchedulerTests
{
    private long nextId;

    private SequenceGroup Group(string id, int promptLen, int n = 1)
    {
        var prompt = Enumerable.Range(1, promptLen).ToArray();
        return new SequenceGroup(id, nextId, prompt, new SamplingParams { Temperature = 1.0, N = n }, new Sequence(nextId++, 0, 0, new List<int>(prompt), promptLen));
    }

    /// <summary>What the engine does after a forward: everything scheduled is computed, and each sequence gets one new token.</summary>
    private static void Advance(SchedulerOutput o)
    {
        foreach (var s in o.Seqs)
        {
            s.Seq.NumComputed = s.Seq.Tokens.Count;
            s.Seq.Tokens.Add(7);
        }
    }

    private static string[] Ids(SchedulerOutput o) => o.Seqs.Select(s => s.Group.RequestId + (s.IsPrefill ? ":p" : ":d")).ToArray();

    [Fact]
    public void Token_budget_admits_in_arrival_order_and_mixes_prefill_with_decode()
    {
        var s = new Scheduler(new BlockManager(100, 4, enablePrefixCaching: false, watermark: 0), maxNumBatchedTokens: 50, maxNumSeqs: 8);
        s.Add(Group("a", 20)); s.Add(Group("b", 20)); s.Add(Group("c", 20));
        var o1 = s.Schedule();
        Assert.Equal(["a:p", "b:p"], Ids(o1));
        Assert.Equal(40, o1.NumBatchedTokens);
        Advance(o1);
        var o2 = s.Schedule();
        Assert.Equal(["a:d", "b:d", "c:p"], Ids(o2));                   // decodes first, then the prefill that fits
        Assert.Equal(22, o2.NumBatchedTokens);
    }

    [Fact]
    public void Max_num_seqs_counts_the_n_samples_of_an_unforked_request()
    {
        var s = new Scheduler(new BlockManager(100, 4, enablePrefixCaching: false, watermark: 0), maxNumBatchedTokens: 100, maxNumSeqs: 3);
        s.Add(Group("a", 5, n: 2)); s.Add(Group("b", 5, n: 2));
        Assert.Equal(["a:p"], Ids(s.Schedule()));
        Assert.Single(s.Waiting);
    }

    [Fact]
    public void A_request_that_does_not_fit_blocks_the_queue_first_come_first_served()
    {
        var s = new Scheduler(new BlockManager(10, 4, enablePrefixCaching: false, watermark: 0), maxNumBatchedTokens: 100, maxNumSeqs: 8);
        s.Add(Group("a", 24));                                          // 6 blocks
        s.Add(Group("b", 20));                                          // 5 blocks: does not fit beside a
        s.Add(Group("c", 4));                                           // would fit, but may not overtake b
        Assert.Equal(["a:p"], Ids(s.Schedule()));
        Assert.Equal(["b", "c"], s.Waiting.Select(g => g.RequestId));
    }

    [Fact]
    public void Running_out_of_blocks_preempts_the_newest_request_and_requeues_it_first()
    {
        var bm = new BlockManager(6, 4, enablePrefixCaching: false, watermark: 0);
        var s = new Scheduler(bm, maxNumBatchedTokens: 100, maxNumSeqs: 8);
        s.Add(Group("a", 8)); s.Add(Group("b", 8)); s.Add(Group("c", 8)); s.Add(Group("d", 4));
        var o1 = s.Schedule();
        Assert.Equal(["a:p", "b:p", "c:p"], Ids(o1));                   // 6 blocks used; d waits
        Advance(o1);
        var o2 = s.Schedule();                                          // each needs a 3rd block: none free
        Assert.Equal(["c"], o2.Preempted.Select(g => g.RequestId));    // the newest goes, freeing 2 blocks
        Assert.Equal(["a:d", "b:d"], Ids(o2));                          // nothing admitted in a preempting step
        Assert.Equal(["c", "d"], s.Waiting.Select(g => g.RequestId));  // c (older) ahead of d
        var c = o2.Preempted[0].Seqs[0];
        Assert.Equal(0, c.NumComputed);
        Assert.Equal(SequenceStatus.Waiting, c.Status);
        Assert.Equal(9, c.Tokens.Count);                                // its sampled token is kept and will be recomputed
        Assert.Equal(6, bm.NumUsedBlocks);
        // When a finishes, c comes back as a prefill of prompt + output.
        Advance(o2);
        s.Finish(s.Running[0].Seqs[0], FinishReason.Stop);
        s.RemoveFinished();
        var o3 = s.Schedule();
        Assert.Equal(["b:d", "c:p"], Ids(o3));
        Assert.Equal(9, o3.Seqs[1].NumNewTokens);
    }

    [Fact]
    public void A_request_larger_than_the_token_budget_runs_alone_instead_of_never()
    {
        var s = new Scheduler(new BlockManager(100, 4, enablePrefixCaching: false, watermark: 0), maxNumBatchedTokens: 16, maxNumSeqs: 4);
        s.Add(Group("big", 40)); s.Add(Group("small", 4));
        Assert.Equal(["big:p"], Ids(s.Schedule()));
    }

    [Fact]
    public void A_cache_too_small_for_a_request_is_reported()
    {
        var s = new Scheduler(new BlockManager(4, 4, enablePrefixCaching: false, watermark: 0), maxNumBatchedTokens: 100, maxNumSeqs: 4);
        Assert.Throws<InvalidOperationException>(() => s.Add(Group("huge", 17)));
    }
}
