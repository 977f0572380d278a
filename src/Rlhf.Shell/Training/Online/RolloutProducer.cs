using System.Diagnostics;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Training.Online;

/// <summary>What the generator made for one step: the prompts, n completions each, the policy version that sampled them and the time it took.</summary>
public sealed record GeneratedStep(long Step, PromptExample[] Prompts, RolloutRow[] Rows, long Version, double GenerateSeconds);

/// <summary>
/// The generation side of the online loop: each step's prompts (epochs of shuffled training prompts, a pure function of the
/// step: <see cref="OnlineRng"/>) and n completions per prompt from the paged generator reading the policy's live weights (a
/// version swap per step, no copy in shared mode). The generator is created on the first step from the first version's view and
/// reused after; in the asynchronous loop it lives on the worker thread. Under many ranks every rank draws the step's global
/// prompt batch and keeps its own share (rank r: prompts r·P … (r+1)·P − 1), sampling them with the request seeds a single
/// process would give them, so a run's rollouts do not depend on the number of ranks. <paramref name="kvOnUpdate"/> says what running
/// sequences do with their K/V when an in-flight update arrives (<c>training.kv_on_update</c>).
/// </summary>
public sealed class RolloutProducer(
    PromptExample[] examples, GenerationSettings generation, SamplingParams sampling, OnlinePlan plan, long seed, int rank = 0,
    KvOnUpdate kvOnUpdate = KvOnUpdate.Keep) : IDisposable
{
    private PagedGenerator? generator;
    private long cachedEpoch = -1;
    private int[] cachedOrder = [];

    /// <summary>Prompts drawn (by all ranks) before step <paramref name="step"/>: the data cursor at its start.</summary>
    public long CursorBefore(long step) => (step - 1) * plan.PromptsPerStep;

    /// <summary>
    /// This rank's <see cref="OnlinePlan.PromptsPerRank"/> prompts of step <paramref name="step"/>'s <see cref="OnlinePlan.PromptsPerStep"/>:
    /// positions <see cref="CursorBefore"/> onward of the endless sequence of data epochs, each a fresh shuffle of all training prompts.
    /// </summary>
    public PromptExample[] Prompts(long step)
    {
        var batch = new PromptExample[plan.PromptsPerStep];
        var cursor = CursorBefore(step);
        for (var i = 0; i < batch.Length; i++, cursor++)
        {
            var epoch = cursor / examples.Length;
            if (epoch != cachedEpoch)
            {
                cachedOrder = OnlineRng.Permutation(examples.Length, seed, OnlineRng.Stream.PromptOrder, epoch);
                cachedEpoch = epoch;
            }
            batch[i] = examples[cachedOrder[cursor % examples.Length]];
        }
        return batch.Skip(checked((int)(rank * plan.PromptsPerRank))).Take(checked((int)plan.PromptsPerRank)).ToArray();
    }

    /// <summary>
    /// Generates step <paramref name="step"/>'s rollouts from <paramref name="prompts"/> with the weights <paramref name="lease"/> holds.
    /// With <paramref name="newer"/> (in-flight updates, PipelineRL) it is asked between decode steps for a newer version; one it
    /// returns is adopted mid-sequence (K/V kept or recomputed, as <c>training.kv_on_update</c> says) and stays referenced by the
    /// generator until the next call.
    /// </summary>
    public GeneratedStep Generate(long step, PromptExample[] prompts, WeightsLease lease, TransformerLayers layers, Func<WeightsLease?>? newer = null)
    {
        var clock = Stopwatch.StartNew();
        var view = layers.LiveWeights(lease);
        if (generator is null) generator = new PagedGenerator(view, generation, checked((int)(seed & 0x7fffffff)));
        generator.UpdateWeights(view, lease.Version);
        // Rank r's first request is request r·P of the single-process step (PagedGenerator.Generate: prompt j gets seed s + j·n).
        var p = sampling with { Seed = seed * 1_000_003 + step + rank * plan.PromptsPerRank * plan.SamplesPerPrompt };
        IReadOnlyList<RequestOutput> outputs;
        if (newer is null) outputs = generator.Generate(prompts.Select(x => (IReadOnlyList<int>)x.PromptIds).ToArray(), p);
        else
        {
            // PagedGenerator.Generate's request seeds (prompt j: s + j·n), with a version check between engine steps.
            var ids = prompts.Select((x, j) => generator.AddRequest(x.PromptIds, p with { Seed = p.Seed + (long)j * p.N }, $"step{step}-{j}")).ToArray();
            var byId = new Dictionary<string, RequestOutput>();
            while (generator.HasUnfinishedRequests)
            {
                if (newer() is { } next) generator.UpdateWeights(layers.LiveWeights(next), next.Version, kvOnUpdate);
                foreach (var o in generator.Step()) byId[o.RequestId] = o;
            }
            outputs = ids.Select(id => byId[id]).ToArray();
        }
        return new GeneratedStep(step, prompts, Rollouts.Rows(prompts, outputs, plan.SamplesPerPrompt), lease.Version, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Frees the generator's KV cache.</summary>
    public void Dispose() => generator?.Dispose();
}
