using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Online;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Quickstart;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Sampling a trained policy (a Hugging Face directory) with the paged generator, and what the quickstart makes of the
/// samples: gold-labelled preference pairs for the reward model, and the per-prompt numbers of an evaluation.
/// </summary>
public static class PolicySamples
{
    /// <summary>
    /// <paramref name="n"/> samples of every prompt from the policy in <paramref name="modelDirectory"/> at
    /// <paramref name="temperature"/> (the cache and scheduler of <paramref name="generation"/>, the tokenizer's EOS as the stop
    /// token, per-request seeds from <paramref name="seed"/>): <c>result[i][j]</c> is sample j of prompt i.
    /// </summary>
    public static RewardSample[][] Sample(string modelDirectory, GenerationSettings generation, IReadOnlyList<PromptExample> prompts, int n,
        double temperature, long seed, ITokenizer tokenizer, Device device)
    {
        if (prompts.Count == 0) return [];
        using var scope = Torch.NewScope();
        using var weights = HfModelDirectory.Load(modelDirectory, ScalarType.Float32);
        using var onDevice = device == Device.Cpu ? null : weights.Map((_, t) => t.To(device));
        using var generator = new PagedGenerator(onDevice ?? weights, generation, checked((int)(seed & 0x7fffffff)));
        var sampling = SamplingParams.From(generation with { N = n, Temperature = temperature }) with { StopTokenIds = [tokenizer.EosId!.Value], Seed = seed };
        var outputs = generator.Generate(prompts.Select(p => (IReadOnlyList<int>)p.PromptIds).ToArray(), sampling);
        return prompts.Select((p, i) => outputs[i].Outputs.OrderBy(o => o.Index)
            .Select(o => RewardSamples.FromIds(p.PromptText, p.PromptIds, o.TokenIds, tokenizer)).ToArray()).ToArray();
    }

    /// <summary>
    /// Preference pairs from samples labelled by the gold reward, as the async_rlhf paper labels its pairs with its gold
    /// model: the samples of each prompt are paired in order (0 with 1, 2 with 3, …), the higher gold reward is chosen and
    /// a pair whose gold rewards tie is dropped (it carries no preference). Returns the pairs and how many ties were dropped.
    /// </summary>
    public static (IReadOnlyList<PreferenceText> Pairs, int Ties) GoldLabelledPairs(SyntheticTask task, IReadOnlyList<RewardSample[]> samples)
    {
        var pairs = new List<PreferenceText>();
        var ties = 0;
        foreach (var group in samples)
            for (var j = 0; j + 1 < group.Length; j += 2)
            {
                var (a, b) = (group[j], group[j + 1]);
                var ga = task.GoldReward(a.PromptText, a.CompletionText, a.FinishedWithStop);
                var gb = task.GoldReward(b.PromptText, b.CompletionText, b.FinishedWithStop);
                if (ga == gb) { ties++; continue; }
                pairs.Add(ga > gb ? new PreferenceText(a.PromptText, a.CompletionText, b.CompletionText) : new PreferenceText(a.PromptText, b.CompletionText, a.CompletionText));
            }
        return (pairs, ties);
    }

    /// <summary>Writes pairs as JSONL in TRL's standard preference layout, <c>{"prompt", "chosen", "rejected"}</c> per line.</summary>
    public static void WritePairs(string path, IEnumerable<PreferenceText> pairs)
    {
        var lines = pairs.Select(p => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["prompt"] = p.Prompt, ["chosen"] = p.Chosen, ["rejected"] = p.Rejected,
        }));
        TrainingRun.WriteAtomically(path, string.Concat(lines.Select(l => l + "\n")));
    }

    /// <summary>
    /// Σ_t log π(y_t | x, y_&lt;t) over each sample's completion ids (the stop token included) under the policy in
    /// <paramref name="modelDirectory"/> at <paramref name="temperature"/>, run frozen: one number per sample.
    /// </summary>
    public static double[] SequenceLogprobs(string modelDirectory, IReadOnlyList<RewardSample> samples, double temperature, int pad, DeepSpeedSettings engineSettings, Device device)
    {
        if (samples.Count == 0) return [];
        using var scope = Torch.NewScope();
        using var noGrad = Torch.NoGrad();
        ZeroEngine engine;
        using (var weights = HfModelDirectory.Load(modelDirectory, ScalarType.Float32))
            engine = ZeroEngine.Frozen(new TransformerLayers(weights), engineSettings, null, 0, device);
        using var _ = engine;
        var width = Math.Max(1, samples.Max(s => s.CompletionIds.Length));
        var prompts = Rollouts.LeftPadded(samples.Select(s => s.PromptIds).ToArray(), pad).To(device);
        var responses = Rollouts.RightPadded(samples.Select(s => s.CompletionIds).ToArray(), width, pad).To(device);
        var lp = Rollouts.ResponseLogprobs(engine, prompts, responses, pad, temperature).To(Device.Cpu).To(ScalarType.Float64).ToArray<double>();   // [B, width]
        return samples.Select((s, b) => Enumerable.Range(0, s.CompletionIds.Length).Sum(t => lp[b * width + t])).ToArray();
    }
}
