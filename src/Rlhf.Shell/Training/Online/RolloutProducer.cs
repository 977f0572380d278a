using System.Diagnostics;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Training.Online;

/// <summary>What the generator made for one step: the prompts, n completions each, the policy version that sampled them and the time it took.</summary>
public sealed record GeneratedStep(long Step, PromptExample[] Prompts, RolloutRow[] Rows, long Version, double GenerateSeconds);

/// <summary>
/// The generation side of the online loop: draws each step's prompts (epochs of shuffled training prompts) and samples n
/// completions per prompt with the paged generator reading the policy's live weights (a version swap per step, no copy in
/// shared mode). The generator is created on the first step from the first version's view and reused after. Under many ranks
/// every rank draws the step's global prompt batch from the same shuffle and keeps its own share (rank r: prompts
/// r·P … (r+1)·P − 1), sampling them with the request seeds a single process would give them, so a run's rollouts do not
/// depend on the number of ranks.
/// </summary>
public sealed class RolloutProducer(
    PromptExample[] examples, GenerationSettings generation, SamplingParams sampling, OnlinePlan plan, long seed, Random order, int rank = 0) : IDisposable
{
    private readonly Queue<int> queue = new();
    private PagedGenerator? generator;

    /// <summary>
    /// This rank's <see cref="OnlinePlan.PromptsPerRank"/> prompts of the next <see cref="OnlinePlan.PromptsPerStep"/> (a fresh
    /// shuffle of all training prompts whenever the last is used up).
    /// </summary>
    public PromptExample[] NextPrompts()
    {
        var batch = new PromptExample[plan.PromptsPerStep];
        for (var i = 0; i < batch.Length; i++)
        {
            if (queue.Count == 0) foreach (var j in Enumerable.Range(0, examples.Length).OrderBy(_ => order.Next())) queue.Enqueue(j);
            batch[i] = examples[queue.Dequeue()];
        }
        return batch.Skip(checked((int)(rank * plan.PromptsPerRank))).Take(checked((int)plan.PromptsPerRank)).ToArray();
    }

    /// <summary>Generates step <paramref name="step"/>'s rollouts from <paramref name="prompts"/> with the weights <paramref name="lease"/> holds.</summary>
    public GeneratedStep Generate(long step, PromptExample[] prompts, WeightsLease lease, TransformerLayers layers)
    {
        var clock = Stopwatch.StartNew();
        var view = layers.LiveWeights(lease);
        if (generator is null) generator = new PagedGenerator(view, generation, checked((int)(seed & 0x7fffffff)));
        else generator.UpdateWeights(view);
        var outputs = generator.Generate(prompts.Select(p => (IReadOnlyList<int>)p.PromptIds).ToArray(), sampling with { Seed = seed * 1_000_003 + step + rank * plan.PromptsPerRank * plan.SamplesPerPrompt });
        return new GeneratedStep(step, prompts, Rollouts.Rows(prompts, outputs, plan.SamplesPerPrompt), lease.Version, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Frees the generator's KV cache.</summary>
    public void Dispose() => generator?.Dispose();
}
