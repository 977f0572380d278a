using Rlhf.Settings;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Rlhf.Shell.Config;

/// <summary>
/// The limits every config reader enforces (YAML files, includes, DeepSpeed JSON, command-line overrides), stated in
/// one place. A config is a few hundred lines; these bounds are orders of magnitude above that and far below what
/// would exhaust memory, overflow the stack or hang (YAML "billion laughs": yaml.org's alias nodes share one node, but
/// every consumer that walks the tree walks each alias again).
/// </summary>
public static class ConfigLimits
{
    /// <summary>Largest config file read, in bytes (reading stops one byte past it, so <c>/dev/zero</c> is bounded too).</summary>
    public const int MaxFileBytes = 4 * 1024 * 1024;

    /// <summary>Deepest nesting of mappings and lists (flow or block).</summary>
    public const int MaxDepth = 64;

    /// <summary>Most nodes in one document, counting every node an alias repeats.</summary>
    public const int MaxNodes = 100_000;

    /// <summary>Most aliases (<c>*name</c>) in one document.</summary>
    public const int MaxAliases = 1_000;

    /// <summary>Longest scalar (key or value), in characters.</summary>
    public const int MaxScalarChars = 256 * 1024;

    /// <summary>Longest command-line override, in characters.</summary>
    public const int MaxOverrideChars = 256 * 1024;

    /// <summary>Most command-line overrides.</summary>
    public const int MaxOverrides = 10_000;

    /// <summary>Deepest nesting of <c>list(…)</c> in a device range expression.</summary>
    public const int MaxRangeDepth = RangeExpression.MaxDepth;

    /// <summary>
    /// Reads a file as strict UTF-8 (a byte-order mark is allowed), refusing more than <see cref="MaxFileBytes"/> bytes
    /// (reading stops there, so a device such as <c>/dev/zero</c> is bounded too); null and the error's position and
    /// message on failure.
    /// </summary>
    public static string? ReadText(string fullPath, out (int Line, int Column, string Message)? error)
    {
        error = null;
        byte[] bytes;
        try
        {
            using var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            var buffer = new byte[64 * 1024];
            using var memory = new MemoryStream();
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                memory.Write(buffer, 0, n);
                if (memory.Length > MaxFileBytes)
                {
                    error = (1, 1, $"the file is larger than {MaxFileBytes / (1024 * 1024)} MiB, the most a config may hold");
                    return null;
                }
            }
            bytes = memory.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            error = (1, 1, $"cannot read the file: {e.Message}");
            return null;
        }
        return Decode(bytes, out error);
    }

    /// <summary>Strict UTF-8 decoding; on failure the error names the line and column of the first invalid byte.</summary>
    public static string? Decode(byte[] bytes, out (int Line, int Column, string Message)? error)
    {
        error = null;
        var start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        var bad = FirstInvalid(bytes, start);
        if (bad == bytes.Length) return System.Text.Encoding.UTF8.GetString(bytes, start, bytes.Length - start);
        var before = System.Text.Encoding.UTF8.GetString(bytes, start, bad - start);
        var line = 1 + before.Count(c => c == '\n');
        var column = before.Length - (before.LastIndexOf('\n') + 1) + 1;
        error = (line, column, $"the file is not UTF-8 text (byte 0x{bytes[bad]:X2} at offset {bad})");
        return null;
    }

    /// <summary>Offset of the first byte that does not start a valid UTF-8 sequence, or the length when all are valid.</summary>
    private static int FirstInvalid(byte[] bytes, int start)
    {
        var strict = new System.Text.UTF8Encoding(false, true);
        var i = start;
        while (i < bytes.Length)
        {
            var b = bytes[i];
            var len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
            if (len == 0 || i + len > bytes.Length) return i;
            if (len > 1)
            {
                try
                {
                    strict.GetCharCount(bytes, i, len);
                }
                catch (System.Text.DecoderFallbackException)
                {
                    return i;
                }
            }
            i += len;
        }
        return bytes.Length;
    }

    /// <summary>
    /// Walks the YAML events of <paramref name="text"/> without building a tree and returns the first limit it breaks:
    /// depth, scalar length, alias count, or node count with aliases expanded. Null when the text is within limits
    /// (syntax errors are left to the loader, which reports them with their position).
    /// </summary>
    public static (int Line, int Column, string Message)? Scan(string text)
    {
        var parser = new Parser(new StringReader(text));
        var frames = new Stack<(string? Anchor, long Size)>();
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        var aliases = 0;
        void Add(long size)
        {
            if (frames.Count > 0)
            {
                var top = frames.Pop();
                frames.Push((top.Anchor, Math.Min(top.Size + size, MaxNodes + 1L)));
            }
            else total = Math.Min(total + size, MaxNodes + 1L);
        }
        long Expanded() => Math.Max(total, 0) + frames.Sum(f => f.Size);
        try
        {
            while (parser.MoveNext())
            {
                var e = parser.Current!;
                var at = ((int)e.Start.Line, (int)e.Start.Column);
                switch (e)
                {
                    case DocumentEnd:
                        total = 0;
                        anchors.Clear();
                        break;
                    case Scalar s:
                        if (s.Value.Length > MaxScalarChars)
                            return (at.Item1, at.Item2, $"a value or key of {s.Value.Length} characters; the most is {MaxScalarChars}");
                        if (!s.Anchor.IsEmpty) anchors[s.Anchor.Value] = 1;
                        Add(1);
                        break;
                    case AnchorAlias a:
                        if (++aliases > MaxAliases)
                            return (at.Item1, at.Item2, $"more than {MaxAliases} aliases");
                        Add(anchors.TryGetValue(a.Value.Value, out var size) ? size : 1);
                        break;
                    case MappingStart or SequenceStart:
                        if (frames.Count >= MaxDepth)
                            return (at.Item1, at.Item2, $"mappings and lists nested more than {MaxDepth} deep");
                        var anchor = e is MappingStart ms ? ms.Anchor : ((SequenceStart)e).Anchor;
                        frames.Push((anchor.IsEmpty ? null : anchor.Value, 1));
                        break;
                    case MappingEnd or SequenceEnd:
                        var done = frames.Pop();
                        if (done.Anchor is { } name) anchors[name] = done.Size;
                        Add(done.Size);
                        break;
                }
                if (Expanded() > MaxNodes)
                    return (at.Item1, at.Item2, $"more than {MaxNodes} nodes (aliases counted each time they are used)");
            }
        }
        catch (YamlException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
        return null;
    }
}
