using System.Globalization;
using System.Text;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>The translation half: an Oniguruma pattern parsed (escapes, classes, Unicode categories) and emitted as a .NET pattern over the scalar-value mapping.</summary>
internal sealed partial class ScalarRegex
{
    /// <summary>
    /// The .NET pattern for the fast strategy, or null when the pattern names an astral character or a character a
    /// representative could be confused with (then only the full translation is exact).
    /// </summary>
    internal static string? TranslateFast(string pattern)
    {
        var reps = new HashSet<char>();
        foreach (var r in Representatives)
            if (r != 0) { reps.Add(r); reps.Add(char.ToUpperInvariant(r)); reps.Add(char.ToLowerInvariant(r)); }
        if (pattern.Any(c => char.IsSurrogate(c) || reps.Contains(c))) return null;
        try { return Translate(pattern, fast: true, reps); }
        catch (NotFastException) { return null; }
    }

    private sealed class NotFastException : Exception;

    /// <summary>The .NET pattern equivalent to the Oniguruma <paramref name="pattern"/> (full strategy unless <paramref name="fast"/>); throws <see cref="ArgumentException"/> on syntax it cannot translate.</summary>
    internal static string Translate(string pattern, bool fast = false, HashSet<char>? representatives = null)
    {
        var sb = new StringBuilder(pattern.Length * 2);
        var i = 0;
        var previousWasQuantifier = false;
        while (i < pattern.Length)
        {
            var c = pattern[i];
            var quantifier = false;
            if (c == '\\')
            {
                if (i + 1 >= pattern.Length) throw new ArgumentException("the pattern ends with a lone backslash");
                var (item, next) = ParseEscape(pattern, i, inClass: false);
                sb.Append(item is null ? pattern[i..next] : Emit(new ClassSet(false, [item]), fast, representatives));
                i = next;
            }
            else if (c == '[')
            {
                var (set, next) = ParseClass(pattern, i);
                sb.Append(Emit(set, fast, representatives));
                i = next;
            }
            else if (c == '.')
            {
                sb.Append(Emit(new ClassSet(true, [new Item.Char('\n', '\n')]), fast, representatives));
                i++;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < pattern.Length && char.IsLowSurrogate(pattern[i + 1]))
            {
                sb.Append("(?:").Append(c).Append(pattern[i + 1]).Append(')');
                i += 2;
            }
            else if (c == '(' && i + 2 < pattern.Length && pattern[i + 1] == '?' && pattern[i + 2] is '#')
                throw new ArgumentException($"comment groups (?#…) are not supported (position {i})");
            else
            {
                if (c is '*' or '+' or '?' or '}')
                {
                    if (c == '+' && previousWasQuantifier) throw new ArgumentException($"possessive quantifiers (…{pattern[i - 1]}+) are not supported (position {i})");
                    // A lazy '?' after a quantifier is .NET syntax too; it ends the quantifier.
                    quantifier = !(c == '?' && previousWasQuantifier);
                }
                sb.Append(c);
                i++;
            }
            previousWasQuantifier = quantifier;
        }
        return sb.ToString();
    }

    /// <summary>One member of a character class.</summary>
    private abstract record Item
    {
        /// <summary>A range of scalar values.</summary>
        public sealed record Char(int First, int Last) : Item;
        /// <summary>A set of general categories, possibly negated (<c>\P{…}</c>, <c>\D</c>, <c>\S</c>, <c>\W</c>).</summary>
        public sealed record Categories(UnicodeCategory[] Members, bool Negated, string Name) : Item;
    }

    /// <summary>A character class: its items, negated as a whole or not.</summary>
    private sealed record ClassSet(bool Negated, List<Item> Items);

    private static readonly UnicodeCategory[] Letters = [UnicodeCategory.UppercaseLetter, UnicodeCategory.LowercaseLetter, UnicodeCategory.TitlecaseLetter, UnicodeCategory.ModifierLetter, UnicodeCategory.OtherLetter];
    private static readonly UnicodeCategory[] Marks = [UnicodeCategory.NonSpacingMark, UnicodeCategory.SpacingCombiningMark, UnicodeCategory.EnclosingMark];
    private static readonly UnicodeCategory[] Numbers = [UnicodeCategory.DecimalDigitNumber, UnicodeCategory.LetterNumber, UnicodeCategory.OtherNumber];
    private static readonly UnicodeCategory[] Punctuation = [UnicodeCategory.ConnectorPunctuation, UnicodeCategory.DashPunctuation, UnicodeCategory.OpenPunctuation, UnicodeCategory.ClosePunctuation, UnicodeCategory.InitialQuotePunctuation, UnicodeCategory.FinalQuotePunctuation, UnicodeCategory.OtherPunctuation];
    private static readonly UnicodeCategory[] Symbols = [UnicodeCategory.MathSymbol, UnicodeCategory.CurrencySymbol, UnicodeCategory.ModifierSymbol, UnicodeCategory.OtherSymbol];
    private static readonly UnicodeCategory[] Separators = [UnicodeCategory.SpaceSeparator, UnicodeCategory.LineSeparator, UnicodeCategory.ParagraphSeparator];
    private static readonly UnicodeCategory[] Others = [UnicodeCategory.Control, UnicodeCategory.Format, UnicodeCategory.Surrogate, UnicodeCategory.PrivateUse, UnicodeCategory.OtherNotAssigned];

    /// <summary>Oniguruma's <c>\w</c>: Letter | Mark | Decimal_Number | Connector_Punctuation (.NET's omits Mc and Me).</summary>
    private static readonly UnicodeCategory[] Word = [.. Letters, .. Marks, UnicodeCategory.DecimalDigitNumber, UnicodeCategory.ConnectorPunctuation];
    /// <summary>Oniguruma's <c>\s</c> beyond the ASCII controls: Z (no astral character is one).</summary>
    private static readonly UnicodeCategory[] Space = Separators;

    private static readonly Dictionary<string, UnicodeCategory[]> CategoryNames = BuildCategoryNames();

    private static Dictionary<string, UnicodeCategory[]> BuildCategoryNames()
    {
        var d = new Dictionary<string, UnicodeCategory[]>(StringComparer.Ordinal)
        {
            ["L"] = Letters, ["Letter"] = Letters, ["M"] = Marks, ["Mark"] = Marks, ["N"] = Numbers, ["Number"] = Numbers,
            ["P"] = Punctuation, ["Punctuation"] = Punctuation, ["S"] = Symbols, ["Symbol"] = Symbols,
            ["Z"] = Separators, ["Separator"] = Separators, ["C"] = Others, ["Other"] = Others,
        };
        foreach (var (name, cat) in new (string, UnicodeCategory)[]
                 {
                     ("Lu", UnicodeCategory.UppercaseLetter), ("Ll", UnicodeCategory.LowercaseLetter), ("Lt", UnicodeCategory.TitlecaseLetter),
                     ("Lm", UnicodeCategory.ModifierLetter), ("Lo", UnicodeCategory.OtherLetter), ("Mn", UnicodeCategory.NonSpacingMark),
                     ("Mc", UnicodeCategory.SpacingCombiningMark), ("Me", UnicodeCategory.EnclosingMark), ("Nd", UnicodeCategory.DecimalDigitNumber),
                     ("Nl", UnicodeCategory.LetterNumber), ("No", UnicodeCategory.OtherNumber), ("Pc", UnicodeCategory.ConnectorPunctuation),
                     ("Pd", UnicodeCategory.DashPunctuation), ("Ps", UnicodeCategory.OpenPunctuation), ("Pe", UnicodeCategory.ClosePunctuation),
                     ("Pi", UnicodeCategory.InitialQuotePunctuation), ("Pf", UnicodeCategory.FinalQuotePunctuation), ("Po", UnicodeCategory.OtherPunctuation),
                     ("Sm", UnicodeCategory.MathSymbol), ("Sc", UnicodeCategory.CurrencySymbol), ("Sk", UnicodeCategory.ModifierSymbol),
                     ("So", UnicodeCategory.OtherSymbol), ("Zs", UnicodeCategory.SpaceSeparator), ("Zl", UnicodeCategory.LineSeparator),
                     ("Zp", UnicodeCategory.ParagraphSeparator), ("Cc", UnicodeCategory.Control), ("Cf", UnicodeCategory.Format),
                     ("Cs", UnicodeCategory.Surrogate), ("Co", UnicodeCategory.PrivateUse), ("Cn", UnicodeCategory.OtherNotAssigned),
                 })
            d[name] = [cat];
        return d;
    }

    /// <summary>
    /// Parses the escape at <paramref name="at"/> (a backslash). Returns the class item it denotes, or null for an
    /// escape that is not a character set (anchors, <c>\b</c>, back-references), which is copied verbatim.
    /// </summary>
    private static (Item? Item, int Next) ParseEscape(string p, int at, bool inClass)
    {
        var e = p[at + 1];
        switch (e)
        {
            case 'p' or 'P':
            {
                string name;
                int next;
                if (at + 2 < p.Length && p[at + 2] == '{')
                {
                    var close = p.IndexOf('}', at + 3);
                    if (close < 0) throw new ArgumentException($"unterminated \\{e}{{ at position {at}");
                    name = p[(at + 3)..close];
                    next = close + 1;
                }
                else if (at + 2 < p.Length) { name = p[at + 2].ToString(); next = at + 3; }
                else throw new ArgumentException($"\\{e} without a property name at position {at}");
                var negated = e == 'P';
                if (name.StartsWith('^')) { negated = !negated; name = name[1..]; }
                if (!CategoryNames.TryGetValue(name, out var cats))
                    throw new ArgumentException($"Unicode property \\{e}{{{name}}} at position {at} is not supported (only general categories such as L, Lu, N, Nd, P, S, Z, M, C)");
                return (new Item.Categories(cats, negated, $"\\{e}{{{name}}}"), next);
            }
            case 'd' or 'D': return (new Item.Categories([UnicodeCategory.DecimalDigitNumber], e == 'D', $"\\{e}"), at + 2);
            case 'w' or 'W': return (new Item.Categories(Word, e == 'W', $"\\{e}"), at + 2);
            case 's' or 'S': return (new Item.Categories(Space, e == 'S', $"\\{e}"), at + 2);
            case 'x' when at + 2 < p.Length && p[at + 2] == '{':
            {
                var close = p.IndexOf('}', at + 3);
                if (close < 0 || !int.TryParse(p.AsSpan(at + 3, close - at - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp) || cp is < 0 or > 0x10FFFF or >= 0xD800 and <= 0xDFFF)
                    throw new ArgumentException($"bad \\x{{…}} escape at position {at}");
                return (new Item.Char(cp, cp), close + 1);
            }
            case 'x' when at + 3 < p.Length && Uri.IsHexDigit(p[at + 2]) && Uri.IsHexDigit(p[at + 3]):
            {
                var cp = Convert.ToInt32(p.Substring(at + 2, 2), 16);
                return (new Item.Char(cp, cp), at + 4);
            }
            case 'u' when at + 5 < p.Length:
            {
                if (!int.TryParse(p.AsSpan(at + 2, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp))
                    throw new ArgumentException($"bad \\u escape at position {at}");
                return (new Item.Char(cp, cp), at + 6);
            }
            case 't': return (new Item.Char('\t', '\t'), at + 2);
            case 'n': return (new Item.Char('\n', '\n'), at + 2);
            case 'r': return (new Item.Char('\r', '\r'), at + 2);
            case 'f': return (new Item.Char('\f', '\f'), at + 2);
            case 'v': return (new Item.Char('\v', '\v'), at + 2);
            case 'a': return (new Item.Char('\a', '\a'), at + 2);
            case 'e': return (new Item.Char('\u001b', '\u001b'), at + 2);
            case 'h' or 'H' or 'X' or 'R' or 'K' or 'N' or 'O' or 'y' or 'Y' or 'g':
                throw new ArgumentException($"the Oniguruma escape \\{e} at position {at} is not supported");
            default:
                if (char.IsAsciiLetterOrDigit(e))
                {
                    if (inClass) throw new ArgumentException($"the escape \\{e} at position {at} is not supported inside a character class");
                    return (null, at + 2); // anchors (\A \z \Z \b \B \G), back-references: same meaning in .NET
                }
                if (char.IsHighSurrogate(e) && at + 2 < p.Length && char.IsLowSurrogate(p[at + 2]))
                {
                    var cp = char.ConvertToUtf32(e, p[at + 2]);
                    return (new Item.Char(cp, cp), at + 3);
                }
                return (new Item.Char(e, e), at + 2); // an escaped punctuation character stands for itself
        }
    }

    /// <summary>Parses the class starting at <paramref name="at"/> (an opening bracket).</summary>
    private static (ClassSet Set, int Next) ParseClass(string p, int at)
    {
        var i = at + 1;
        var negated = i < p.Length && p[i] == '^';
        if (negated) i++;
        var items = new List<Item>();
        var first = true;
        while (true)
        {
            if (i >= p.Length) throw new ArgumentException($"unterminated character class starting at position {at}");
            var c = p[i];
            if (c == ']' && !first) return (new ClassSet(negated, items), i + 1);
            first = false;
            if (c == '[') throw new ArgumentException($"nested character classes and POSIX brackets ([[:alpha:]], [a&&[b]]) are not supported (position {i})");
            if (c == '&' && i + 1 < p.Length && p[i + 1] == '&') throw new ArgumentException($"class intersection (&&) is not supported (position {i})");
            Item item;
            if (c == '\\')
            {
                if (i + 1 >= p.Length) throw new ArgumentException($"unterminated character class starting at position {at}");
                (item, i) = ParseEscape(p, i, inClass: true) is var (x, n) && x is not null ? (x, n) : throw new InvalidOperationException();
            }
            else if (char.IsHighSurrogate(c) && i + 1 < p.Length && char.IsLowSurrogate(p[i + 1]))
            {
                var cp = char.ConvertToUtf32(c, p[i + 1]);
                item = new Item.Char(cp, cp);
                i += 2;
            }
            else { item = new Item.Char(c, c); i++; }
            // A range a-b (a '-' before ']' is a literal).
            if (item is Item.Char lo && i + 1 < p.Length && p[i] == '-' && p[i + 1] != ']')
            {
                Item hiItem;
                var j = i + 1;
                if (p[j] == '\\') (hiItem, j) = ParseEscape(p, j, inClass: true) is var (x, n) && x is not null ? (x, n) : throw new InvalidOperationException();
                else if (char.IsHighSurrogate(p[j]) && j + 1 < p.Length && char.IsLowSurrogate(p[j + 1])) { var cp = char.ConvertToUtf32(p[j], p[j + 1]); hiItem = new Item.Char(cp, cp); j += 2; }
                else { hiItem = new Item.Char(p[j], p[j]); j++; }
                if (hiItem is not Item.Char hi || hi.First < lo.First) throw new ArgumentException($"bad range in character class at position {i}");
                item = new Item.Char(lo.First, hi.First);
                i = j;
            }
            items.Add(item);
        }
    }

    /// <summary>A group matching one BMP code unit of the class (never a surrogate) or one surrogate pair whose scalar value is in it.</summary>
    private static string Emit(ClassSet set, bool fast, HashSet<char>? representatives)
    {
        if (fast)
        {
            // Only BMP members, none of which may be a representative (it would stand for astral characters too).
            var text = new StringBuilder();
            foreach (var item in set.Items)
                switch (item)
                {
                    case Item.Char r:
                        if (r.Last > 0xFFFF || representatives!.Any(c => c >= r.First && c <= r.Last)) throw new NotFastException();
                        text.Append(Escape(r.First));
                        if (r.Last > r.First) text.Append('-').Append(Escape(r.Last));
                        break;
                    case Item.Categories k:
                        text.Append(CategoriesClass(k));
                        break;
                }
            return set.Negated ? $"[^{text}]" : text.Length == 0 ? "(?!)" : $"[{text}]";
        }
        var bmp = new StringBuilder();
        foreach (var item in set.Items)
            switch (item)
            {
                case Item.Char r when r.First <= 0xFFFF:
                    bmp.Append(Escape(r.First));
                    if (r.Last > r.First) bmp.Append('-').Append(Escape(Math.Min(r.Last, 0xFFFF)));
                    break;
                case Item.Categories k:
                    bmp.Append(CategoriesClass(k));
                    break;
            }
        string? bmpPart = set.Negated ? $"[^{bmp}\\uD800-\\uDFFF]" : bmp.Length == 0 ? null : $"[{bmp}-[\\uD800-\\uDFFF]]";
        var astral = AstralAlternation(set);
        if (astral is null) return bmpPart is null ? "(?!)" : $"(?:{bmpPart})";
        return bmpPart is null ? $"(?:{astral})" : $"(?:{bmpPart}|(?=[\\uD800-\\uDBFF])(?:{astral}))";
    }

    /// <summary>The .NET class text of a category item (BMP part; Oniguruma's \w and \s spelled out).</summary>
    private static string CategoriesClass(Item.Categories k)
    {
        if (k.Name is "\\s") return "\\s";
        if (k.Name is "\\S") return "\\S";
        if (k.Name is "\\d") return "\\d";
        if (k.Name is "\\D") return "\\D";
        var names = k.Members.Select(ShortName);
        if (!k.Negated) return string.Concat(names.Select(n => $"\\p{{{n}}}"));
        // A negated item (\P{L}, \W) is the union of every other category.
        var others = Enum.GetValues<UnicodeCategory>().Where(c => Array.IndexOf(k.Members, c) < 0).Select(ShortName);
        return string.Concat(others.Select(n => $"\\p{{{n}}}"));
    }

    private static string ShortName(UnicodeCategory c) => CategoryNames.First(kv => kv.Value.Length == 1 && kv.Value[0] == c).Key;

    private static string Escape(int cp) => $"\\u{cp:X4}";

    /// <summary>The surrogate-pair alternation of the astral members of a class, or null when it has none.</summary>
    private static string? AstralAlternation(ClassSet set)
    {
        var cats = AstralCategories.Value;
        // Membership by category, then by explicit astral ranges.
        var byCategory = new bool[32];
        var ranges = set.Items.OfType<Item.Char>().Where(r => r.Last >= AstralStart).ToArray();
        foreach (var k in set.Items.OfType<Item.Categories>())
            for (var c = 0; c < 32; c++)
                byCategory[c] |= Array.IndexOf(k.Members, (UnicodeCategory)c) >= 0 != k.Negated;
        bool Member(int index)
        {
            var cp = AstralStart + index;
            var inItems = byCategory[cats[index]];
            if (!inItems) foreach (var r in ranges) if (cp >= r.First && cp <= r.Last) { inItems = true; break; }
            return inItems != set.Negated;
        }
        // For each high surrogate, the ranges of low surrogates whose pair is in the class.
        var perHigh = new List<(int Lo, int Hi)>[1024];
        var any = false;
        for (var h = 0; h < 1024; h++)
        {
            var lows = new List<(int, int)>();
            var start = -1;
            for (var l = 0; l < 1024; l++)
            {
                var member = Member((h << 10) | l);
                if (member && start < 0) start = l;
                if (!member && start >= 0) { lows.Add((start, l - 1)); start = -1; }
            }
            if (start >= 0) lows.Add((start, 1023));
            perHigh[h] = lows;
            any |= lows.Count > 0;
        }
        if (!any) return null;
        var sb = new StringBuilder();
        for (var h = 0; h < 1024;)
        {
            if (perHigh[h].Count == 0) { h++; continue; }
            var end = h;
            while (end + 1 < 1024 && perHigh[end + 1].SequenceEqual(perHigh[h])) end++;
            if (sb.Length > 0) sb.Append('|');
            sb.Append(end == h ? Escape(0xD800 + h) : $"[{Escape(0xD800 + h)}-{Escape(0xD800 + end)}]");
            sb.Append('[');
            foreach (var (lo, hi) in perHigh[h])
            {
                sb.Append(Escape(0xDC00 + lo));
                if (hi > lo) sb.Append('-').Append(Escape(0xDC00 + hi));
            }
            sb.Append(']');
            h = end + 1;
        }
        return sb.ToString();
    }
}
