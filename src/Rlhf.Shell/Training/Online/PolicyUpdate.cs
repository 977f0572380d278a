using Rlhf.Core.Losses;
using Rlhf.Core.Objectives;
using Rlhf.Core.Rollouts;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The training side of one online step (TRL v0.11's PPOv2/RLOO inner loops): <c>num_ppo_epochs</c> passes over the prepared
/// rollouts, each cut into <c>num_mini_batches</c> × gradient-accumulation micro-batches of whole prompt groups; per micro-batch
/// the policy's logprobs, <see cref="Objective.Loss"/>, engine backward and step (the engine steps the optimizer at each
/// accumulation boundary). Holds no loss math. The group order of each epoch is <see cref="OnlineRng"/>'s, keyed by (seed, step,
/// epoch). With an off-policy correction the rollouts carry the trainer's start-of-step logprobs
/// (<see cref="RolloutBatch.ProximalLogprobs"/>) beside the generator's.
/// </summary>
public static class PolicyUpdate
{
    /// <summary>
    /// Trains <paramref name="engine"/> (and PPO's <paramref name="critic"/>, through the same loss) on <paramref name="prepared"/>;
    /// returns the micro-batches' stats (mean them for the step). <paramref name="skips"/> observes every optimizer step.
    /// </summary>
    public static List<TensorStats> Train(ZeroEngine engine, IObjective objective, ObjectiveBatch prepared, OnlinePlan plan, long pad, double temperature,
        long seed, long step, ImportanceCorrection? correction = null, Critic? critic = null, SkippedStepGuard? skips = null)
    {
        var microStats = new List<TensorStats>();
        var groups = Groups.Members(prepared.Rollouts.GroupIds);
        var micros = (int)(plan.MiniBatches * plan.GradientAccumulation);
        var perMicro = groups.Length / micros;
        if (perMicro < 1)
            throw new InvalidOperationException($"{groups.Length} prompt groups after {objective.GetType().Name}.Prepare do not fill {micros} micro-batches");
        for (var epoch = 0; epoch < plan.Epochs; epoch++)
        {
            // Every rank orders its own groups as they fall in one permutation of all ranks' groups, so the random sequence does
            // not depend on the rank count (one rank: the permutation itself).
            var first = groups.Length * engine.Rank;
            var shuffled = OnlineRng.Permutation(groups.Length * engine.WorldSize, seed, OnlineRng.Stream.MiniBatches, step, epoch)
                .Where(g => g >= first && g < first + groups.Length).Select(g => groups[g - first]).ToArray();
            for (var m = 0; m < micros; m++)
            {
                using var micro = Torch.NewScope();
                var idx = shuffled.Skip(m * perMicro).Take(perMicro).SelectMany(g => g).Select(r => (long)r).ToArray();
                var part = prepared.Rows(idx);
                var lp = Rollouts.ResponseLogprobs(engine, part.Rollouts.PromptIds, part.Rollouts.Responses, pad, temperature);
                var values = critic?.Values(part.Rollouts.PromptIds, part.Rollouts.Responses, pad);
                var (loss, stats) = Objective.Loss(objective, part, lp, values,
                    proximalLogprobs: correction is null ? null : part.Rollouts.ProximalLogprobs, correction: correction);
                // TRL PPOv2's PolicyAndValueWrapper: one backward of pg + vf_coef · vf through the policy and the value model.
                if (critic is null) engine.Backward(loss);
                else ZeroEngine.Backward(loss, engine, critic.Engine);
                engine.Step();
                skips?.Observe(engine);
                critic?.Engine.Step();
                microStats.Add(stats.MoveToOuter());
            }
        }
        return microStats;
    }
}
