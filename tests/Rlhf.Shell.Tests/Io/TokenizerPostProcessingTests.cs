using System.Text.Json.Nodes;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Tests.Io;

/// <summary>
/// The post-processor (applied when special tokens are asked for) and the added-token flags, on tokenizer.json files
/// the tests write. Expected ids are worked out by hand: byte b has id b, merges get 256, 257, … in order, and added
/// tokens take ids from the vocabulary's size on (as tokenizers assigns them).
/// </summary>
public class TokenizerPostProcessingTests
{
    // "h e" → 256, "l l" → 257, "he ll" → 258, "hell o" → 259 ("hello"); vocabulary size 260.
    private static readonly string[] Merges = ["h e", "l l", "he ll", "hell o"];
    private const int Hello = 259;
    private const int Bos = 260, Eos = 261, Sep = 262;

    private static JsonNode Json(JsonNode? postProcessor, string pre = "llama3")
    {
        var json = JsonNode.Parse(TokenizerTests.TokenizerJson(Merges, pre, added: [(Bos, "<|begin_of_text|>", true), (Eos, "<|end_of_text|>", true), (Sep, "<sep>", true)]))!;
        json["post_processor"] = postProcessor;
        return json;
    }

    private static JsonNode Piece(string kind, string id, int typeId) => new JsonObject { [kind] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };

    private static JsonObject Special(string name, params int[] ids) =>
        new() { ["id"] = name, ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()), ["tokens"] = new JsonArray(ids.Select(_ => (JsonNode)name).ToArray()) };

    /// <summary>Llama-3's post-processor: ByteLevel, then begin_of_text before A (and before B, of type 1).</summary>
    private static JsonNode Llama3Post() => new JsonObject
    {
        ["type"] = "Sequence",
        ["processors"] = new JsonArray(
            new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Piece("SpecialToken", "<|begin_of_text|>", 0), Piece("Sequence", "A", 0)),
                ["pair"] = new JsonArray(Piece("SpecialToken", "<|begin_of_text|>", 0), Piece("Sequence", "A", 0), Piece("SpecialToken", "<|begin_of_text|>", 1), Piece("Sequence", "B", 1)),
                ["special_tokens"] = new JsonObject { ["<|begin_of_text|>"] = Special("<|begin_of_text|>", Bos) },
            }),
    };

    private static ByteLevelBpeTokenizer Load(JsonNode json) => ByteLevelBpeTokenizer.FromJson(json.ToJsonString(), "/t/tokenizer.json");

    [Fact]
    public void Llama3_template_adds_begin_of_text_only_when_asked()
    {
        var tok = Load(Json(Llama3Post()));
        Assert.Equal(new[] { Hello, '!' }, tok.Encode("hello!"));
        Assert.Equal(new[] { Hello, '!' }, tok.Encode("hello!", addSpecialTokens: false));
        Assert.Equal(new[] { Bos, Hello, '!' }, tok.Encode("hello!", addSpecialTokens: true));
        Assert.Equal(new[] { Bos, Hello, '!' }, ((ITokenizer)tok).Encode("hello!", true));
        Assert.Equal("hello!", tok.Decode(tok.Encode("hello!", true), skipSpecialTokens: true));
    }

    [Fact]
    public void A_tokenizer_json_file_on_disk_gets_its_post_processor()
    {
        using var dir = new TempDir();
        System.IO.File.WriteAllText(dir.File("tokenizer.json"), Json(Llama3Post()).ToJsonString());
        var tok = ByteLevelBpeTokenizer.FromFile(dir.File("tokenizer.json"));
        Assert.IsType<SequenceProcessing>(tok.PostProcessor);
        Assert.Equal(new[] { Bos, Hello }, tok.Encode("hello", addSpecialTokens: true));
    }

    [Fact]
    public void Template_pair_sets_type_ids_and_the_special_tokens_mask()
    {
        var tok = Load(Json(Llama3Post()));
        var e = tok.EncodeWithTypes("hello", "hi");
        Assert.Equal(new[] { Bos, Hello, Bos, 'h', 'i' }, e.Ids);
        Assert.Equal(new[] { 0, 0, 1, 1, 1 }, e.TypeIds);
        Assert.Equal(new[] { true, false, true, false, false }, e.SpecialTokensMask);
        // Without special tokens the template still types the sequences.
        var plain = tok.EncodeWithTypes("hello", "hi", addSpecialTokens: false);
        Assert.Equal(new[] { Hello, 'h', 'i' }, plain.Ids);
        Assert.Equal(new[] { 0, 1, 1 }, plain.TypeIds);
    }

    [Fact]
    public void A_special_token_may_stand_for_several_ids_and_types_may_be_any_number()
    {
        var post = new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(Piece("Sequence", "A", 2), Piece("SpecialToken", "end", 3)),
            ["pair"] = new JsonArray(Piece("Sequence", "A", 0), Piece("Sequence", "B", 1)),
            ["special_tokens"] = new JsonObject { ["end"] = Special("end", Sep, Eos) },
        };
        var e = Load(Json(post)).EncodeWithTypes("hello");
        Assert.Equal(new[] { Hello, Sep, Eos }, e.Ids);
        Assert.Equal(new[] { 2, 3, 3 }, e.TypeIds);
    }

    [Fact]
    public void Roberta_and_bert_wrap_as_tokenizers_does()
    {
        var roberta = Load(Json(new JsonObject { ["type"] = "RobertaProcessing", ["sep"] = new JsonArray("<sep>", Sep), ["cls"] = new JsonArray("<|begin_of_text|>", Bos), ["trim_offsets"] = true, ["add_prefix_space"] = false }));
        var r = roberta.EncodeWithTypes("hello", "hi");
        Assert.Equal(new[] { Bos, Hello, Sep, Sep, 'h', 'i', Sep }, r.Ids);
        Assert.Equal(new int[7], r.TypeIds);                                   // Roberta types everything 0
        Assert.Equal(new int[3], roberta.EncodeWithTypes("hello", "hi", addSpecialTokens: false).TypeIds);

        var bert = Load(Json(new JsonObject { ["type"] = "BertProcessing", ["sep"] = new JsonArray("<sep>", Sep), ["cls"] = new JsonArray("<|begin_of_text|>", Bos) }));
        var b = bert.EncodeWithTypes("hello", "hi");
        Assert.Equal(new[] { Bos, Hello, Sep, 'h', 'i', Sep }, b.Ids);
        Assert.Equal(new[] { 0, 0, 0, 1, 1, 1 }, b.TypeIds);
        Assert.Equal(new[] { Bos, Hello, Sep }, bert.Encode("hello", true));
    }

    [Fact]
    public void Byte_level_or_no_post_processor_adds_nothing_and_types_the_pair_zero_then_one()
    {
        foreach (var post in new JsonNode?[] { null, new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = true } })
        {
            var tok = Load(Json(post, "gpt2"));
            Assert.Equal(new[] { Hello }, tok.Encode("hello", true));
            var e = tok.EncodeWithTypes("hello", "hi");
            Assert.Equal(new[] { Hello, 'h', 'i' }, e.Ids);
            Assert.Equal(new[] { 0, 1, 1 }, e.TypeIds);
        }
    }

    [Theory]
    [InlineData("""{"type": "Whatever"}""", "post_processor.type: the post-processor \"Whatever\" is not supported")]
    [InlineData("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}], "pair": [], "special_tokens": {}}""",
        "post_processor.single[0].SpecialToken.id: \"<x>\" is not in post_processor.special_tokens")]
    [InlineData("""{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "C", "type_id": 0}}], "pair": [], "special_tokens": {}}""",
        "post_processor.single[0].Sequence.id: expected \"A\" or \"B\"")]
    [InlineData("""{"type": "TemplateProcessing", "single": ["$A"], "pair": [], "special_tokens": {}}""", "post_processor.single[0]: expected an object")]
    [InlineData("""{"type": "TemplateProcessing", "single": [], "pair": [], "special_tokens": {"s": {"id": "s", "ids": [1, 2], "tokens": ["s"]}}}""",
        "post_processor.special_tokens[\"s\"]: 'ids' has 2 entries but 'tokens' has 1")]
    [InlineData("""{"type": "BertProcessing", "sep": ["[SEP]", "102"], "cls": ["[CLS]", 101]}""", "post_processor.sep[1]: expected a token id")]
    [InlineData("""{"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "Nope"}]}""", "post_processor.processors[1].type: the post-processor \"Nope\"")]
    public void Bad_post_processors_are_refused_naming_the_path(string post, string expected)
    {
        var ex = Assert.Throws<HfFormatException>(() => Load(Json(JsonNode.Parse(post))));
        Assert.StartsWith("/t/tokenizer.json: ", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    // ---- added tokens: flags and ids ----

    private static ByteLevelBpeTokenizer WithAdded(params JsonObject[] added)
    {
        var json = JsonNode.Parse(TokenizerTests.TokenizerJson(Merges, "llama3", nfc: true))!;
        json["added_tokens"] = new JsonArray(added.Select(a => (JsonNode)a).ToArray());
        return Load(json);
    }

    private static JsonObject Added(int id, string content, bool special = true, bool lstrip = false, bool rstrip = false, bool singleWord = false, bool? normalized = null)
    {
        var o = new JsonObject { ["id"] = id, ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = lstrip, ["rstrip"] = rstrip, ["special"] = special };
        if (normalized is { } n) o["normalized"] = n;
        return o;
    }

    [Fact]
    public void Lstrip_and_rstrip_absorb_the_whitespace_beside_the_token()
    {
        var tok = WithAdded(Added(260, "<mask>", lstrip: true), Added(261, "<r>", rstrip: true));
        // "a  <mask> b": the two spaces before <mask> are part of it; " b" is encoded as usual.
        Assert.Equal(new[] { 'a', 260, ' ', 'b' }, tok.Encode("a  <mask> b"));
        // Without lstrip the spaces would be pre-tokens of their own.
        Assert.Equal(new[] { 'a', ' ', ' ', 261, 'b' }, tok.Encode("a  <r>\n b"));
        // lstrip stops at the previous token: "<mask><mask>" keeps both, and whitespace at the start is absorbed.
        Assert.Equal(new[] { 260, 260 }, tok.Encode(" <mask><mask>"));
    }

    [Fact]
    public void Single_word_tokens_match_only_between_non_word_characters()
    {
        var tok = WithAdded(Added(260, "hel", special: false, singleWord: true, normalized: false));
        Assert.Equal(new[] { 260, ' ', 260, '!' }, tok.Encode("hel hel!"));
        Assert.Equal(new[] { Hello }, tok.Encode("hello"));                 // followed by a word character: plain BPE
        Assert.Equal(new[] { '_', 256, 'l' }, tok.Encode("_hel"));          // '_' is a word character
        Assert.Equal(new[] { 0xF0, 0x9D, 0x90, 0x80, 256, 'l' }, tok.Encode("𝐀hel"));  // so is 𝐀 (a letter beyond the BMP)
    }

    [Fact]
    public void Normalized_tokens_match_the_normalized_text_and_others_the_raw_text()
    {
        // The tokenizer normalises to NFC. A normalised token written decomposed matches the composed text;
        // a non-normalised one written decomposed matches only the raw decomposed text.
        var tok = WithAdded(Added(260, "cafe\u0301", special: false, normalized: true), Added(261, "ne\u0301", special: true, normalized: false));
        Assert.Equal(new[] { 260 }, tok.Encode("caf\u00e9"));
        Assert.Equal(new[] { 260 }, tok.Encode("cafe\u0301"));
        Assert.Equal(new[] { 261 }, tok.Encode("ne\u0301"));
        Assert.Equal(new[] { 'n', 0xC3, 0xA9 }, tok.Encode("n\u00e9"));
    }

    [Fact]
    public void Added_token_ids_are_assigned_as_tokenizers_assigns_them()
    {
        // "hello" is in the vocabulary (259): it keeps that id; the others take 260, 261 in file order, whatever the file says.
        var tok = WithAdded(Added(999, "<a>"), Added(5, "hello"), Added(7, "<b>"), Added(8, "<a>"));
        Assert.Equal(new[] { 260, Hello, 261 }, tok.Encode("<a>hello<b>"));
        Assert.Equal(262, tok.VocabSize);
    }
}
