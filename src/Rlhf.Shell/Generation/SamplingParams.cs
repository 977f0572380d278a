using Rlhf.Settings;

namespace Rlhf.Shell.Generation;

/// <summary>
/// How to sample the completions of one request (vLLM's per-request <c>SamplingParams</c>: prompts of one call may
/// differ). Processing order: temperature, top-k, top-p, min-p; temperature below <see cref="GreedyTemperature"/> is
/// greedy. Built from a config's <c>generation</c> section with <see cref="From"/>; properties left unset when
/// constructing one directly take the defaults of that section's schema (n and temperature have none: the config
/// resolver derives them from the algorithm, so they are required here).
/// </summary>
public sealed record SamplingParams
{
    // The generation section with nothing set: every default comes from configs/schema/generation.schema.json.
    private static readonly GenerationSettings Schema = new();

    /// <summary>Temperatures below this are greedy (vLLM's <c>_SAMPLING_EPS</c>).</summary>
    public const double GreedyTemperature = 1e-5;

    /// <summary>Completions per prompt; they share the prompt's KV blocks.</summary>
    public required int N { get; init; }

    /// <summary>Divides the logits; below 1e-5 means greedy (argmax).</summary>
    public required double Temperature { get; init; }

    /// <summary>Keep the k most likely tokens (ties at the k-th value kept); 0 or less disables.</summary>
    public int TopK { get; init; } = checked((int)Schema.TopK);

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (the top token always); 1 disables.</summary>
    public double TopP { get; init; } = Schema.TopP;

    /// <summary>Drop tokens whose probability is below min_p × the top probability; 0 disables.</summary>
    public double MinP { get; init; } = Schema.MinP;

    /// <summary>Most new tokens per completion (<c>generation.max_new_tokens</c>).</summary>
    public int MaxTokens { get; init; } = checked((int)Schema.MaxNewTokens);

    /// <summary>Stop tokens are masked out until this many new tokens exist (<c>generation.min_new_tokens</c>).</summary>
    public int MinTokens { get; init; } = checked((int)Schema.MinNewTokens);

    /// <summary>Token ids that end a completion (the stop token is kept in the output).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = Schema.StopTokenIds.Select(t => checked((int)t)).ToArray();

    /// <summary>Per-request seed: completion i samples from the stream seeded <c>Seed + i</c>; null draws a seed from the generator.</summary>
    public long? Seed { get; init; } = Schema.Seed;

    /// <summary>
    /// The sampling of a resolved config's <c>generation</c> section. <c>n</c> and <c>temperature</c> have no schema
    /// default (the loader fills them from the algorithm); an unresolved section without them is an error.
    /// </summary>
    public static SamplingParams From(GenerationSettings g)
    {
        var missing = new List<string>();
        if (g.N is null) missing.Add("generation.n");
        if (g.Temperature is null) missing.Add("generation.temperature");
        if (missing.Count > 0)
            throw new ArgumentException($"{string.Join(" and ", missing)} {(missing.Count == 1 ? "is" : "are")} unset: set {(missing.Count == 1 ? "it" : "them")}, or load the config with ConfigLoader, which derives {(missing.Count == 1 ? "it" : "them")} from the algorithm");
        return new SamplingParams
        {
            N = checked((int)g.N!.Value),
            Temperature = g.Temperature!.Value,
            TopK = checked((int)g.TopK),
            TopP = g.TopP,
            MinP = g.MinP,
            MaxTokens = checked((int)g.MaxNewTokens),
            MinTokens = checked((int)g.MinNewTokens),
            StopTokenIds = g.StopTokenIds.Select(t => checked((int)t)).ToArray(),
            Seed = g.Seed,
        };
    }

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
