using System.Text.RegularExpressions;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>What a <c>Split</c> pre-tokenizer does with the pieces its pattern matches (Hugging Face <c>SplitDelimiterBehavior</c>).</summary>
public enum SplitBehavior
{
    /// <summary>Matches are dropped.</summary>
    Removed,
    /// <summary>Matches are pieces of their own.</summary>
    Isolated,
    /// <summary>A match joins the piece before it.</summary>
    MergedWithPrevious,
    /// <summary>A match joins the piece after it.</summary>
    MergedWithNext,
    /// <summary>Adjacent matches form one piece.</summary>
    Contiguous,
}

/// <summary>One step of a tokenizer.json <c>pre_tokenizer</c>: it cuts every current piece into smaller ones.</summary>
public abstract class PreTokenizer
{
    /// <summary>Appends the pieces of <paramref name="piece"/> to <paramref name="output"/> (empty pieces are dropped).</summary>
    public abstract void Split(string piece, List<string> output);

    /// <summary>
    /// The pieces of a regex split, as Hugging Face's <c>NormalizedString::split</c>: matches and the gaps between them,
    /// combined by <paramref name="behavior"/>; <paramref name="invert"/> swaps the roles of matches and gaps.
    /// </summary>
    private protected static void SplitBy(ScalarRegex regex, string piece, SplitBehavior behavior, bool invert, List<string> output, Func<RegexMatchTimeoutException, Exception> timeout)
    {
        if (piece.Length == 0) return;
        List<(int Start, int Length)> matches;
        try { matches = regex.Matches(piece); }
        catch (RegexMatchTimeoutException e) { throw timeout(e); }
        if (behavior == SplitBehavior.Isolated && !invert)
        {
            // The common case (every byte-level regex): matches and the gaps between them, in order.
            var at = 0;
            foreach (var (start, length) in matches)
            {
                if (start > at) output.Add(piece[at..start]);
                output.Add(piece.Substring(start, length));
                at = start + length;
            }
            if (at < piece.Length) output.Add(piece[at..]);
            return;
        }
        var parts = new List<(int Start, int End, bool IsMatch)>();
        var prev = 0;
        foreach (var (start, length) in matches)
        {
            if (prev != start) parts.Add((prev, start, invert));
            parts.Add((start, start + length, !invert));
            prev = start + length;
        }
        if (prev != piece.Length) parts.Add((prev, piece.Length, invert));

        var kept = new List<(int Start, int End)>();
        var previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated: kept.AddRange(parts.Select(p => (p.Start, p.End))); break;
            case SplitBehavior.Removed: kept.AddRange(parts.Where(p => !p.IsMatch).Select(p => (p.Start, p.End))); break;
            case SplitBehavior.Contiguous:
                foreach (var p in parts)
                {
                    if (p.IsMatch == previousMatch && kept.Count > 0) kept[^1] = (kept[^1].Start, p.End);
                    else kept.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var p in parts)
                {
                    if (p.IsMatch && !previousMatch && kept.Count > 0) kept[^1] = (kept[^1].Start, p.End);
                    else kept.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (var i = parts.Count - 1; i >= 0; i--)
                {
                    var p = parts[i];
                    if (p.IsMatch && !previousMatch && kept.Count > 0) kept[^1] = (p.Start, kept[^1].End);
                    else kept.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                kept.Reverse();
                break;
        }
        foreach (var (s, e) in kept) if (e > s) output.Add(piece[s..e]);
    }
}

/// <summary>
/// <c>Split</c>: cuts by a regex (Oniguruma syntax, translated by <see cref="ScalarRegex"/> so it matches over Unicode
/// scalar values) or a literal string. The regex runs with a match timeout: catastrophic backtracking ends in an
/// <see cref="HfFormatException"/> naming the file and the pattern's JSON path, not a hang.
/// </summary>
public sealed class SplitPreTokenizer : PreTokenizer
{
    private readonly ScalarRegex regex;
    private readonly string file;
    private readonly string jsonPath;

    /// <summary>A Split step; <paramref name="file"/> and <paramref name="jsonPath"/> name the pattern in errors.</summary>
    public SplitPreTokenizer(string pattern, bool isRegex, SplitBehavior behavior = SplitBehavior.Isolated, bool invert = false,
        TokenizerLimits? limits = null, string file = "tokenizer.json", string jsonPath = "pre_tokenizer.pattern")
    {
        limits ??= TokenizerLimits.Default;
        if (pattern.Length > limits.MaxPatternLength)
            throw new HfFormatException(file, $"{jsonPath}: a pattern of {pattern.Length} characters is longer than the bound of {limits.MaxPatternLength}");
        Pattern = pattern;
        IsRegex = isRegex;
        Behavior = behavior;
        Invert = invert;
        this.file = file;
        this.jsonPath = jsonPath;
        try { regex = PreTokenizerPatterns.Compile(isRegex ? pattern : EscapeLiteral(pattern), limits.RegexMatchTimeout); }
        catch (ArgumentException e) { throw new HfFormatException(file, $"{jsonPath}: the regex {TokenizerJsonReader.Quote(pattern)} cannot be used: {e.Message}", e); }
    }

    /// <summary>An Oniguruma pattern matching <paramref name="literal"/> exactly (every character as a \x{…} escape).</summary>
    private static string EscapeLiteral(string literal) =>
        string.Concat(literal.EnumerateRunes().Select(r => $"\\x{{{r.Value:X}}}"));

    /// <summary>The pattern as written in the file.</summary>
    public string Pattern { get; }
    /// <summary>Whether <see cref="Pattern"/> is a regex (else a literal string).</summary>
    public bool IsRegex { get; }
    /// <summary>What happens to matches.</summary>
    public SplitBehavior Behavior { get; }
    /// <summary>Whether matches and gaps swap roles.</summary>
    public bool Invert { get; }

    /// <inheritdoc />
    public override void Split(string piece, List<string> output) =>
        SplitBy(regex, piece, Behavior, Invert, output, e => new HfFormatException(file,
            $"{jsonPath}: the Split regex {TokenizerJsonReader.Quote(Pattern)} took longer than {e.MatchTimeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} s on a piece of {piece.Length} characters (catastrophic backtracking?)", e));
}

/// <summary>
/// <c>ByteLevel</c> as a pre-tokenizer: prepends a space to a piece that does not start with one
/// (<c>add_prefix_space</c>), then, with <c>use_regex</c>, cuts it by the GPT-2 regex. The bytes-to-characters
/// mapping itself is done by the tokenizer after all steps.
/// </summary>
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    private static readonly Lazy<ScalarRegex> Gpt2 = new(() => PreTokenizerPatterns.Compile(PreTokenizerPatterns.Gpt2, TokenizerLimits.Default.RegexMatchTimeout));

    /// <summary>Whether a space is prepended to a piece that does not start with one.</summary>
    public bool AddPrefixSpace { get; } = addPrefixSpace;
    /// <summary>Whether pieces are cut by the GPT-2 regex.</summary>
    public bool UseRegex { get; } = useRegex;

    /// <inheritdoc />
    public override void Split(string piece, List<string> output)
    {
        if (AddPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
        if (!UseRegex) { if (piece.Length > 0) output.Add(piece); return; }
        SplitBy(Gpt2.Value, piece, SplitBehavior.Isolated, false, output, e => new InvalidOperationException("the GPT-2 pre-tokenizer regex timed out", e));
    }
}
