using System.Text.Encodings.Web;
using System.Text.Json;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// Typed access to a parsed <c>tokenizer.json</c>: every read checks the JSON type first and fails with one
/// <see cref="HfFormatException"/> naming the file, the JSON path (<c>model.vocab["hi"]</c>, <c>added_tokens[3].id</c>)
/// and what was expected — never an untyped .NET exception.
/// </summary>
internal sealed class TokenizerJsonReader(string file, TokenizerLimits limits)
{
    /// <summary>The file being read.</summary>
    public string File { get; } = file;

    /// <summary>The bounds in force.</summary>
    public TokenizerLimits Limits { get; } = limits;

    /// <summary>Parses <paramref name="utf8"/> with the depth bound; a syntax error names its line and byte.</summary>
    public JsonDocument Parse(ReadOnlyMemory<byte> utf8)
    {
        // serde_json (and so tokenizers) refuses invalid UTF-8 anywhere; JsonDocument only notices it in values it decodes.
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span))
        {
            System.Text.Unicode.Utf8.ToUtf16(utf8.Span, new char[utf8.Length], out var valid, out _, replaceInvalidSequences: false);
            var line = utf8.Span[..valid].Count((byte)'\n') + 1;
            throw new HfFormatException(File, $"not valid UTF-8: byte {valid + 1} (line {line}) starts an invalid sequence");
        }
        try
        {
            return JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = Limits.MaxJsonDepth, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            throw new HfFormatException(File, $"invalid JSON{where} (a tokenizer.json is UTF-8 JSON nested at most {Limits.MaxJsonDepth} deep): {e.Message}", e);
        }
    }

    /// <summary>The error for <paramref name="path"/>.</summary>
    public HfFormatException Error(string path, string problem) => new(File, $"{(path.Length == 0 ? "(root)" : path)}: {problem}");

    /// <summary>The error "expected X, found Y" for <paramref name="path"/>.</summary>
    public HfFormatException Expected(string path, string expected, JsonElement? found) => Error(path, $"expected {expected}, found {Describe(found)}");

    /// <summary>A short description of a JSON value for an error message.</summary>
    public static string Describe(JsonElement? e)
    {
        if (e is not { } v) return "nothing (the key is missing)";
        return v.ValueKind switch
        {
            JsonValueKind.String => $"the string {Quote(v.GetString()!)}",
            JsonValueKind.Number => $"the number {Truncate(v.GetRawText())}",
            JsonValueKind.True or JsonValueKind.False => $"{v.GetRawText()}",
            JsonValueKind.Null => "null",
            JsonValueKind.Array => $"an array of {v.GetArrayLength()}",
            JsonValueKind.Object => "an object",
            _ => v.ValueKind.ToString(),
        };
    }

    /// <summary>A string quoted as JSON, shortened when long.</summary>
    public static string Quote(string s) => Truncate(JsonSerializer.Serialize(s, QuoteOptions));

    private static readonly JsonSerializerOptions QuoteOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..57] + "…";

    /// <summary>The path of a member of the object at <paramref name="path"/>.</summary>
    public static string Member(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    /// <summary>The path of a key of a map (such as the vocabulary) at <paramref name="path"/>.</summary>
    public static string Key(string path, string key) => $"{path}[{Quote(key)}]";

    /// <summary>The path of an element of the array at <paramref name="path"/>.</summary>
    public static string Index(string path, int i) => $"{path}[{i}]";

    /// <summary>Requires an object.</summary>
    public JsonElement Object(JsonElement e, string path) => e.ValueKind == JsonValueKind.Object ? e : throw Expected(path, "an object", e);

    /// <summary>Requires an array.</summary>
    public JsonElement Array(JsonElement e, string path) => e.ValueKind == JsonValueKind.Array ? e : throw Expected(path, "an array", e);

    /// <summary>A member of an object, or null when it is missing or JSON null (serde's <c>Option</c>).</summary>
    public static JsonElement? Optional(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>A member that must be present and not null.</summary>
    public JsonElement Required(JsonElement obj, string path, string name, string expected) =>
        Optional(obj, name) ?? throw Expected(Member(path, name), expected, obj.TryGetProperty(name, out var v) ? v : null);

    /// <summary>Requires a string no longer than the token bound.</summary>
    public string String(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.String) throw Expected(path, "a string", e);
        var s = e.GetString()!;
        return s.Length <= Limits.MaxTokenLength ? s : throw Error(path, $"a string of {s.Length} characters is longer than the bound of {Limits.MaxTokenLength}");
    }

    /// <summary>Requires true or false.</summary>
    public bool Bool(JsonElement e, string path) =>
        e.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Expected(path, "true or false", e) };

    /// <summary>An optional boolean member (absent or null: <paramref name="fallback"/>).</summary>
    public bool OptionalBool(JsonElement obj, string path, string name, bool fallback) =>
        Optional(obj, name) is { } v ? Bool(v, Member(path, name)) : fallback;

    /// <summary>An optional string member (absent or null: null).</summary>
    public string? OptionalString(JsonElement obj, string path, string name) =>
        Optional(obj, name) is { } v ? String(v, Member(path, name)) : null;

    /// <summary>Requires a token id: an integer in [0, <see cref="TokenizerLimits.MaxVocabularySize"/>).</summary>
    public int Id(JsonElement e, string path)
    {
        var expected = $"a token id (an integer from 0 to {Limits.MaxVocabularySize - 1})";
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out var id)) throw Expected(path, expected, e);
        return id >= 0 && id < Limits.MaxVocabularySize ? (int)id : throw Expected(path, expected, e);
    }

    /// <summary>Requires a non-negative integer below 2³¹ (a type id).</summary>
    public int Count(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var n) && n >= 0 ? n : throw Expected(path, "a non-negative integer", e);

    /// <summary>The <c>type</c> member of a component object (normalizer, pre-tokenizer, post-processor, model).</summary>
    public string Type(JsonElement obj, string path) => String(Required(Object(obj, path), path, "type", "a type name (a string)"), Member(path, "type"));
}
