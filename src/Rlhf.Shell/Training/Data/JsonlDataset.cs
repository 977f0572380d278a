using System.Text;
using System.Text.Json;
using Rlhf.Settings;

namespace Rlhf.Shell.Training.Data;

/// <summary>A data file that cannot be used: the message names the file, the line (when there is one) and what was expected.</summary>
public sealed class DataFormatException(string path, int? line, string detail)
    : Exception(line is int l ? $"{path}:{l}: {detail}" : $"{path}: {detail}")
{
    /// <summary>The file.</summary>
    public string Path { get; } = path;

    /// <summary>1-based line number, or null for an error about the whole file.</summary>
    public int? Line { get; } = line;
}

/// <summary>The limits on data files, stated in one place.</summary>
public static class DataLimits
{
    /// <summary>Longest line of a JSONL file, in bytes (16 MiB): a longer line is an error, not an out-of-memory.</summary>
    public const int MaxLineBytes = 16 << 20;

    /// <summary>Most examples read from one file (10 million).</summary>
    public const int MaxExamples = 10_000_000;
}

/// <summary>
/// JSONL datasets in the layouts Hugging Face <c>datasets</c> exports and TRL reads (TRL docs, "Dataset formats"):
/// prompt-only <c>{"prompt"}</c>; prompt-completion <c>{"prompt", "completion"}</c>; preference
/// <c>{"prompt", "chosen", "rejected"}</c> or with an implicit prompt <c>{"chosen", "rejected"}</c> (the shared start of
/// both); and conversational forms where these fields are lists of <c>{role, content}</c> messages, or one
/// <c>{"messages"}</c> conversation. Conversations are rendered by <see cref="ChatRendering"/>. Field names come from the
/// data settings. Blank lines are skipped; every other line must be one JSON object. Reading needs no tokenizer or
/// model, so a bad file fails before anything loads; limits are in <see cref="DataLimits"/>.
/// </summary>
public static class JsonlDataset
{
    /// <summary>Prompts: the prompt field (a string or messages), else the messages field without its trailing assistant turns.</summary>
    public static IReadOnlyList<PromptText> ReadPrompts(string path, DataSettings data) =>
        Read(path, data, (o, line) => new PromptText(Prompt(o, line, data, allowMessages: true)));

    /// <summary>SFT examples: prompt and completion fields, or a messages field whose last message is the assistant's completion.</summary>
    public static IReadOnlyList<CompletionText> ReadCompletions(string path, DataSettings data) =>
        Read(path, data, (o, line) =>
        {
            if (!o.Has(data.PromptField) && o.Has(data.MessagesField))
            {
                var messages = o.Messages(data.MessagesField, line);
                if (messages.Count < 2 || messages[^1].Role != ChatRendering.AssistantRole)
                    throw o.Error(line, $"field \"{data.MessagesField}\": expected a conversation ending with an assistant message (the completion), found {messages.Count} message(s) ending with role \"{(messages.Count == 0 ? "" : messages[^1].Role)}\"");
                return new CompletionText(ChatRendering.RenderPrompt(messages.Take(messages.Count - 1).ToArray()), messages[^1].Content);
            }
            var prompt = Prompt(o, line, data, allowMessages: false);
            return new CompletionText(prompt, o.Response(data.CompletionField, line));
        });

    /// <summary>Preference pairs: chosen and rejected (strings or one-message lists) with a prompt field, or with an implicit shared prompt.</summary>
    public static IReadOnlyList<PreferenceText> ReadPreferences(string path, DataSettings data) =>
        Read(path, data, (o, line) =>
        {
            if (o.Has(data.PromptField))
                return new PreferenceText(Prompt(o, line, data, allowMessages: false), o.Response(data.ChosenField, line), o.Response(data.RejectedField, line));
            return ImplicitPrompt(o, line, data);
        });

    private static string Prompt(Line o, int line, DataSettings data, bool allowMessages)
    {
        if (o.Has(data.PromptField))
        {
            var p = o.Get(data.PromptField);
            if (p.ValueKind == JsonValueKind.String) return p.GetString()!;
            if (p.ValueKind == JsonValueKind.Array) return ChatRendering.RenderPrompt(o.Messages(data.PromptField, line));
            throw o.Error(line, $"field \"{data.PromptField}\": expected a string or a list of {{role, content}} messages, found {Kind(p)}");
        }
        if (allowMessages && o.Has(data.MessagesField))
        {
            var messages = o.Messages(data.MessagesField, line);
            var end = messages.Count;
            while (end > 0 && messages[end - 1].Role == ChatRendering.AssistantRole) end--;
            if (end == 0) throw o.Error(line, $"field \"{data.MessagesField}\": expected at least one message before the assistant's turns");
            return ChatRendering.RenderPrompt(messages.Take(end).ToArray());
        }
        throw o.Error(line, allowMessages
            ? $"expected a \"{data.PromptField}\" field (a string or a list of messages) or a \"{data.MessagesField}\" field; found {o.FieldList()}"
            : $"expected a \"{data.PromptField}\" field (a string or a list of messages); found {o.FieldList()}");
    }

    /// <summary>
    /// TRL's implicit prompt (<c>trl/data_utils.py</c> <c>extract_prompt</c>): the longest common start of chosen and
    /// rejected — characters for strings (a space just before the first difference goes to the responses), whole
    /// messages for conversations.
    /// </summary>
    private static PreferenceText ImplicitPrompt(Line o, int line, DataSettings data)
    {
        var chosen = o.Get(data.ChosenField, line);
        var rejected = o.Get(data.RejectedField, line);
        if (chosen.ValueKind == JsonValueKind.String && rejected.ValueKind == JsonValueKind.String)
        {
            string c = chosen.GetString()!, r = rejected.GetString()!;
            var i = 0;
            while (i < Math.Min(c.Length, r.Length) && c[i] == r[i]) i++;
            if (i < Math.Min(c.Length, r.Length) && i > 0 && c[i - 1] == ' ') i--;
            if (i == 0) throw o.Error(line, $"no \"{data.PromptField}\" field, and \"{data.ChosenField}\" and \"{data.RejectedField}\" share no start to serve as the implicit prompt");
            return new PreferenceText(c[..i], c[i..], r[i..]);
        }
        if (chosen.ValueKind == JsonValueKind.Array && rejected.ValueKind == JsonValueKind.Array)
        {
            var cm = o.Messages(data.ChosenField, line);
            var rm = o.Messages(data.RejectedField, line);
            var i = 0;
            while (i < Math.Min(cm.Count, rm.Count) && cm[i] == rm[i]) i++;
            if (i == 0) throw o.Error(line, $"no \"{data.PromptField}\" field, and the \"{data.ChosenField}\" and \"{data.RejectedField}\" conversations share no first message to serve as the implicit prompt");
            return new PreferenceText(ChatRendering.RenderPrompt(cm.Take(i).ToArray()), Single(o, cm.Skip(i).ToArray(), data.ChosenField, line), Single(o, rm.Skip(i).ToArray(), data.RejectedField, line));
        }
        throw o.Error(line, $"fields \"{data.ChosenField}\" and \"{data.RejectedField}\": expected two strings or two lists of messages, found {Kind(chosen)} and {Kind(rejected)}");
    }

    private static string Single(Line o, IReadOnlyList<ChatMessage> messages, string field, int line) =>
        messages is [{ Role: ChatRendering.AssistantRole } m]
            ? m.Content
            : throw o.Error(line, $"field \"{field}\": expected the response to be one assistant message, found {messages.Count} message(s)");

    private static string Clip(string s) => s.Length <= 120 ? s : s[..120] + "…";

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    private static IReadOnlyList<T> Read<T>(string path, DataSettings data, Func<Line, int, T> parse)
    {
        if (Directory.Exists(path)) throw new DataFormatException(path, null, "is a directory; data.path must name a JSONL file");
        if (!File.Exists(path)) throw new DataFormatException(path, null, "does not exist (data.path must name a JSONL file, one JSON object per line)");
        var limit = data.NumExamples is long n ? (int)Math.Min(n, DataLimits.MaxExamples) : DataLimits.MaxExamples;
        var result = new List<T>();
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var buffer = new MemoryStream();
        var lineNo = 0;
        var done = false;
        while (!done)
        {
            var b = stream.ReadByte();
            if (b >= 0 && b != '\n')
            {
                if (buffer.Length >= DataLimits.MaxLineBytes)
                    throw new DataFormatException(path, lineNo + 1, $"line longer than {DataLimits.MaxLineBytes} bytes (DataLimits.MaxLineBytes)");
                buffer.WriteByte((byte)b);
                continue;
            }
            done = b < 0;
            if (done && buffer.Length == 0) break;
            lineNo++;
            string text;
            try { text = utf8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length); }
            catch (DecoderFallbackException) { throw new DataFormatException(path, lineNo, "not valid UTF-8"); }
            buffer.SetLength(0);
            if (lineNo == 1 && text.StartsWith('\uFEFF')) text = text[1..];   // a UTF-8 byte-order mark
            if (string.IsNullOrWhiteSpace(text)) continue;
            if (result.Count == limit)
            {
                if (data.NumExamples is null)
                    throw new DataFormatException(path, lineNo, $"more than {DataLimits.MaxExamples} examples (DataLimits.MaxExamples); set data.num_examples to keep the first ones");
                break;
            }
            JsonDocument doc;
            try { doc = JsonDocument.Parse(text); }
            catch (JsonException e) { throw new DataFormatException(path, lineNo, $"not valid JSON ({e.Message}); expected one JSON object per line"); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new DataFormatException(path, lineNo, $"expected a JSON object, found {Kind(doc.RootElement)}");
                result.Add(parse(new Line(path, doc.RootElement), lineNo));
            }
        }
        if (result.Count == 0) throw new DataFormatException(path, null, lineNo == 0 ? "is empty; expected one JSON object per line" : "has only blank lines; expected one JSON object per line");
        return result;
    }

    /// <summary>One parsed line and the helpers that read its fields with errors naming the file and line.</summary>
    private readonly struct Line(string path, JsonElement root)
    {
        public bool Has(string field) => root.TryGetProperty(field, out _);

        public JsonElement Get(string field) => root.GetProperty(field);

        public JsonElement Get(string field, int line) =>
            root.TryGetProperty(field, out var v) ? v : throw Error(line, $"expected a \"{field}\" field; found {FieldList()}");

        public string FieldList()
        {
            var names = root.EnumerateObject().Select(p => $"\"{p.Name}\"").ToArray();
            return names.Length == 0 ? "no fields" : "fields " + string.Join(", ", names);
        }

        public DataFormatException Error(int line, string detail) => new(path, line, detail);

        /// <summary>A response: a string, or a list of exactly one assistant message.</summary>
        public string Response(string field, int line)
        {
            var v = Get(field, line);
            if (v.ValueKind == JsonValueKind.String) return v.GetString()!;
            if (v.ValueKind == JsonValueKind.Array) return Single(this, Messages(field, line), field, line);
            throw Error(line, $"field \"{field}\": expected a string or a list of {{role, content}} messages, found {Kind(v)}");
        }

        public IReadOnlyList<ChatMessage> Messages(string field, int line)
        {
            var v = Get(field, line);
            if (v.ValueKind != JsonValueKind.Array)
                throw Error(line, $"field \"{field}\": expected a list of {{role, content}} messages, found {Kind(v)}");
            var list = new List<ChatMessage>();
            var i = 0;
            foreach (var m in v.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object
                    || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(role.GetString())
                    || !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw Error(line, $"field \"{field}\"[{i}]: expected a message {{\"role\": string, \"content\": string}}, found {Clip(m.GetRawText())}");
                list.Add(new ChatMessage(role.GetString()!, content.GetString()!));
                i++;
            }
            return list;
        }
    }
}
