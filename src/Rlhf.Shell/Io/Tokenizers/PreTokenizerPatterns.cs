namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// The byte-level BPE pre-tokenizer regexes — GPT-2's (Hugging Face <c>tokenizers</c>, <c>src/pre_tokenizers/byte_level.rs</c>),
/// Llama-3's and Qwen2's (the <c>Split</c> patterns of their tokenizer.json files) — and their compilation for .NET.
/// </summary>
public static class PreTokenizerPatterns
{
    /// <summary>GPT-2 (also the ByteLevel pre-tokenizer with <c>use_regex</c>).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama-3: case-insensitive contractions, digits in runs of at most three, newlines grouped.</summary>
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2: as Llama-3 with single digits (and NFC normalisation, applied by the tokenizer).</summary>
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The pattern for a name: gpt2, llama3 (or llama-3), qwen2.</summary>
    public static string ByName(string name) => name.ToLowerInvariant().Replace("-", "") switch
    {
        "gpt2" => Gpt2,
        "llama3" => Llama3,
        "qwen2" => Qwen2,
        _ => throw new ArgumentException($"unknown pre-tokenizer '{name}' (known: gpt2, llama3, qwen2)", nameof(name)),
    };

    /// <summary>
    /// Compiles a Hugging Face (Oniguruma) pre-tokenizer pattern for .NET so that it matches over Unicode scalar values
    /// (<see cref="ScalarRegex"/>): letters and digits outside the BMP (𝐀, 𠀀, 𝟏) are <c>\p{L}</c>/<c>\p{N}</c> and
    /// quantifiers count scalar values, as in <c>tokenizers</c>. Each match may take at most <paramref name="matchTimeout"/>.
    /// Throws <see cref="ArgumentException"/> for syntax it cannot translate.
    /// </summary>
    internal static ScalarRegex Compile(string pattern, TimeSpan matchTimeout) => new(pattern, matchTimeout);

    /// <summary>
    /// A .NET pattern with the matches of the Oniguruma <paramref name="pattern"/> over scalar values, usable with any
    /// <see cref="System.Text.RegularExpressions.Regex"/> (every one-character atom also matches the surrogate pairs of
    /// its class; exact but slower than the tokenizer's own fast path).
    /// </summary>
    public static string ToDotNetPattern(string pattern) => ScalarRegex.Translate(pattern);
}
