using Rlhf.Settings;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Tests.Io;
using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Tests.Training;

/// <summary>JSONL datasets in Hugging Face layouts, chat rendering, left truncation, and the errors a bad file gives.</summary>
public class JsonlDatasetTests
{
    private static readonly DataSettings Data = new() { Path = "x" };

    private static string Write(TempDir dir, params string[] lines)
    {
        var path = dir.File("data.jsonl");
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    [Fact]
    public void Prompt_only_standard_and_conversational()
    {
        using var dir = new TempDir();
        var path = Write(dir,
            """{"prompt": "The sky is"}""",
            "",
            """{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sky?"}]}""",
            """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}""");
        var prompts = JsonlDataset.ReadPrompts(path, Data);
        Assert.Equal(
            [
                new PromptText("The sky is"),
                new PromptText("<|system|>\nBe brief.\n<|user|>\nSky?\n<|assistant|>\n"),
                new PromptText("<|user|>\nhi\n<|assistant|>\n"),
            ], prompts);
    }

    [Fact]
    public void Prompt_completion_and_messages_for_sft()
    {
        using var dir = new TempDir();
        var path = Write(dir,
            """{"prompt": "The sky is", "completion": " blue."}""",
            """{"prompt": [{"role": "user", "content": "Sky?"}], "completion": [{"role": "assistant", "content": "Blue."}]}""",
            """{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}""");
        Assert.Equal(
            [
                new CompletionText("The sky is", " blue."),
                new CompletionText("<|user|>\nSky?\n<|assistant|>\n", "Blue."),
                new CompletionText("<|user|>\na\n<|assistant|>\nb\n<|user|>\nc\n<|assistant|>\n", "d"),
            ], JsonlDataset.ReadCompletions(path, Data));
    }

    [Fact]
    public void Preferences_with_explicit_and_implicit_prompts()
    {
        using var dir = new TempDir();
        var path = Write(dir,
            """{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}""",
            """{"chosen": "The sky is blue.", "rejected": "The sky is green."}""",
            """{"chosen": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}], "rejected": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Green."}]}""",
            """{"prompt": [{"role": "user", "content": "Sky?"}], "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Green."}]}""");
        var chat = "<|user|>\nSky?\n<|assistant|>\n";
        Assert.Equal(
            [
                new PreferenceText("The sky is", " blue.", " green."),
                new PreferenceText("The sky is", " blue.", " green."),   // TRL's extract_prompt gives the space to the responses
                new PreferenceText(chat, "Blue.", "Green."),
                new PreferenceText(chat, "Blue.", "Green."),
            ], JsonlDataset.ReadPreferences(path, Data));
    }

    [Fact]
    public void A_byte_order_mark_and_crlf_line_ends_are_accepted()
    {
        using var dir = new TempDir();
        var path = dir.File("bom.jsonl");
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. "{\"prompt\": \"a\"}\r\n{\"prompt\": \"b\"}\r\n"u8]);
        Assert.Equal([new PromptText("a"), new PromptText("b")], JsonlDataset.ReadPrompts(path, Data));
    }

    [Fact]
    public void Custom_field_names_and_num_examples()
    {
        using var dir = new TempDir();
        var path = Write(dir, """{"query": "a"}""", """{"query": "b"}""", """{"query": "c"}""");
        var prompts = JsonlDataset.ReadPrompts(path, Data with { PromptField = "query", NumExamples = 2 });
        Assert.Equal([new PromptText("a"), new PromptText("b")], prompts);
    }

    [Theory]
    [InlineData("{\"prompt\": 3}", 2, "field \"prompt\": expected a string or a list of {role, content} messages, found a number")]
    [InlineData("{\"prompt\": \"a\"", 2, "not valid JSON")]
    [InlineData("[1, 2]", 2, "expected a JSON object, found a list")]
    [InlineData("{\"text\": \"a\"}", 2, "expected a \"prompt\" field (a string or a list of messages) or a \"messages\" field; found fields \"text\"")]
    [InlineData("{\"messages\": [{\"role\": \"user\"}]}", 2, "field \"messages\"[0]: expected a message {\"role\": string, \"content\": string}")]
    public void A_bad_line_names_file_line_and_what_was_expected(string bad, int line, string expected)
    {
        using var dir = new TempDir();
        var path = Write(dir, """{"prompt": "fine"}""", bad, """{"prompt": "fine"}""");
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(path, Data));
        Assert.Equal(line, e.Line);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Sft_and_preference_errors_name_the_missing_field()
    {
        using var dir = new TempDir();
        var path = Write(dir, """{"prompt": "a"}""");
        Assert.Contains("expected a \"completion\" field", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadCompletions(path, Data)).Message);
        Assert.Contains("expected a \"chosen\" field", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPreferences(path, Data)).Message);
        var chat = Write(dir, """{"messages": [{"role": "user", "content": "a"}]}""");
        Assert.Contains("ending with an assistant message", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadCompletions(chat, Data)).Message);
    }

    [Fact]
    public void Missing_empty_and_blank_files_are_one_clear_error()
    {
        using var dir = new TempDir();
        var missing = dir.File("nope.jsonl");
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(missing, Data));
        Assert.Equal($"{missing}: does not exist (data.path must name a JSONL file, one JSON object per line)", e.Message);
        File.WriteAllText(dir.File("empty.jsonl"), "");
        Assert.Contains("is empty", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(dir.File("empty.jsonl"), Data)).Message);
        File.WriteAllText(dir.File("blank.jsonl"), "\n  \n");
        Assert.Contains("only blank lines", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(dir.File("blank.jsonl"), Data)).Message);
        Assert.Contains("is a directory", Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(dir.Path, Data)).Message);
    }

    [Fact]
    public void Invalid_utf8_and_overlong_lines_are_errors_with_the_line()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.jsonl");
        File.WriteAllBytes(path, [.. "{\"prompt\": \"a\"}\n{\"prompt\": \""u8, 0xFF, .. "\"}\n"u8]);
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(path, Data));
        Assert.Equal(2, e.Line);
        Assert.Contains("UTF-8", e.Message);

        var longPath = dir.File("long.jsonl");
        using (var w = new StreamWriter(longPath))
        {
            w.Write("{\"prompt\": \"");
            w.Write(new string('a', DataLimits.MaxLineBytes));
            w.Write("\"}\n");
        }
        var l = Assert.Throws<DataFormatException>(() => JsonlDataset.ReadPrompts(longPath, Data));
        Assert.Equal(1, l.Line);
        Assert.Contains("MaxLineBytes", l.Message);
    }

    [Fact]
    public void Prompts_are_left_truncated_after_bos()
    {
        var encoder = new PromptEncoder(new ByteTokenizer(260), maxPromptLength: 4, addBos: true);
        Assert.Equal(new[] { ByteTokenizer.Bos, 'a', 'b' }, encoder.EncodePrompt("ab"));
        Assert.Equal(new[] { (int)'c', 'd', 'e', 'f' }, encoder.EncodePrompt("abcdef"));   // TRL keeps the end: prompt_ids[-max:]
        Assert.Equal(new[] { 'x', ByteTokenizer.Eos }, encoder.EncodeResponse("x"));
        var noBos = new PromptEncoder(new ByteTokenizer(260), maxPromptLength: 4, addBos: false);
        Assert.Equal(new[] { (int)'a', 'b' }, noBos.EncodePrompt("ab"));
    }

    [Fact]
    public void Training_data_from_a_file_holds_out_the_last_lines_and_from_a_task_its_split()
    {
        using var dir = new TempDir();
        var path = Write(dir, Enumerable.Range(0, 10).Select(i => $"{{\"prompt\": \"p{i}\"}}").ToArray());
        var split = TrainingData.Prompts(new DataSettings { Path = path, EvalFraction = 0.2 }, seed: 1);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => new PromptText($"p{i}")), split.Train);
        Assert.Equal([new PromptText("p8"), new PromptText("p9")], split.Eval);

        var task = new DataSettings { Task = "reverse", NumExamples = 30, EvalFraction = 0.1 };
        var sft = TrainingData.Completions(task, seed: 5);
        Assert.Equal(27, sft.Train.Count);
        Assert.Equal(3, sft.Eval.Count);
        Assert.Empty(sft.Train.Select(c => c.Prompt).Intersect(sft.Eval.Select(c => c.Prompt)));
        var pairs = TrainingData.Preferences(task, seed: 5);
        Assert.Equal(sft.Train.Select(c => c.Prompt), pairs.Train.Select(p => p.Prompt));

        Assert.Contains("exactly one of data.task", Assert.Throws<ArgumentException>(() => TrainingData.Prompts(new DataSettings(), 1)).Message);
    }
}
