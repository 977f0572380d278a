namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// Every bound the tokenizer reader puts on a <c>tokenizer.json</c>, in one place. A file beyond one is refused with
/// an error naming the file, the JSON path and the bound; none is near what released tokenizers need (Llama-3's file
/// is 9 MB with 128,256 ids and 280,147 merges; Gemma-3's 33 MB with 262,144 ids).
/// </summary>
public sealed record TokenizerLimits
{
    /// <summary>The bounds used when none are given.</summary>
    public static TokenizerLimits Default { get; } = new();

    /// <summary>Largest file read, in bytes (read in a bounded way, so /dev/zero or a pipe cannot exhaust memory).</summary>
    public long MaxFileBytes { get; init; } = 256L << 20;

    /// <summary>Deepest nesting of JSON objects and arrays.</summary>
    public int MaxJsonDepth { get; init; } = 64;

    /// <summary>Ids must be below this (it bounds the id → token table allocated at load).</summary>
    public int MaxVocabularySize { get; init; } = 1 << 22;

    /// <summary>Most merges.</summary>
    public int MaxMerges { get; init; } = 1 << 22;

    /// <summary>Most added tokens.</summary>
    public int MaxAddedTokens { get; init; } = 1 << 16;

    /// <summary>Longest vocabulary, merge or added token, in UTF-16 code units.</summary>
    public int MaxTokenLength { get; init; } = 1 << 16;

    /// <summary>Longest pre-tokenizer regex, in UTF-16 code units.</summary>
    public int MaxPatternLength { get; init; } = 1 << 13;

    /// <summary>Time one regex match may take before the pre-tokenizer gives up with an error (catastrophic backtracking).</summary>
    public TimeSpan RegexMatchTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most pre-tokens whose BPE result is cached (the cache stops growing there, as Hugging Face's does).</summary>
    public int MaxCachedPreTokens { get; init; } = 1 << 17;

    /// <summary>Longest pre-token (UTF-16 code units) whose BPE result is cached.</summary>
    public int MaxCachedPreTokenLength { get; init; } = 256;
}
