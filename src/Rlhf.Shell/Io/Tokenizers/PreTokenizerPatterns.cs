using System.Text;
using System.Text.RegularExpressions;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>The byte-level BPE pre-tokenizer regexes (REFERENCE.md), and their translation to .NET regex.</summary>
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
    /// Compiles an HF (Oniguruma/Rust regex) pre-tokenizer pattern for .NET. .NET matches UTF-16 code units, so a
    /// character outside the BMP is two surrogates that no \p{..} class contains; every negated class <c>[^…]</c> is
    /// rewritten to also consume a whole surrogate pair, so emoji and other astral symbols stay one character as in
    /// HF. (Astral letters and digits — rare — are therefore treated as symbols.)
    /// </summary>
    public static Regex Compile(string pattern) => new(RewriteNegatedClasses(pattern), RegexOptions.CultureInvariant);

    internal static string RewriteNegatedClasses(string p)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] == '\\' && i + 1 < p.Length) { sb.Append(p, i, 2); i++; continue; }
            if (p[i] == '[' && i + 1 < p.Length && p[i + 1] == '^')
            {
                var j = i + 2;
                while (j < p.Length && p[j] != ']') j += p[j] == '\\' ? 2 : 1;
                if (j >= p.Length) throw new ArgumentException($"unterminated character class in pre-tokenizer pattern: {p}");
                var inner = p.Substring(i + 2, j - i - 2);
                sb.Append(@"(?:[\uD800-\uDBFF][\uDC00-\uDFFF]|[^").Append(inner).Append(@"\uD800-\uDFFF])");
                i = j;
                continue;
            }
            sb.Append(p[i]);
        }
        return sb.ToString();
    }
}
