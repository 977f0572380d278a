using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>A stats record that logs under TRL's metric names, so trainers write it without renaming.</summary>
public interface IStats
{
    /// <summary>The fields under their TRL metric keys (<c>objective/kl</c>, <c>policy/clipfrac_avg</c>, …).</summary>
    IReadOnlyDictionary<string, double> ToMetrics();
}

/// <summary>Reading stats to the host: every value of a step in one copy, under no-grad.</summary>
internal static class StatsMath
{
    /// <summary>
    /// The values of several scalar tensors with one device→host copy: stacked as float64 on their device, then copied once.
    /// Empty input gives an empty array.
    /// </summary>
    public static double[] Read(params Tensor[] scalars)
    {
        if (scalars.Length == 0) return [];
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var device = scalars[0].Device;
        var flat = scalars.Select(t => t.Detach().To(ScalarType.Float64).To(device).Reshape()).ToArray();
        return Torch.Stack(flat).Cpu().ToArray<double>();
    }
}

/// <summary>
/// Named scalar statistics kept as tensors on the device until they are read, so a training step synchronises with the device
/// once (<see cref="ToMetrics"/> stacks every value and copies them in one go) instead of once per statistic. Keys are TRL's
/// metric names. Values are detached float64 scalars owned by the scope that was current when they were added.
/// </summary>
public sealed class TensorStats : IStats
{
    private readonly List<KeyValuePair<string, Tensor>> _entries = new();

    /// <summary>The metric names, in the order they were added.</summary>
    public IReadOnlyList<string> Keys => _entries.Select(e => e.Key).ToArray();

    /// <summary>Number of statistics.</summary>
    public int Count => _entries.Count;

    /// <summary>The scalar tensor of a metric; throws naming the known keys when it is absent.</summary>
    public Tensor this[string key] =>
        _entries.FirstOrDefault(e => e.Key == key).Value
        ?? throw new KeyNotFoundException($"no statistic '{key}'; have {string.Join(", ", Keys)}");

    /// <summary>Whether a metric is present.</summary>
    public bool Contains(string key) => _entries.Any(e => e.Key == key);

    /// <summary>Adds (or replaces) a statistic: a scalar tensor, stored detached as float64. Returns this.</summary>
    public TensorStats Add(string key, Tensor scalar)
    {
        Guard.That(scalar.NumEl == 1, $"statistic '{key}' must be a scalar; got shape [{string.Join(", ", scalar.Shape)}]");
        Tensor v;
        using (Torch.NoGrad()) v = scalar.Detach().To(ScalarType.Float64).Reshape();
        var i = _entries.FindIndex(e => e.Key == key);
        if (i >= 0) _entries[i] = new(key, v);
        else _entries.Add(new(key, v));
        return this;
    }

    /// <summary>Adds every statistic of <paramref name="other"/> (replacing equal keys). Returns this.</summary>
    public TensorStats AddRange(TensorStats other)
    {
        foreach (var e in other._entries) Add(e.Key, e.Value);
        return this;
    }

    /// <summary>Hands every value to the scope outside the current one (see <see cref="Tensor.MoveToOuter"/>). Returns this.</summary>
    public TensorStats MoveToOuter()
    {
        foreach (var e in _entries) e.Value.MoveToOuter();
        return this;
    }

    /// <summary>
    /// The mean of each statistic over micro-batches (as TRL logs its per-step averages), still as tensors. Every element must
    /// have the same keys.
    /// </summary>
    public static TensorStats Mean(IReadOnlyList<TensorStats> microBatches)
    {
        Guard.That(microBatches.Count > 0, "no stats to average");
        var keys = microBatches[0].Keys;
        foreach (var m in microBatches)
            Guard.That(m.Keys.SequenceEqual(keys), $"micro-batch stats differ in keys: [{string.Join(", ", keys)}] vs [{string.Join(", ", m.Keys)}]");
        var result = new TensorStats();
        using var _ = Torch.NoGrad();
        foreach (var k in keys) result.Add(k, Torch.Stack(microBatches.Select(m => m[k]).ToArray()).Mean());
        return result;
    }

    /// <summary>Reads every statistic to the host with one synchronisation, under its TRL name.</summary>
    public IReadOnlyDictionary<string, double> ToMetrics()
    {
        var values = StatsMath.Read(_entries.Select(e => e.Value).ToArray());
        var m = new Dictionary<string, double>();
        for (var i = 0; i < values.Length; i++) m[_entries[i].Key] = values[i];
        return m;
    }
}

/// <summary>
/// What a batch of rollouts says before any update (TRL PPOv2 / RLOO / online DPO <c>objective/*</c> metrics).
/// </summary>
/// <param name="Kl"><c>objective/kl</c>: mean over rows of Σ_t KL (k1 by default).</param>
/// <param name="Entropy"><c>objective/entropy</c>: mean over rows of Σ_t −lp over response tokens.</param>
/// <param name="NonScoreReward"><c>objective/non_score_reward</c>: mean over rows of Σ_t −kl_coef·KL.</param>
/// <param name="RlhfReward"><c>objective/rlhf_reward</c>: mean score + mean non-score reward.</param>
/// <param name="Scores"><c>objective/scores</c>: mean score.</param>
/// <param name="NumEosTokens"><c>val/num_eos_tokens</c>: stop tokens in the truncated responses.</param>
/// <param name="ScoresMargin"><c>objective/scores_margin</c> (online DPO: mean chosen − rejected score), or null.</param>
public sealed record RolloutStats(double Kl, double Entropy, double NonScoreReward, double RlhfReward, double Scores, double NumEosTokens,
    double? ScoresMargin = null) : IStats
{
    /// <summary>
    /// Computes the rollout metrics of TRL PPOv2 (<c>mean_kl = kl.sum(1).mean()</c>, <c>mean_entropy = (−logprobs).sum(1).mean()</c>,
    /// …). Unlike TRL, the entropy sum skips padding (TRL adds −1 per padded token through INVALID_LOGPROB).
    /// </summary>
    public static RolloutStats Compute(RolloutBatch batch, double klCoef, KlEstimator estimator, Tensor? scoresMargin = null)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = batch.ResponseMask();
        var kl = batch.Kl(estimator).Sum(1).Mean();
        var entropy = Masked.Sum(-batch.Logprobs, mask, 1).Mean();
        var nonScore = kl * -klCoef;
        var scores = batch.Scores.To(ScalarType.Float64).Mean();
        var eos = batch.Responses.Eq(batch.StopTokenId).Sum();
        var v = scoresMargin is null
            ? StatsMath.Read(kl, entropy, nonScore, scores, eos)
            : StatsMath.Read(kl, entropy, nonScore, scores, eos, scoresMargin);
        return new RolloutStats(v[0], v[1], v[2], v[3] + v[2], v[3], v[4], scoresMargin is null ? null : v[5]);
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics()
    {
        var m = new Dictionary<string, double>
        {
            ["objective/kl"] = Kl,
            ["objective/entropy"] = Entropy,
            ["objective/non_score_reward"] = NonScoreReward,
            ["objective/rlhf_reward"] = RlhfReward,
            ["objective/scores"] = Scores,
            ["val/num_eos_tokens"] = NumEosTokens,
        };
        if (ScoresMargin is { } s) m["objective/scores_margin"] = s;
        return m;
    }
}
