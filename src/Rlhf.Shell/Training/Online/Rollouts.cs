using Rlhf.Core.Rollouts;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Training.Data;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>One rollout row: its prompt, the generated ids, the prompt group (the prompt's index in its step) and the generator's logprobs of the ids.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Completion">The generated ids (the stop token included when one ended it).</param>
/// <param name="Group">The prompt's index in its step.</param>
/// <param name="Logprobs">The generator's <c>log_softmax(logits / (temperature + 1e-7))</c> at each generated id: the behaviour policy μ.</param>
public sealed record RolloutRow(PromptExample Prompt, int[] Completion, int Group, float[] Logprobs)
{
    /// <summary>Per generated id: the policy version that sampled it (several when weights changed mid-sequence); empty when unknown.</summary>
    public long[] TokenVersions { get; init; } = [];
}

/// <summary>
/// The trainer-side pieces of a rollout: rows from the generator's outputs, padded id tensors, logprobs of responses under an
/// engine's model, and TRL's rollout metrics.
/// </summary>
public static class Rollouts
{
    /// <summary>The generator's outputs as rows (n per prompt, in sample order), checked against the prompts they answer.</summary>
    public static RolloutRow[] Rows(PromptExample[] prompts, IReadOnlyList<RequestOutput> outputs, long k)
    {
        if (outputs.Count != prompts.Length)
            throw new InvalidOperationException($"the generator returned {outputs.Count} requests for {prompts.Length} prompts");
        var rows = new List<RolloutRow>();
        for (var i = 0; i < prompts.Length; i++)
        {
            var o = outputs[i];
            if (!o.PromptTokenIds.SequenceEqual(prompts[i].PromptIds))
                throw new InvalidOperationException($"the generator's request {i} is not prompt {i}");
            if (o.Outputs.Count != k) throw new InvalidOperationException($"the generator returned {o.Outputs.Count} samples of prompt {i}; expected {k}");
            foreach (var c in o.Outputs.OrderBy(c => c.Index)) rows.Add(new RolloutRow(prompts[i], c.TokenIds, i, c.Logprobs) { TokenVersions = c.TokenVersions });
        }
        return rows.ToArray();
    }

    /// <summary>Prompts left-padded with <paramref name="pad"/> to the longest: int64 [B, ctx].</summary>
    public static Tensor LeftPadded(int[][] prompts, long pad)
    {
        var ctx = prompts.Max(p => p.Length);
        var ids = new long[prompts.Length * ctx];
        for (var b = 0; b < prompts.Length; b++)
            for (var t = 0; t < ctx; t++)
            {
                var at = t - (ctx - prompts[b].Length);
                ids[b * ctx + t] = at >= 0 ? prompts[b][at] : pad;
            }
        return Torch.From(ids, prompts.Length, ctx);
    }

    /// <summary>Responses right-padded with <paramref name="pad"/> to <paramref name="length"/>: int64 [B, length].</summary>
    public static Tensor RightPadded(int[][] responses, int length, long pad)
    {
        var ids = new long[responses.Length * length];
        for (var b = 0; b < responses.Length; b++)
        {
            if (responses[b].Length > length) throw new InvalidOperationException($"response {b} has {responses[b].Length} tokens; max_new_tokens is {length}");
            for (var t = 0; t < length; t++) ids[b * length + t] = t < responses[b].Length ? responses[b][t] : pad;
        }
        return Torch.From(ids, responses.Length, length);
    }

    /// <summary>The generator's logprobs of the rows' completions, right-padded with 0 to <paramref name="length"/>: float32 [B, length].</summary>
    public static Tensor GeneratorLogprobs(RolloutRow[] rows, int length)
    {
        var lp = new float[rows.Length * length];
        for (var b = 0; b < rows.Length; b++)
        {
            var l = rows[b].Logprobs;
            if (l.Length != rows[b].Completion.Length)
                throw new InvalidOperationException($"row {b}: {l.Length} generator logprobs for {rows[b].Completion.Length} generated tokens");
            if (l.Length > length) throw new InvalidOperationException($"row {b} has {l.Length} tokens; max_new_tokens is {length}");
            Array.Copy(l, 0, lp, b * length, l.Length);
        }
        return Torch.From(lp, rows.Length, length);
    }

    /// <summary>
    /// On-policy agreement (TRL's names): <c>sampling/sampling_logp_difference/{mean,max}</c> of |lp_trainer − lp_generator| and
    /// <c>sampling/importance_sampling_ratio/{min,mean,max}</c> of exp(lp_trainer − lp_generator), uncorrected, over response tokens.
    /// trainer, generator [B, T], mask [B, T] bool.
    /// </summary>
    public static Rlhf.Core.Losses.TensorStats Agreement(Tensor trainer, Tensor generator, Tensor mask)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var diff = Torch.Where(mask, trainer - generator, 0.0);
        var ratio = diff.Exp();
        return Rlhf.Core.Losses.ImportanceSampling.LogpDifferenceStats(diff, mask)
            .Add("sampling/importance_sampling_ratio/min", Torch.Where(mask, ratio, double.PositiveInfinity).Min())
            .Add("sampling/importance_sampling_ratio/mean", Masked.Mean(ratio, mask))
            .Add("sampling/importance_sampling_ratio/max", Torch.Where(mask, ratio, 0.0).Max())
            .MoveToOuter();
    }

    /// <summary>
    /// The logprobs of <paramref name="responses"/> [B, T] after <paramref name="promptIds"/> [B, ctx] under an engine's model at
    /// <paramref name="temperature"/> (TRL <c>forward</c> with <c>attention_mask = query_responses != pad</c>, positions from the mask).
    /// </summary>
    public static Tensor ResponseLogprobs(ZeroEngine engine, Tensor promptIds, Tensor responses, long pad, double temperature)
    {
        using var scope = Torch.NewScope();
        var queryResponses = Torch.Cat([promptIds, responses], 1);
        var mask = queryResponses.Ne(pad);
        var logits = engine.Forward(queryResponses, TransformerLayers.Context(mask));
        return Logprobs.FromLogits(Logprobs.ResponseLogits(logits, promptIds.Size(1)), responses, temperature).MoveToOuter();
    }

    /// <summary>
    /// TRL's rollout metrics as tensors (read with the step's other stats in one sync): <c>objective/kl</c> (Σ_t k1, mean over
    /// rows), <c>objective/entropy</c> (Σ_t −lp), <c>objective/non_score_reward</c> (−kl_coef · kl), <c>objective/scores</c>,
    /// <c>objective/rlhf_reward</c> and <c>val/num_eos_tokens</c>.
    /// </summary>
    public static Rlhf.Core.Losses.TensorStats RolloutStats(RolloutBatch batch, double klCoef)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = batch.ResponseMask();
        var kl = batch.Kl().Sum(1).Mean();
        var nonScore = kl * -klCoef;
        var scores = batch.Scores.To(ScalarType.Float64).Mean();
        return new Rlhf.Core.Losses.TensorStats()
            .Add("objective/kl", kl)
            .Add("objective/entropy", Masked.Sum(-batch.Logprobs, mask, 1).Mean())
            .Add("objective/non_score_reward", nonScore)
            .Add("objective/scores", scores)
            .Add("objective/rlhf_reward", scores + nonScore)
            .Add("val/num_eos_tokens", batch.Responses.Eq(batch.StopTokenId).Sum())
            .MoveToOuter();
    }
}
