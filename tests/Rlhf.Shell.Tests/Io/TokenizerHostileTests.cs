using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Tests.Io;

/// <summary>
/// A corpus of hostile tokenizer.json files: each ends in one <see cref="HfFormatException"/> naming the file, the JSON
/// path and what was expected — never an untyped .NET exception, a hang or unbounded memory.
/// </summary>
public class TokenizerHostileTests
{
    private const string File = "/hostile/tokenizer.json";

    private static JsonNode Valid() => JsonNode.Parse(TokenizerTests.TokenizerJson(["h e", "l l"], "llama3", added: [(258, "<|eot_id|>", true)]))!;

    /// <summary>Name, the change to a valid file, and what the message must contain (after "file: ").</summary>
    public static TheoryData<string, string, string> Corpus() => new()
    {
        { "vocab id is a string", """$.model.vocab.a = "5" """, "model.vocab[\"a\"]: expected a token id (an integer from 0 to 4194303), found the string \"5\"" },
        { "vocab id is negative", "$.model.vocab.a = -1", "model.vocab[\"a\"]: expected a token id (an integer from 0 to 4194303), found the number -1" },
        { "vocab id is 2e9", "$.model.vocab.a = 2000000000", "model.vocab[\"a\"]: expected a token id (an integer from 0 to 4194303), found the number 2000000000" },
        { "vocab id is fractional", "$.model.vocab.a = 1.5", "model.vocab[\"a\"]: expected a token id" },
        { "vocab is an array", "$.model.vocab = [1, 2]", "model.vocab: expected an object, found an array of 2" },
        { "merge given as numbers", "$.model.merges[0] = [1, 2]", "model.merges[0][0]: expected a string, found the number 1" },
        { "merge given as a number", "$.model.merges[1] = 7", "model.merges[1]: expected a merge: \"left right\" or [\"left\", \"right\"], found the number 7" },
        { "merge of three tokens", """$.model.merges[0] = "h e l" """, "model.merges[0]: expected a merge: \"left right\" or [\"left\", \"right\"] (two tokens separated by one space), found the string \"h e l\"" },
        { "merge of an unknown token", """$.model.merges[0] = "h ☃" """, "model.merges[0]: the token \"☃\" is not in model.vocab" },
        { "merges is an object", "$.model.merges = {}", "model.merges: expected an array, found an object" },
        { "added token without id", "$.added_tokens[0].id = absent", "added_tokens[0].id: expected a token id, found nothing (the key is missing)" },
        { "added token id is a string", """$.added_tokens[0].id = "258" """, "added_tokens[0].id: expected a token id (an integer from 0 to 4194303), found the string \"258\"" },
        { "added token content is a number", "$.added_tokens[0].content = 3", "added_tokens[0].content: expected a string, found the number 3" },
        { "added token flag is a string", """$.added_tokens[0].lstrip = "no" """, "added_tokens[0].lstrip: expected true or false, found the string \"no\"" },
        { "added_tokens is an object", "$.added_tokens = {}", "added_tokens: expected an array, found an object" },
        { "ignore_merges is \"yes\"", """$.model.ignore_merges = "yes" """, "model.ignore_merges: expected true or false, found the string \"yes\"" },
        { "model is an array", "$.model = []", "model: expected an object, found an array of 0" },
        { "model is a string", """$.model = "BPE" """, "model: expected an object, found the string \"BPE\"" },
        { "model is missing", "$.model = absent", "model: expected the model (an object), found nothing (the key is missing)" },
        { "model type is not BPE", """$.model.type = "WordPiece" """, "model.type: the model type \"WordPiece\" is not supported (only BPE)" },
        { "model type is a number", "$.model.type = 1", "model.type: expected a string, found the number 1" },
        { "unknown token not in the vocabulary", """$.model.unk_token = "<unk>" """, "model.unk_token: \"<unk>\" is not in model.vocab" },
        { "dropout", "$.model.dropout = 0.1", "model.dropout: expected null (BPE dropout is a training-time option and is not supported), found the number 0.1" },
        { "pre-tokenizer type is a number", "$.pre_tokenizer.type = 5", "pre_tokenizer.type: expected a string, found the number 5" },
        { "pre-tokenizer list is a string", """$.pre_tokenizer.pretokenizers = "x" """, "pre_tokenizer.pretokenizers: expected an array, found the string \"x\"" },
        { "Split regex that does not compile", """$.pre_tokenizer.pretokenizers[0].pattern.Regex = "(" """, "pre_tokenizer.pretokenizers[0].pattern.Regex: the regex \"(\" cannot be used" },
        { "Split regex with a script property", """$.pre_tokenizer.pretokenizers[0].pattern.Regex = "\\p{Han}+" """, "pre_tokenizer.pretokenizers[0].pattern.Regex: the regex \"\\\\p{Han}+\" cannot be used: Unicode property \\p{Han}" },
        { "Split without a pattern", "$.pre_tokenizer.pretokenizers[0].pattern = {}", "pre_tokenizer.pretokenizers[0].pattern: expected {\"Regex\": \"…\"} or {\"String\": \"…\"}, found an object" },
        { "Split behavior unknown", """$.pre_tokenizer.pretokenizers[0].behavior = "Sideways" """, "pre_tokenizer.pretokenizers[0].behavior: expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous, found \"Sideways\"" },
        { "ByteLevel flag is a number", "$.pre_tokenizer.pretokenizers[1].use_regex = 0", "pre_tokenizer.pretokenizers[1].use_regex: expected true or false, found the number 0" },
        { "no ByteLevel step", "$.pre_tokenizer = absent", "pre_tokenizer: not a byte-level tokenizer (no ByteLevel pre-tokenizer)" },
        { "unsupported normalizer", """$.normalizer = {"type": "Lowercase"}""", "normalizer.type: the normalizer \"Lowercase\" is not supported (NFC, NFD, NFKC, NFKD, Sequence)" },
        { "post-processor is a string", """$.post_processor = "TemplateProcessing" """, "post_processor: expected an object, found the string \"TemplateProcessing\"" },
        { "root is an array", "$ = [1]", "(root): expected an object, found an array of 1" },
    };

    /// <summary>Applies "$.a.b[0].c = JSON" (or "= absent") to <paramref name="root"/>; returns the new root.</summary>
    private static JsonNode Apply(JsonNode root, string change)
    {
        var eq = change.IndexOf(" = ", StringComparison.Ordinal);
        var path = change[..eq].Trim();
        var valueText = change[(eq + 3)..].Trim();
        var value = valueText == "absent" ? null : JsonNode.Parse(valueText);
        if (path == "$") return value!;
        var steps = path[2..].Replace("[", ".[").Split('.');
        JsonNode parent = root;
        for (var i = 0; i < steps.Length - 1; i++) parent = Step(parent, steps[i]);
        var last = steps[^1];
        if (last.StartsWith('[')) parent.AsArray()[int.Parse(last[1..^1])] = value;
        else if (valueText == "absent") parent.AsObject().Remove(last);
        else parent[last] = value;
        return root;
    }

    private static JsonNode Step(JsonNode node, string step) => step.StartsWith('[') ? node.AsArray()[int.Parse(step[1..^1])]! : node[step]!;

    [Fact]
    public void The_unchanged_file_loads_so_each_case_tests_its_own_change()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(Valid().ToJsonString(), File);
        Assert.Equal(new[] { 256, 257, 'o', 258 }, tok.Encode("hello<|eot_id|>"));
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Each_hostile_file_is_one_clear_error(string name, string change, string expected)
    {
        var json = Apply(Valid(), change).ToJsonString();
        var ex = Record.Exception(() => ByteLevelBpeTokenizer.FromJson(json, File));
        Assert.True(ex is HfFormatException, $"{name}: expected HfFormatException, got {ex?.GetType().Name ?? "no exception"}: {ex?.Message}");
        Assert.Equal(File + ": " + expected, ex!.Message[..Math.Min(ex.Message.Length, File.Length + 2 + expected.Length)]);
    }

    [Theory]
    [InlineData("{\"model\": ", "invalid JSON at line 1")]
    [InlineData("{\"model\": {}} trailing", "invalid JSON at line 1")]
    [InlineData("{\n\"a\": 1,\n\"a\" 2}", "invalid JSON at line 3")]
    public void Broken_json_names_its_line(string json, string expected)
    {
        var ex = Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(json, File));
        Assert.StartsWith($"{File}: {expected}", ex.Message);
    }

    [Fact]
    public void Deep_nesting_invalid_utf8_and_duplicate_tokens_are_refused()
    {
        var deep = "{\"model\": " + new string('[', 100_000) + new string(']', 100_000) + "}";
        Assert.Contains("nested at most 64 deep", Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(deep, File)).Message);

        var bytes = Encoding.UTF8.GetBytes(Valid().ToJsonString()).ToList();
        bytes.InsertRange(bytes.IndexOf((byte)'h'), [0xC3, 0x28]);   // an invalid two-byte sequence inside a string
        Assert.StartsWith($"{File}: not valid UTF-8: byte ", Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(bytes.ToArray(), File)).Message);

        var dup = Valid().ToJsonString().Replace("\"vocab\":{", "\"vocab\":{\"dup\":300,\"dup\":301,");
        Assert.Contains("model.vocab[\"dup\"]: the token appears twice", Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(dup, File)).Message);
    }

    [Fact]
    public void Bounds_are_enforced_and_named()
    {
        var small = new TokenizerLimits { MaxMerges = 1, MaxAddedTokens = 0, MaxTokenLength = 8, MaxVocabularySize = 300, MaxPatternLength = 10 };
        string Error(JsonNode json, TokenizerLimits limits) => Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(json.ToJsonString(), File, limits)).Message;

        Assert.Contains("model.merges: 2 merges exceed the bound of 1", Error(Valid(), small with { MaxAddedTokens = 10, MaxPatternLength = 1000 }));
        Assert.Contains("added_tokens: 1 added tokens exceed the bound of 0", Error(Valid(), small with { MaxMerges = 10, MaxPatternLength = 1000 }));
        var longToken = Valid();
        longToken["model"]!["vocab"]!["abcdefghijk"] = 299;
        Assert.Contains("a token of 11 characters is longer than the bound of 8", Error(longToken, TokenizerLimits.Default with { MaxTokenLength = 8 }));
        var bigId = Valid();
        bigId["model"]!["vocab"]!["q"] = 300;
        Assert.Contains("model.vocab[\"q\"]: expected a token id (an integer from 0 to 299), found the number 300", Error(bigId, TokenizerLimits.Default with { MaxVocabularySize = 300 }));
        Assert.Contains("pre_tokenizer.pretokenizers[0].pattern.Regex: a pattern of", Error(Valid(), TokenizerLimits.Default with { MaxPatternLength = 10 }));
    }

    [Fact]
    public void A_file_larger_than_the_bound_is_refused_without_reading_it_all()
    {
        var limits = TokenizerLimits.Default with { MaxFileBytes = 1 << 20 };
        // /dev/zero reports length 0 and never ends: only a bounded read stops.
        var ex = Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromFile("/dev/zero", limits));
        Assert.Equal("/dev/zero: larger than the bound of 1048576 bytes for a tokenizer.json", ex.Message);
        Assert.Contains("not found", Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromFile("/hostile/none/tokenizer.json")).Message);
    }

    [Fact]
    public void Catastrophic_backtracking_in_a_split_regex_ends_in_a_clear_error()
    {
        var json = Valid();
        json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "(x+x+)+y";
        var tok = ByteLevelBpeTokenizer.FromJson(json.ToJsonString(), File, TokenizerLimits.Default with { RegexMatchTimeout = TimeSpan.FromMilliseconds(200) });
        Assert.Equal(new int[] { 'x', 'x', 'y' }, tok.Encode("xxy"));        // the regex itself works
        var clock = Stopwatch.StartNew();
        var ex = Assert.Throws<HfFormatException>(() => tok.Encode(new string('x', 64)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30));
        Assert.StartsWith($"{File}: pre_tokenizer.pretokenizers[0].pattern.Regex: the Split regex \"(x+x+)+y\" took longer than 0.2 s on a piece of 64 characters", ex.Message);
    }

    /// <summary>Values a careless or hostile editor might put anywhere in the file.</summary>
    private static readonly string[] Junk = ["null", "\"yes\"", "-1", "2000000000", "1.5", "[]", "{}", "[1, 2]", "true", "\"\"", "{\"type\": 3}", "[\"a\"]"];

    private static List<string> Paths(JsonNode node, string path)
    {
        var result = new List<string> { path };
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o) if (v is not null && k != "vocab") result.AddRange(Paths(v, $"{path}.{k}"));
                result.Add($"{path}.vocab.h");
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++) if (a[i] is { } v) result.AddRange(Paths(v, $"{path}[{i}]"));
                break;
        }
        return result.Distinct().ToList();
    }

    [Fact]
    public void Any_single_junk_value_anywhere_loads_or_fails_with_HfFormatException_only()
    {
        var paths = Paths(Valid(), "$").Where(p => p != "$" && (p.StartsWith("$.model") || !p.Contains(".vocab"))).ToArray();
        Assert.True(paths.Length > 30);   // not vacuous: the walk reaches the whole file
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(400).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(Gen.Elements(paths)), Arb.From(Gen.Elements(Junk)), (path, junk) =>
            {
                JsonNode json;
                try { json = Apply(Valid(), $"{path} = {junk}"); }
                catch (Exception e) when (e is InvalidOperationException or NullReferenceException or ArgumentOutOfRangeException) { return; } // path vanished
                var ex = Record.Exception(() =>
                {
                    var tok = ByteLevelBpeTokenizer.FromJson(json.ToJsonString(), File);
                    tok.Decode(tok.Encode("hello wörld 𝐀 123 <|eot_id|>", addSpecialTokens: true));
                });
                Assert.True(ex is null or HfFormatException, $"{path} = {junk}: {ex?.GetType().Name}: {ex?.Message}");
                if (ex is not null) Assert.StartsWith(File + ": ", ex.Message);
            }));
    }
}
