namespace Rlhf.Shell.Generation;

/// <summary>Where a sequence is in its life.</summary>
public enum SequenceStatus
{
    /// <summary>Queued: no KV blocks (new, or preempted and to be recomputed).</summary>
    Waiting,
    /// <summary>Holds KV blocks and is scheduled every step.</summary>
    Running,
    /// <summary>Ended by a stop token or a length limit; its blocks are freed.</summary>
    Finished,
}

/// <summary>One completion stream: prompt plus generated tokens, with the logprobs of what was sampled.</summary>
public sealed class Sequence
{
    internal Sequence(long id, int index, ulong seed, List<int> tokens, int promptLength)
    {
        Id = id;
        Index = index;
        Seed = seed;
        Tokens = tokens;
        PromptLength = promptLength;
    }

    /// <summary>Engine-wide id (the block manager's key).</summary>
    public long Id { get; }

    /// <summary>Which of the request's n completions this is.</summary>
    public int Index { get; }

    /// <summary>Seed of this completion's random stream (request seed + index).</summary>
    public ulong Seed { get; }

    /// <summary>Prompt tokens followed by generated tokens.</summary>
    public List<int> Tokens { get; }

    /// <summary>Number of prompt tokens at the front of <see cref="Tokens"/>.</summary>
    public int PromptLength { get; }

    /// <summary>Leading tokens whose K/V are in the cache.</summary>
    public int NumComputed { get; internal set; }

    /// <summary>Life-cycle state.</summary>
    public SequenceStatus Status { get; internal set; } = SequenceStatus.Waiting;

    /// <summary>Why it finished, once it has.</summary>
    public FinishReason? FinishReason { get; internal set; }

    /// <summary>Per generated token: log-probability under <c>log_softmax(logits / (temperature + 1e-7))</c> — what the trainer recomputes.</summary>
    public List<float> Logprobs { get; } = new();

    /// <summary>Per generated token: log-probability under the distribution actually sampled from (after top-k/top-p/min-p, min-tokens masking).</summary>
    public List<float> ProcessedLogprobs { get; } = new();

    /// <summary>Per generated token: the weights version (<see cref="PagedGenerator.WeightsVersion"/>) whose logits sampled it.</summary>
    public List<long> TokenVersions { get; } = new();

    /// <summary>Generated tokens so far.</summary>
    public int OutputLength => Tokens.Count - PromptLength;

    /// <summary>Times this sequence was preempted and recomputed.</summary>
    public int Preemptions { get; internal set; }
}

/// <summary>One request: a prompt, its sampling parameters, and its n completions (one sequence until the prompt is prefilled, then forked).</summary>
public sealed class SequenceGroup
{
    internal SequenceGroup(string requestId, long arrival, int[] prompt, SamplingParams p, Sequence first)
    {
        RequestId = requestId;
        Arrival = arrival;
        Prompt = prompt;
        Params = p;
        Seqs.Add(first);
    }

    /// <summary>Caller-visible id.</summary>
    public string RequestId { get; }

    /// <summary>Arrival order (first come, first served).</summary>
    public long Arrival { get; }

    /// <summary>The prompt token ids.</summary>
    public int[] Prompt { get; }

    /// <summary>Sampling parameters.</summary>
    public SamplingParams Params { get; }

    /// <summary>Completions: one until the first token is sampled, then <c>n</c>.</summary>
    public List<Sequence> Seqs { get; } = new();

    /// <summary>True once the n completions exist (after the prompt's first sampling step).</summary>
    public bool IsForked => Seqs.Count == Params.N;

    /// <summary>Sequences this group will run at most at once (n before forking).</summary>
    public int MaxRunningSeqs => IsForked ? Seqs.Count(s => s.Status != SequenceStatus.Finished) : Params.N;

    /// <summary>True when every completion finished.</summary>
    public bool IsFinished => IsForked && Seqs.All(s => s.Status == SequenceStatus.Finished);

    /// <summary>The unfinished sequences.</summary>
    public IEnumerable<Sequence> Unfinished => Seqs.Where(s => s.Status != SequenceStatus.Finished);
}
