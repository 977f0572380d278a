using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Tests.Io;

/// <summary>
/// Pre-tokenization of letters, digits and symbols outside the Basic Multilingual Plane. Hugging Face's regexes run
/// over Unicode scalar values, so 𝐀 (U+1D400, Lu), 𠀀 (U+20000, Lo), 𐌰 (U+10330, Lo) are \p{L}, 𝟏 (U+1D7CF, Nd) is
/// \p{N}, and \p{N}{1,3} counts scalar values. Every expected split below is derived by hand from the regex.
/// </summary>
public class TokenizerAstralTests
{
    private static Dictionary<string, int> ByteVocab()
    {
        var v = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var b = 0; b < 256; b++) v[ByteLevel.ByteToChar[b].ToString()] = b;
        return v;
    }

    private static ByteLevelBpeTokenizer With(string family) => new(ByteVocab(), [], preTokenizers: family == "gpt2"
        ? [new ByteLevelPreTokenizer(false, true)]
        : [new SplitPreTokenizer(PreTokenizerPatterns.ByName(family), isRegex: true), new ByteLevelPreTokenizer(false, false)]);

    [Fact]
    public void The_characters_under_test_are_what_the_tests_assume()
    {
        // Not vacuous: each is a surrogate pair in .NET, and of the category the expectations rely on.
        foreach (var (s, cat) in new[] { ("𝐀", "Lu"), ("𠀀", "Lo"), ("𐌰", "Lo"), ("𝟏", "Nd"), ("😀", "So"), ("\U000101FD", "Mn") })
        {
            Assert.Equal(2, s.Length);
            Assert.Equal(cat, ShortCategory(System.Globalization.CharUnicodeInfo.GetUnicodeCategory(s, 0)));
        }
        // And .NET's own regex does not see them as letters/digits, which is what had to be fixed.
        Assert.DoesNotMatch(@"^\p{L}$", "𝐀");
        Assert.DoesNotMatch(@"^\p{N}$", "𝟏");
    }

    private static string ShortCategory(System.Globalization.UnicodeCategory c) => c switch
    {
        System.Globalization.UnicodeCategory.UppercaseLetter => "Lu",
        System.Globalization.UnicodeCategory.OtherLetter => "Lo",
        System.Globalization.UnicodeCategory.DecimalDigitNumber => "Nd",
        System.Globalization.UnicodeCategory.OtherSymbol => "So",
        System.Globalization.UnicodeCategory.NonSpacingMark => "Mn",
        _ => c.ToString(),
    };

    [Theory]
    // ' ?\p{L}+' takes astral letters with ASCII ones; ' ?\p{N}+' takes 𝟏 (Nd) and ½ (No) together.
    [InlineData("a𝐀b 𠀀x 𐌰𐌱", new[] { "a𝐀b", " 𠀀x", " 𐌰𐌱" })]
    [InlineData("𝟏𝟐x 𝟑4", new[] { "𝟏𝟐", "x", " 𝟑4" })]
    [InlineData("½𝟏", new[] { "½𝟏" })]
    // U+101FD is a combining mark (Mn): not a letter, so it is a symbol run of its own.
    [InlineData("𝐀\U000101FD", new[] { "𝐀", "\U000101FD" })]
    // Emoji are \p{So}: one symbol each, never half a pair.
    [InlineData("hi😀😀 there😀abc", new[] { "hi", "😀😀", " there", "😀", "abc" })]
    public void Gpt2_splits_astral_text_as_tokenizers_does(string text, string[] expected) =>
        Assert.Equal(expected, With("gpt2").PreTokenize(text));

    [Theory]
    // \p{N}{1,3} counts scalar values: three mathematical digits, then two.
    [InlineData("𝟏𝟐𝟑𝟒𝟓", new[] { "𝟏𝟐𝟑", "𝟒𝟓" })]
    [InlineData("12𝟑4", new[] { "12𝟑", "4" })]
    // A space is not a digit's prefix: ' ' stays alone (\s+ after \s+(?!\S) fails), then the digits.
    [InlineData(" 𝟏𝟐", new[] { " ", "𝟏𝟐" })]
    // [^\r\n\p{L}\p{N}]?\p{L}+ : one non-letter (space, '!', an emoji) may lead a run of letters.
    [InlineData("x 𝐀𝐁", new[] { "x", " 𝐀𝐁" })]
    [InlineData("!𝐀", new[] { "!𝐀" })]
    [InlineData("😀𝐀", new[] { "😀𝐀" })]
    [InlineData("𝐀!", new[] { "𝐀", "!" })]
    [InlineData("𠀀𠀁 漢字", new[] { "𠀀𠀁", " 漢字" })]
    // A combining acute (BMP Mn) leads the next letter run; 👍🏽 is two symbols (So, Sk) in one run.
    [InlineData("e\u0301𝐀 𝐀\u0301x", new[] { "e", "\u0301𝐀", " 𝐀", "\u0301x" })]
    [InlineData("👍🏽x", new[] { "👍🏽", "x" })]
    public void Llama3_splits_astral_text_as_tokenizers_does(string text, string[] expected) =>
        Assert.Equal(expected, With("llama3").PreTokenize(text));

    [Fact]
    public void Qwen2_splits_astral_digits_one_by_one() =>
        Assert.Equal(["𝟏", "𝟐", "𝟑", " 𝐀𝐁"], With("qwen2").PreTokenize("𝟏𝟐𝟑 𝐀𝐁"));

    [Theory]
    // Patterns from a file: a quantified astral literal, a class range of astral letters, '.' over scalar values.
    [InlineData("𝐀+", "x𝐀𝐀y", new[] { "x", "𝐀𝐀", "y" })]
    [InlineData("[𝐀-𝐙]", "a𝐁c", new[] { "a", "𝐁", "c" })]
    [InlineData(".{2}", "𝐀𝐁𝐂", new[] { "𝐀𝐁", "𝐂" })]
    [InlineData(@"\x{1D7CF}+", "1𝟏𝟏2", new[] { "1", "𝟏𝟏", "2" })]
    [InlineData(@"[^\p{L}]+", "𝐀😀𝟏𝐁", new[] { "𝐀", "😀𝟏", "𝐁" })]
    public void Split_patterns_from_a_file_match_scalar_values(string pattern, string text, string[] expected) =>
        Assert.Equal(expected, new ByteLevelBpeTokenizer(ByteVocab(), [], preTokenizers: [new SplitPreTokenizer(pattern, isRegex: true)]).PreTokenize(text));

    [Fact]
    public void Lone_surrogates_become_replacement_characters_as_utf8_would()
    {
        var tok = With("llama3");
        // U+FFFD is a symbol (So): it leads the letter run after it, as any one non-letter may.
        Assert.Equal(["a", "\uFFFDb"], tok.PreTokenize("a\uD835b"));
        Assert.Equal("a\uFFFDb", tok.Decode(tok.Encode("a\uD835b")));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    public void Both_regex_strategies_agree_on_astral_rich_text(string family)
    {
        // The known patterns run on the fast strategy (astral characters replaced by same-category stand-ins); the
        // full translation (every atom matches surrogate pairs itself) must find exactly the same matches.
        var pattern = PreTokenizerPatterns.ByName(family);
        var fast = new ScalarRegex(pattern, TimeSpan.FromSeconds(10));
        Assert.True(fast.IsFast);
        var full = new System.Text.RegularExpressions.Regex(ScalarRegex.Translate(pattern), System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(AstralRichTexts), text =>
            Assert.Equal(full.Matches(text).Select(m => (m.Index, m.Length)).Where(m => m.Length > 0).ToList(), fast.Matches(text).ToList())));
        Assert.False(new ScalarRegex("𝐀+", TimeSpan.FromSeconds(1)).IsFast);   // a pattern naming an astral character takes the full strategy
    }

    private static readonly Gen<string> AstralRichTexts =
        Gen.ArrayOf(Gen.OneOf(
                Gen.Choose(0x1D400, 0x1D433), Gen.Choose(0x1D7CE, 0x1D7FF), Gen.Choose(0x20000, 0x200FF), Gen.Choose(0x10330, 0x1034A),
                Gen.Choose(0x1F600, 0x1F64F), Gen.Choose(0x61, 0x7A), Gen.Choose(0x30, 0x39), Gen.Elements(0x20, 0x20, 0x0A, 0x21, 0x27, 0x301)))
            .Select(cps => string.Concat(cps.Select(char.ConvertFromUtf32)));

    /// <summary>A plain-loop reference for Llama-3's digit rule: a maximal run of \p{N} scalars splits into threes from its start.</summary>
    private static List<string> DigitGroups(string text)
    {
        var runes = text.EnumerateRunes().ToList();
        var groups = new List<string>();
        for (var i = 0; i < runes.Count;)
        {
            if (!IsNumber(runes[i])) { i++; continue; }
            var j = i;
            while (j < runes.Count && IsNumber(runes[j])) j++;
            for (var k = i; k < j; k += 3) groups.Add(string.Concat(runes.Skip(k).Take(Math.Min(3, j - k)).Select(r => r.ToString())));
            i = j;
        }
        return groups;
    }

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is System.Globalization.UnicodeCategory.DecimalDigitNumber
        or System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber;

    [Fact]
    public void Llama3_digit_groups_and_pieces_cover_the_text_on_astral_rich_input()
    {
        var tok = With("llama3");
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(AstralRichTexts), text =>
        {
            var pieces = tok.PreTokenize(text);
            Assert.Equal(text, string.Concat(pieces));
            // No piece splits a surrogate pair.
            Assert.All(pieces, p => Assert.False(char.IsHighSurrogate(p[^1]) || char.IsLowSurrogate(p[0])));
            // Every piece made only of numbers is one of the reference's digit groups, in order.
            Assert.Equal(DigitGroups(text), pieces.Where(p => p.EnumerateRunes().All(IsNumber)).ToList());
        }));
    }
}
