namespace Rlhf.Shell.Generation;

/// <summary>
/// How to sample the completions of one request (vLLM's <c>SamplingParams</c>). Processing order:
/// temperature, top-k, top-p, min-p; temperature below <see cref="GreedyTemperature"/> is greedy.
/// </summary>
/// <param name="N">Completions per prompt; they share the prompt's KV blocks.</param>
/// <param name="Temperature">Divides the logits; below 1e-5 means greedy (argmax).</param>
/// <param name="TopK">Keep the k most likely tokens (ties at the k-th value kept); 0 or less disables.</param>
/// <param name="TopP">Keep the smallest set of most likely tokens whose probability reaches p (the top token always); 1 disables.</param>
/// <param name="MinP">Drop tokens whose probability is below min_p × the top probability; 0 disables.</param>
/// <param name="MaxTokens">Most new tokens per completion.</param>
/// <param name="MinTokens">Stop tokens are masked out until this many new tokens exist.</param>
/// <param name="StopTokenIds">Token ids that end a completion (the stop token is kept in the output).</param>
/// <param name="Seed">Per-request seed: completion i samples from the stream seeded <c>Seed + i</c>; null draws a seed from the engine.</param>
public sealed record SamplingParams(
    int N = 1,
    double Temperature = 1.0,
    int TopK = 0,
    double TopP = 1.0,
    double MinP = 0.0,
    int MaxTokens = 16,
    int MinTokens = 0,
    IReadOnlyList<int>? StopTokenIds = null,
    long? Seed = null)
{
    /// <summary>Temperatures below this are greedy (vLLM's <c>_SAMPLING_EPS</c>).</summary>
    public const double GreedyTemperature = 1e-5;

    /// <summary>The sampling of a config's <c>generation</c> section (after the loader filled n and temperature from the algorithm's defaults).</summary>
    public static SamplingParams FromConfig(Rlhf.Settings.GenerationSettings g) => new(
        N: checked((int)(g.N ?? 1)),
        Temperature: g.Temperature ?? 1.0,
        TopK: checked((int)g.TopK),
        TopP: g.TopP,
        MinP: g.MinP,
        MaxTokens: checked((int)g.MaxNewTokens),
        MinTokens: checked((int)g.MinNewTokens),
        StopTokenIds: g.StopTokenIds.Select(t => checked((int)t)).ToArray(),
        Seed: g.Seed);

    /// <summary>True when sampling is argmax.</summary>
    public bool IsGreedy => Temperature < GreedyTemperature;

    /// <summary>Throws <see cref="ArgumentException"/> naming every invalid field.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (N < 1) errors.Add($"n must be at least 1, got {N}");
        if (Temperature < 0 || double.IsNaN(Temperature)) errors.Add($"temperature must be non-negative, got {Temperature}");
        if (TopP is <= 0 or > 1 || double.IsNaN(TopP)) errors.Add($"top_p must be in (0, 1], got {TopP}");
        if (MinP is < 0 or > 1 || double.IsNaN(MinP)) errors.Add($"min_p must be in [0, 1], got {MinP}");
        if (MaxTokens < 1) errors.Add($"max_tokens must be at least 1, got {MaxTokens}");
        if (MinTokens < 0 || MinTokens > MaxTokens) errors.Add($"min_tokens must be in [0, max_tokens={MaxTokens}], got {MinTokens}");
        if (errors.Count > 0) throw new ArgumentException("invalid sampling parameters: " + string.Join("; ", errors));
    }
}

/// <summary>Why a completion ended.</summary>
public enum FinishReason
{
    /// <summary>A stop token was sampled.</summary>
    Stop,
    /// <summary>The completion reached max_tokens (or the model's context length).</summary>
    Length,
}
