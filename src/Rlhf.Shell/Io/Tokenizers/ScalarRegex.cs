using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizers</c> regex (Oniguruma syntax, matched over Unicode scalar values) run by .NET's regex
/// (matched over UTF-16 code units) with the same matches. .NET sees a character outside the Basic Multilingual Plane
/// as two surrogates, which no <c>\p{L}</c> or <c>\p{N}</c> contains, so 𝐀 (U+1D400) would not be a letter and
/// <c>\p{N}{1,3}</c> would count code units. Two exact strategies:
/// <list type="bullet">
/// <item>Fast (any pattern whose character classes are categories and BMP characters — GPT-2's, Llama-3's, Qwen2's):
/// text holding astral characters is matched in a copy where each astral scalar value is replaced by one BMP
/// character of the same general category that the pattern never names, and match offsets are mapped back. Text
/// without astral characters (most) is matched as it is.</item>
/// <item>Full (a pattern naming astral characters or a representative): every one-character atom becomes a group
/// matching one BMP code unit of its class or one surrogate pair whose scalar value is in it.</item>
/// </list>
/// Both rewrite Oniguruma's <c>\w</c> (Letter | Mark | Decimal_Number | Connector_Punctuation) and
/// <c>\x{…}</c> for .NET. Text must hold no lone surrogates (the tokenizer replaces them with U+FFFD, as UTF-8
/// encoding would). Categories come from .NET's <see cref="CharUnicodeInfo"/>.
/// </summary>
internal sealed partial class ScalarRegex
{
    private const int AstralStart = 0x10000;
    private const int AstralCount = 0x100000;

    /// <summary>General category of every astral scalar value (index cp − 0x10000), computed once.</summary>
    private static readonly Lazy<byte[]> AstralCategories = new(() =>
    {
        var cats = new byte[AstralCount];
        for (var i = 0; i < AstralCount; i++) cats[i] = (byte)CharUnicodeInfo.GetUnicodeCategory(AstralStart + i);
        return cats;
    });

    /// <summary>For each general category, the last BMP character of it: the stand-in for astral characters of that category.</summary>
    private static readonly char[] Representatives = BuildRepresentatives();

    private static char[] BuildRepresentatives()
    {
        var reps = new char[32];
        for (var cp = 0xFFFD; cp >= 0; cp--)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) continue;
            var cat = (int)CharUnicodeInfo.GetUnicodeCategory((char)cp);
            if (reps[cat] == 0) reps[cat] = (char)cp;
        }
        return reps;
    }

    private readonly Regex regex;
    private readonly bool fast;

    /// <summary>Compiles <paramref name="pattern"/>; each match may take at most <paramref name="matchTimeout"/>. Throws <see cref="ArgumentException"/> for syntax it cannot translate.</summary>
    public ScalarRegex(string pattern, TimeSpan matchTimeout)
    {
        Pattern = pattern;
        var light = TranslateFast(pattern);
        fast = light is not null;
        regex = new Regex(light ?? Translate(pattern), RegexOptions.CultureInvariant | RegexOptions.Compiled, matchTimeout);
        // Compile the matcher now, so the JIT's time is not charged to the first real match's timeout.
        try { regex.Match("a 1\n"); }
        catch (RegexMatchTimeoutException) { }
    }

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    /// <summary>Whether the fast strategy is used (else every atom matches surrogate pairs itself).</summary>
    public bool IsFast => fast;

    /// <summary>The non-empty matches of the pattern in <paramref name="text"/>, left to right, as (start, length) in UTF-16 units of <paramref name="text"/>.</summary>
    public List<(int Start, int Length)> Matches(string text)
    {
        var result = new List<(int, int)>();
        if (!fast || text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in regex.EnumerateMatches(text))
                if (m.Length > 0) result.Add((m.Index, m.Length));
            return result;
        }
        // Map each astral scalar value to its category's representative; origin[i] = index in text of mapped char i.
        var cats = AstralCategories.Value;
        var mapped = new char[text.Length];
        var origin = new int[text.Length + 1];
        var n = 0;
        for (var i = 0; i < text.Length; i++)
        {
            origin[n] = i;
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                mapped[n++] = Representatives[cats[char.ConvertToUtf32(c, text[i + 1]) - AstralStart]];
                i++;
            }
            else mapped[n++] = c;
        }
        origin[n] = text.Length;
        foreach (var m in regex.EnumerateMatches(mapped.AsSpan(0, n)))
            if (m.Length > 0) result.Add((origin[m.Index], origin[m.Index + m.Length] - origin[m.Index]));
        return result;
    }
}
