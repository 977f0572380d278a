using System.Buffers;
using System.Globalization;
using System.Text;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// A token added on top of the BPE vocabulary (tokenizer.json <c>added_tokens</c>), found in the text before
/// pre-tokenizing. As in Hugging Face <c>tokenizers</c> (<c>src/tokenizer/added_vocabulary.rs</c>):
/// <see cref="SingleWord"/> matches only where no word character touches either end, <see cref="LStrip"/> and
/// <see cref="RStrip"/> absorb the whitespace on that side into the token, and a <see cref="Normalized"/> token is
/// matched in the normalised text (the others in the raw text, first). Special tokens default to not normalised.
/// </summary>
public sealed record AddedToken(int Id, string Content, bool Special)
{
    /// <summary>Matches only as a whole word.</summary>
    public bool SingleWord { get; init; }
    /// <summary>Absorbs the whitespace on its left.</summary>
    public bool LStrip { get; init; }
    /// <summary>Absorbs the whitespace on its right.</summary>
    public bool RStrip { get; init; }
    /// <summary>Matched against the normalised text (after the raw-text tokens are split out).</summary>
    public bool Normalized { get; init; } = !Special;
}

/// <summary>
/// Finds added tokens leftmost-longest (the Aho–Corasick <c>LeftmostLongest</c> semantics of <c>tokenizers</c>)
/// and applies their flags; a rejected <see cref="AddedToken.SingleWord"/> match is skipped over, as there.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> byFirstChar;
    private readonly SearchValues<char> firstChars;

    /// <summary>A matcher finding each token by its pattern (its content, normalised for a normalised token); empty patterns are ignored.</summary>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        byFirstChar = tokens.Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
        firstChars = SearchValues.Create(byFirstChar.Keys.ToArray());
    }

    /// <summary>Whether there is nothing to find.</summary>
    public bool IsEmpty => byFirstChar.Count == 0;

    /// <summary>
    /// Cuts <paramref name="text"/> into runs of plain text (token null) and added tokens, covering all of it; a token's
    /// run includes the whitespace it strips.
    /// </summary>
    public List<(string Text, AddedToken? Token)> Split(string text)
    {
        var result = new List<(string, AddedToken?)>();
        var done = 0;   // end of the last emitted run
        var at = 0;     // where the search continues
        while (at < text.Length)
        {
            var i = text.AsSpan(at).IndexOfAny(firstChars);
            if (i < 0) break;
            i += at;
            AddedToken? found = null;
            var length = 0;
            foreach (var (pattern, token) in byFirstChar[text[i]])
                if (text.AsSpan(i).StartsWith(pattern, StringComparison.Ordinal)) { found = token; length = pattern.Length; break; }
            if (found is null) { at = i + 1; continue; }
            var start = i;
            var stop = i + length;
            at = stop;
            if (found.SingleWord && (start > 0 && EndsWithWord(text.AsSpan(0, start)) || stop < text.Length && StartsWithWord(text.AsSpan(stop)))) continue;
            if (found.LStrip)
            {
                var s = start;
                while (s > done && IsSpaceBefore(text, s, out var width)) s -= width;
                start = s;
            }
            if (found.RStrip)
                while (stop < text.Length && IsSpaceAt(text, stop, out var width)) stop += width;
            if (start > done) result.Add((text[done..start], null));
            result.Add((text[start..stop], found));
            done = stop;
            at = Math.Max(at, stop);
        }
        if (done < text.Length) result.Add((text[done..], null));
        return result;
    }

    // Rust regex's Unicode \w (Alphabetic, marks, decimal digits, connector punctuation, join controls) and \s (White_Space).
    private static bool IsWord(Rune r)
    {
        var c = Rune.GetUnicodeCategory(r);
        return c is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
            or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation
            || r.Value is 0x200C or 0x200D;
    }

    private static bool EndsWithWord(ReadOnlySpan<char> s) => Rune.DecodeLastFromUtf16(s, out var r, out _) == OperationStatus.Done && IsWord(r);

    private static bool StartsWithWord(ReadOnlySpan<char> s) => Rune.DecodeFromUtf16(s, out var r, out _) == OperationStatus.Done && IsWord(r);

    private static bool IsSpaceBefore(string text, int end, out int width)
    {
        var ok = Rune.DecodeLastFromUtf16(text.AsSpan(0, end), out var r, out width) == OperationStatus.Done;
        return ok && Rune.IsWhiteSpace(r);
    }

    private static bool IsSpaceAt(string text, int start, out int width)
    {
        var ok = Rune.DecodeFromUtf16(text.AsSpan(start), out var r, out width) == OperationStatus.Done;
        return ok && Rune.IsWhiteSpace(r);
    }
}
