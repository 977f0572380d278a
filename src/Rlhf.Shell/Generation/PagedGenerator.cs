using System.Runtime.InteropServices;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Torch;

namespace Rlhf.Shell.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>One finished completion.</summary>
/// <param name="Index">Which of the request's n completions.</param>
/// <param name="TokenIds">Generated token ids (a stop token, when one ended it, is included).</param>
/// <param name="Logprobs">Per token <c>log_softmax(logits / (temperature + 1e-7))</c>: what the trainer recomputes.</param>
/// <param name="ProcessedLogprobs">Per token log-probability under the distribution sampled from.</param>
/// <param name="FinishReason">Stop token or length limit.</param>
public sealed record CompletionOutput(int Index, int[] TokenIds, float[] Logprobs, float[] ProcessedLogprobs, FinishReason FinishReason)
{
    /// <summary>Per token: the weights version that sampled it (PipelineRL's in-flight updates change it mid-sequence).</summary>
    public long[] TokenVersions { get; init; } = [];
}

/// <summary>A finished request: its prompt and its n completions in index order.</summary>
/// <param name="RequestId">The id given to (or returned by) <see cref="PagedGenerator.AddRequest"/>.</param>
/// <param name="PromptTokenIds">The prompt.</param>
/// <param name="Outputs">Completions 0 … n−1.</param>
public sealed record RequestOutput(string RequestId, int[] PromptTokenIds, IReadOnlyList<CompletionOutput> Outputs);

/// <summary>Counters of a generator since construction (or <see cref="PagedGenerator.ResetStats"/>).</summary>
public sealed class GeneratorStats
{
    /// <summary>Model steps run.</summary>
    public long Steps { get; internal set; }
    /// <summary>Prompt (and recomputed) tokens run through the model.</summary>
    public long PrefillTokens { get; internal set; }
    /// <summary>Decode tokens run through the model.</summary>
    public long DecodeTokens { get; internal set; }
    /// <summary>Tokens sampled.</summary>
    public long GeneratedTokens { get; internal set; }
    /// <summary>Requests preempted (and later recomputed).</summary>
    public long Preemptions { get; internal set; }
    /// <summary>Sum over steps of (token slots holding a token) / (slots of the blocks in use), for the mean.</summary>
    public double UtilizationSum { get; internal set; }
    /// <summary>Steps counted in <see cref="UtilizationSum"/>.</summary>
    public long UtilizationSteps { get; internal set; }
    /// <summary>Mean KV-memory utilisation: used token slots / allocated token slots, averaged over steps.</summary>
    public double MeanKvUtilization => UtilizationSteps == 0 ? 0 : UtilizationSum / UtilizationSteps;
    /// <summary>Most blocks in use at once.</summary>
    public int PeakBlocksUsed { get; internal set; }
    /// <summary>Wall seconds spent scheduling (block manager and queues).</summary>
    public double ScheduleSeconds { get; internal set; }
    /// <summary>Wall seconds in the model forward (index building, K/V writes, attention, logits).</summary>
    public double ForwardSeconds { get; internal set; }
    /// <summary>Wall seconds sampling and appending.</summary>
    public double SampleSeconds { get; internal set; }
}

/// <summary>
/// The vLLM-style rollout engine: paged KV cache, block manager with shared prompt blocks and copy-on-write,
/// continuous batching with preemption by recompute, and a seeded sampler returning logprobs. It reads the weights
/// record it is given on every step (in-process trainers hand it their live weights, so weight sync is free; call
/// <see cref="UpdateWeights(ModelWeights, long)"/> or <see cref="OnWeightsChanged"/> after an update so cached prefixes are forgotten).
/// Use <see cref="Generate"/> for a batch, or <see cref="AddRequest"/> + <see cref="Step"/> incrementally.
/// </summary>
public sealed class PagedGenerator : IDisposable
{
    private readonly KvCache cache;
    private readonly BlockManager blocks;
    private readonly Scheduler scheduler;
    private readonly ModelRunner runner;
    private readonly Dictionary<string, SequenceGroup> groups = new();
    private readonly Random seedSource;
    private long nextSeqId;
    private long arrivals;

    /// <summary>
    /// A generator over <paramref name="weights"/> (a language-model head) with the cache and scheduler of a config's
    /// <c>generation</c> section: <c>num_blocks</c> blocks when given, else as many as <c>kv_cache_memory_mb</c> holds,
    /// of <c>kv_cache_dtype</c> (unset: the weights' dtype). Sampling is per request (<see cref="SamplingParams"/>).
    /// </summary>
    public PagedGenerator(ModelWeights weights, GenerationSettings settings, int seed = 0)
    {
        Settings = settings;
        var c = weights.Config;
        if (c.Head != ModelHead.LanguageModel) throw new ArgumentException($"the generator needs a language-model head; {c.ModelType} weights have {c.Head}", nameof(weights));
        var blockSize = checked((int)settings.BlockSize);
        var dtype = settings.KvCacheDtype is { } d ? ToScalarType(d) : weights.Tensors.Values.First().Dtype;
        var budget = checked(settings.KvCacheMemoryMb << 20);
        var numBlocks = settings.NumBlocks is { } nb ? checked((int)nb) : KvCache.BlocksForBudget(budget, c.NumHiddenLayers, blockSize, c.NumKeyValueHeads, c.HeadDim, dtype);
        if (numBlocks < 1)
            throw new ArgumentException($"generation.kv_cache_memory_mb = {settings.KvCacheMemoryMb} holds no KV block of {KvCache.BytesPerBlock(c.NumHiddenLayers, blockSize, c.NumKeyValueHeads, c.HeadDim, dtype)} bytes", nameof(settings));
        cache = new KvCache(c.NumHiddenLayers, numBlocks, blockSize, c.NumKeyValueHeads, c.HeadDim, dtype, weights.Tensors.Values.First().Device);
        blocks = new BlockManager(numBlocks, blockSize, settings.EnablePrefixCaching, settings.Watermark);
        scheduler = new Scheduler(blocks, checked((int)settings.MaxNumBatchedTokens), checked((int)settings.MaxNumSeqs));
        runner = new ModelRunner(weights, cache);
        seedSource = new Random(seed);
    }

    private static ScalarType ToScalarType(Dtype d) => d switch
    {
        Dtype.Fp32 => ScalarType.Float32,
        Dtype.Bf16 => ScalarType.BFloat16,
        Dtype.Fp16 => ScalarType.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(d), d, "unknown dtype"),
    };

    /// <summary>The cache and scheduler settings (the config's <c>generation</c> section).</summary>
    public GenerationSettings Settings { get; }

    /// <summary>Element type of the KV cache (<c>generation.kv_cache_dtype</c>, else the weights' dtype).</summary>
    public ScalarType KvCacheDtype => cache.Dtype;

    /// <summary>The weights read on every step.</summary>
    public ModelWeights Weights => runner.Weights;

    /// <summary>Physical KV blocks.</summary>
    public int NumBlocks => blocks.NumBlocks;

    /// <summary>The block manager (read-only use: tests and telemetry).</summary>
    public BlockManager Blocks => blocks;

    /// <summary>Counters.</summary>
    public GeneratorStats Stats { get; private set; } = new();

    /// <summary>True while any request is unfinished.</summary>
    public bool HasUnfinishedRequests => scheduler.HasUnfinished;

    /// <summary>Requests queued or running.</summary>
    public int NumUnfinishedRequests => groups.Count;

    /// <summary>Starts counters afresh.</summary>
    public void ResetStats() => Stats = new GeneratorStats();

    /// <summary>The version of the weights the next <see cref="Step"/> reads (recorded per sampled token).</summary>
    public long WeightsVersion { get; private set; }

    /// <summary>Switches to a new weights record (same architecture) and forgets cached prefixes.</summary>
    public void UpdateWeights(ModelWeights weights) => UpdateWeights(weights, WeightsVersion);

    /// <summary>
    /// Switches to <paramref name="weights"/> as version <paramref name="version"/>, also between the <see cref="Step"/>s of running
    /// requests (PipelineRL's in-flight weight update, Piché et al. 2025): their next tokens are sampled from the new weights over
    /// the K/V the old ones computed (kept, as PipelineRL does), and each token records the version that sampled it. Cached
    /// prefixes of finished requests are forgotten.
    /// </summary>
    public void UpdateWeights(ModelWeights weights, long version) => UpdateWeights(weights, version, KvOnUpdate.Keep);

    /// <summary>
    /// <see cref="UpdateWeights(ModelWeights, long)"/> choosing what running requests do with their K/V: <see cref="KvOnUpdate.Keep"/>
    /// attends over what the old weights computed; <see cref="KvOnUpdate.Recompute"/> runs every running sequence's prompt and
    /// generated tokens through the new weights on the next <see cref="Step"/> (a prefill in the sequence's own blocks, the same
    /// recompute vLLM does after preemption, without freeing them), so its next token is sampled as a fresh forward of the new
    /// weights would sample it. Sequences waiting for blocks are recomputed on admission anyway.
    /// </summary>
    public void UpdateWeights(ModelWeights weights, long version, KvOnUpdate kv)
    {
        if (weights.Config != runner.Weights.Config) throw new ArgumentException("new weights must have the same config", nameof(weights));
        runner.Weights = weights;
        WeightsVersion = version;
        OnWeightsChanged();
        if (kv != KvOnUpdate.Recompute) return;
        // Blocks shared by the n samples of a prompt (or by cached prefixes) hold the same tokens at the same positions, so every
        // sharer writes the same K/V into them; a pending copy-on-write copy is overwritten by its own recompute.
        foreach (var g in groups.Values)
            foreach (var s in g.Seqs)
                if (s.Status == SequenceStatus.Running) s.NumComputed = 0;
    }

    /// <summary>Call after the shared weights were updated in place: cached prefix blocks hold stale K/V.</summary>
    public void OnWeightsChanged() => blocks.ResetPrefixCache();

    /// <summary>Queues a request; returns its id. Completions come back from <see cref="Step"/> when all n finish.</summary>
    public string AddRequest(IReadOnlyList<int> prompt, SamplingParams p, string? requestId = null)
    {
        p.Validate();
        if (prompt.Count == 0) throw new ArgumentException("prompt is empty", nameof(prompt));
        if (p.N > Settings.MaxNumSeqs) throw new ArgumentException($"n = {p.N} exceeds max_num_seqs = {Settings.MaxNumSeqs}: the request could never run", nameof(p));
        var c = runner.Weights.Config;
        foreach (var t in prompt)
            if (t < 0 || t >= c.VocabSize) throw new ArgumentException($"token {t} is outside the vocabulary [0, {c.VocabSize})", nameof(prompt));
        if (prompt.Count >= c.MaxPositionEmbeddings)
            throw new ArgumentException($"prompt of {prompt.Count} tokens leaves no room in the model's {c.MaxPositionEmbeddings} positions", nameof(prompt));
        var id = requestId ?? $"req-{arrivals}";
        if (groups.ContainsKey(id)) throw new ArgumentException($"request id '{id}' is already in use", nameof(requestId));
        var seed = (ulong)(p.Seed ?? seedSource.NextInt64());
        var promptArr = prompt.ToArray();
        var first = new Sequence(nextSeqId++, 0, seed, new List<int>(promptArr), promptArr.Length);
        var g = new SequenceGroup(id, arrivals++, promptArr, p, first);
        scheduler.Add(g);
        groups[id] = g;
        return id;
    }

    /// <summary>Drops a request wherever it is, freeing its blocks.</summary>
    public bool Abort(string requestId)
    {
        groups.Remove(requestId);
        return scheduler.Abort(requestId);
    }

    /// <summary>
    /// One engine step: schedule, copy-on-write copies, one forward over every scheduled token, sample, append, finish.
    /// Returns the requests that finished in this step.
    /// </summary>
    public IReadOnlyList<RequestOutput> Step()
    {
        var finished = new List<RequestOutput>();
        var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var sched = scheduler.Schedule();
        Stats.Preemptions += sched.Preempted.Count;
        if (sched.IsEmpty) return finished;
        Stats.Steps++;
        RecordUtilization();
        cache.CopyBlocks(sched.Copies);

        using var scope = Torch.NewScope();
        var t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        var logits = runner.Execute(sched.Seqs, blocks);                                 // [S, V]
        var t2 = System.Diagnostics.Stopwatch.GetTimestamp();

        // Rows to sample: one per sequence, or n for a prompt sampled for the first time (then forked).
        var rows = new List<SampleRow>(sched.Seqs.Count);
        var rowOf = new List<long>(sched.Seqs.Count);
        var identity = true;
        for (var i = 0; i < sched.Seqs.Count; i++)
        {
            var s = sched.Seqs[i];
            var p = s.Group.Params;
            if (s.IsPrefill) Stats.PrefillTokens += s.NumNewTokens; else Stats.DecodeTokens += s.NumNewTokens;
            var copies = s.Group.IsForked ? 1 : p.N;
            for (var c = 0; c < copies; c++)
            {
                var seed = s.Group.IsForked ? s.Seq.Seed : s.Seq.Seed + (ulong)c;
                rows.Add(new SampleRow(p, seed, s.Seq.OutputLength, s.Seq.OutputLength < p.MinTokens));
                identity &= rowOf.Count == i;
                rowOf.Add(i);
            }
        }
        var sampleLogits = identity ? logits : logits.IndexSelect(0, Torch.From<long>(rowOf.ToArray(), null, logits.Device));
        var res = Sampler.Sample(sampleLogits, rows);
        Stats.GeneratedTokens += rows.Count;

        var maxLen = runner.Weights.Config.MaxPositionEmbeddings;
        var r = 0;
        foreach (var s in sched.Seqs)
        {
            var seq = s.Seq;
            var g = s.Group;
            seq.NumComputed = seq.Tokens.Count;
            if (!g.IsForked)
            {
                // Fork the n − 1 siblings off the prompt's blocks before the parent appends its own token.
                for (var c = 1; c < g.Params.N; c++)
                {
                    var child = new Sequence(nextSeqId++, c, seq.Seed + (ulong)c, new List<int>(seq.Tokens), seq.PromptLength)
                    {
                        NumComputed = seq.NumComputed,
                        Status = SequenceStatus.Running,
                    };
                    blocks.Fork(seq.Id, child.Id);
                    g.Seqs.Add(child);
                    Append(child, g, res, r + c, maxLen);
                }
                Append(seq, g, res, r, maxLen);
                r += g.Params.N;
            }
            else
            {
                Append(seq, g, res, r, maxLen);
                r++;
            }
        }
        foreach (var s in sched.Seqs)
        {
            var g = s.Group;
            if (g.IsFinished && groups.Remove(g.RequestId)) finished.Add(ToOutput(g));
        }
        scheduler.RemoveFinished();
        var t3 = System.Diagnostics.Stopwatch.GetTimestamp();
        Stats.ScheduleSeconds += (t1 - t0) / (double)System.Diagnostics.Stopwatch.Frequency;
        Stats.ForwardSeconds += (t2 - t1) / (double)System.Diagnostics.Stopwatch.Frequency;
        Stats.SampleSeconds += (t3 - t2) / (double)System.Diagnostics.Stopwatch.Frequency;
        return finished;
    }

    /// <summary>
    /// Generates completions for every prompt and returns them in prompt order. With a seed s, prompt j gets seed
    /// s + j·n, so completion i of prompt j samples from stream s + j·n + i and no two completions share a stream.
    /// </summary>
    public IReadOnlyList<RequestOutput> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingParams p)
    {
        if (HasUnfinishedRequests) throw new InvalidOperationException("Generate needs an idle generator; use AddRequest/Step alongside other requests");
        var ids = new string[prompts.Count];
        for (var j = 0; j < prompts.Count; j++)
            ids[j] = AddRequest(prompts[j], p.Seed is { } s ? p with { Seed = s + (long)j * p.N } : p, $"gen-{arrivals}");
        var byId = new Dictionary<string, RequestOutput>();
        while (HasUnfinishedRequests)
            foreach (var o in Step()) byId[o.RequestId] = o;
        return ids.Select(id => byId[id]).ToArray();
    }

    private void Append(Sequence seq, SequenceGroup g, SamplerOutput res, int row, long maxLen)
    {
        var tok = res.Tokens[row];
        seq.Tokens.Add(tok);
        seq.Logprobs.Add(res.Logprobs[row]);
        seq.ProcessedLogprobs.Add(res.ProcessedLogprobs[row]);
        seq.TokenVersions.Add(WeightsVersion);
        var p = g.Params;
        FinishReason? reason = null;
        if (p.StopTokenIds is { } stops && seq.OutputLength >= p.MinTokens && Contains(stops, tok)) reason = FinishReason.Stop;
        else if (seq.OutputLength >= p.MaxTokens || seq.Tokens.Count >= maxLen) reason = FinishReason.Length;
        if (reason is { } why) scheduler.Finish(seq, why);
    }

    private static bool Contains(IReadOnlyList<int> xs, int x)
    {
        for (var i = 0; i < xs.Count; i++) if (xs[i] == x) return true;
        return false;
    }

    private static RequestOutput ToOutput(SequenceGroup g) =>
        new(g.RequestId, g.Prompt, g.Seqs.OrderBy(s => s.Index).Select(s => new CompletionOutput(
            s.Index,
            CollectionsMarshal.AsSpan(s.Tokens)[s.PromptLength..].ToArray(),
            s.Logprobs.ToArray(),
            s.ProcessedLogprobs.ToArray(),
            s.FinishReason ?? FinishReason.Length) { TokenVersions = s.TokenVersions.ToArray() }).ToArray());

    private void RecordUtilization()
    {
        var used = blocks.NumUsedBlocks;
        if (used == 0) return;
        Stats.UtilizationSum += blocks.FilledSlots() / (double)(used * blocks.BlockSize);
        Stats.UtilizationSteps++;
        Stats.PeakBlocksUsed = Math.Max(Stats.PeakBlocksUsed, used);
    }

    /// <summary>Frees the KV cache.</summary>
    public void Dispose() => cache.Dispose();
}
