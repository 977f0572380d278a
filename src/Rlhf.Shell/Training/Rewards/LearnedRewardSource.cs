using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Rewards;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// A learned reward model as a reward source: a Hugging Face directory with a scalar score head
/// (<c>…ForSequenceClassification</c>, e.g. the reward-model stage's <c>final/</c>) run frozen through the engine, scoring
/// prompt + completion ids at the last non-pad token (TRL <c>get_reward</c>: the score head at
/// <c>first_true_indices(ids == pad) − 1</c>; here the last position the attention mask holds, which is the same for
/// right padding). Rows are right-padded and scored <see cref="BatchSize"/> at a time.
/// </summary>
public sealed class LearnedRewardSource : IRewardSource, IDisposable
{
    private readonly ZeroEngine engine;
    private readonly int padId;
    private readonly Device device;

    /// <summary>A source over a frozen score-head <paramref name="engine"/>; <paramref name="padId"/> pads rows (masked out).</summary>
    public LearnedRewardSource(ZeroEngine engine, string name, int padId, int batchSize, Device device)
    {
        if (engine.Trainable) throw new ArgumentException("a reward model scores with a frozen engine (ZeroEngine.Frozen)", nameof(engine));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "reward.infer_batch_size must be at least 1");
        this.engine = engine;
        this.padId = padId;
        this.device = device;
        Name = name;
        BatchSize = batchSize;
    }

    /// <summary>
    /// The reward model of the <c>reward</c> section: <c>model_args.model_name_or_path</c> (else <c>model.path</c>) must be a
    /// directory whose config.json has a score head; it runs frozen under <c>strategy_args.strategy_config</c> (else the
    /// <c>engine</c> section) in batches of <c>infer_batch_size</c>.
    /// </summary>
    public static LearnedRewardSource Load(RewardSettings reward, RlhfConfig config, int padId, Device device)
    {
        var dir = reward.ModelArgs?.ModelNameOrPath ?? config.Model.Path
                  ?? throw new ArgumentException("reward.model_args.model_name_or_path: the reward model's directory is not set (nor model.path)");
        var head = HfModelDirectory.LoadConfig(dir).Head;
        if (head != ModelHead.Score)
            throw new ArgumentException($"reward.model_args.model_name_or_path: {dir} holds a language model, not a reward model (its config.json has no …ForSequenceClassification architecture with one label)");
        var settings = reward.StrategyArgs?.StrategyConfig ?? config.Engine;
        using var weights = HfModelDirectory.Load(dir);
        var engine = ZeroEngine.Frozen(new TransformerLayers(weights), settings, null, unchecked((ulong)config.Training.Seed), device);
        return new LearnedRewardSource(engine, $"reward_model({Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)))})", padId,
            checked((int)reward.InferBatchSize), device);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Rows per forward.</summary>
    public int BatchSize { get; }

    /// <summary>
    /// The score at each row's last real token: ids [B, L] (int64), attention mask [B, L] (1 = real) → [B] (in the caller's
    /// scope). Differentiable when the engine is trainable (the reward-model stage uses it too).
    /// </summary>
    public static Tensor LastTokenScores(ZeroEngine engine, Tensor ids, Tensor attentionMask)
    {
        using var scope = Torch.NewScope();
        var perToken = engine.Forward(ids, TransformerLayers.Context(attentionMask));          // [B, L]
        var last = ScoreHead.LastTokenIndex(attentionMask).Unsqueeze(1);                     // [B, 1]
        return perToken.Gather(1, last).Squeeze(1).MoveToOuter();                            // [B]
    }

    /// <inheritdoc />
    public Tensor Score(IReadOnlyList<RewardSample> batch)
    {
        var scores = new float[batch.Count];
        using var noGrad = Torch.NoGrad();
        for (var start = 0; start < batch.Count; start += BatchSize)
        {
            using var scope = Torch.NewScope();
            var rows = batch.Skip(start).Take(BatchSize).Select(s => s.PromptIds.Concat(s.CompletionIds).ToArray()).ToArray();
            var width = Math.Max(1, rows.Max(r => r.Length));
            var ids = new long[rows.Length * width];
            var mask = new long[rows.Length * width];
            for (var b = 0; b < rows.Length; b++)
                for (var t = 0; t < width; t++)
                {
                    ids[b * width + t] = t < rows[b].Length ? rows[b][t] : padId;
                    mask[b * width + t] = t < rows[b].Length ? 1 : 0;
                }
            var r = LastTokenScores(engine, Torch.From(ids, rows.Length, width).To(device), Torch.From(mask, rows.Length, width).To(device));
            r.To(ScalarType.Float32).To(Device.Cpu).ToArray<float>().CopyTo(scores, start);
        }
        for (var i = 0; i < scores.Length; i++)
            if (!float.IsFinite(scores[i]))
                throw new InvalidOperationException($"reward model {Name} scored sample {i} of the batch {scores[i]} (prompt \"{batch[i].PromptText}\"); scores must be finite");
        return Torch.From(scores);
    }

    /// <summary>Releases the engine.</summary>
    public void Dispose() => engine.Dispose();
}
