using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Training;

/// <summary>
/// <c>training.max_consecutive_skipped_steps</c>, one rule for the offline stages and the online loop: counts the optimizer
/// steps the engine skipped in a row for a non-finite loss or gradient norm (DeepSpeed's fp16 overflow skip, see
/// <see cref="ZeroEngine.SkipStep"/>) and says when the limit is reached; the loop then writes a checkpoint and throws
/// <see cref="Stop"/>'s exception. The count is part of the loop's checkpointed state, so a resumed run continues it.
/// </summary>
public sealed class SkippedStepGuard
{
    private long seenSteps, seenSkipped;

    /// <summary>A guard over <paramref name="engine"/> (as it stands now, after any checkpoint load) continuing a streak of <paramref name="consecutive"/>.</summary>
    public SkippedStepGuard(ZeroEngine engine, long limit, long consecutive = 0)
        : this(limit, consecutive, engine.GlobalSteps, engine.SkippedSteps)
    {
    }

    /// <summary>A guard continuing a streak of <paramref name="consecutive"/> from an engine's counters (optimizer steps ended, of them skipped).</summary>
    public SkippedStepGuard(long limit, long consecutive, long optimizerSteps, long skippedSteps)
    {
        if (limit < 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "training.max_consecutive_skipped_steps must be ≥ 0 (0 = never stop)");
        Limit = limit;
        Consecutive = consecutive;
        (seenSteps, seenSkipped) = (optimizerSteps, skippedSteps);
    }

    /// <summary>The limit (0: never stop).</summary>
    public long Limit { get; }

    /// <summary>Optimizer steps skipped in a row up to the last one observed.</summary>
    public long Consecutive { get; private set; }

    /// <summary>Whether the streak has reached the limit.</summary>
    public bool Reached => Limit > 0 && Consecutive >= Limit;

    /// <summary>
    /// Takes in the optimizer steps <paramref name="engine"/> ended since the last call: a skipped one extends the streak, an
    /// applied one ends it. Call it after every <see cref="ZeroEngine.Step"/> (between boundaries it does nothing); observed
    /// less often, a stretch that mixes skipped and applied steps counts as ended, its order being unknown.
    /// </summary>
    public void Observe(ZeroEngine engine) => Observe(engine.GlobalSteps, engine.SkippedSteps);

    /// <summary><see cref="Observe(ZeroEngine)"/> from an engine's counters: optimizer steps ended so far, and of them skipped.</summary>
    public void Observe(long optimizerSteps, long skippedSteps)
    {
        var steps = optimizerSteps - seenSteps;
        if (steps == 0) return;
        var skipped = skippedSteps - seenSkipped;
        Consecutive = skipped == steps ? Consecutive + skipped : 0;
        (seenSteps, seenSkipped) = (optimizerSteps, skippedSteps);
    }

    /// <summary>
    /// The error that ends a run at loop step <paramref name="step"/> (optimizer step <paramref name="optimizerStep"/>), with what
    /// was seen last (<paramref name="last"/>, e.g. the loss and gradient norm) and the <paramref name="checkpoint"/> written first.
    /// </summary>
    public TrainingDivergedException Stop(long step, long optimizerStep, string last, string checkpoint)
    {
        var steps = step == optimizerStep ? "steps" : "optimizer steps";
        return new TrainingDivergedException(
            $"training stopped at step {step}: {Consecutive} optimizer steps in a row ({steps} {optimizerStep - Consecutive + 1}–{optimizerStep}) had a non-finite loss or gradient norm " +
            $"({last}) and were skipped; training.max_consecutive_skipped_steps is {Limit}. " +
            $"Checkpoint {checkpoint} holds the state before them (nothing was applied): lower the learning rate or check the data, then resume with --resume", checkpoint);
    }
}
