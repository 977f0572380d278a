using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Tests.Io;

public class TokenizerTests
{
    /// <summary>Byte b's character gets id b; merges get ids 256, 257, … in order.</summary>
    internal static string TokenizerJson(string[] merges, string preTokenizer = "gpt2", bool pairMerges = false, bool ignoreMerges = false,
        bool nfc = false, (int Id, string Content, bool Special)[]? added = null)
    {
        var vocab = new JsonObject();
        for (var b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
        var next = 256;
        foreach (var m in merges)
        {
            var merged = m.Replace(" ", "");
            if (!vocab.ContainsKey(merged)) vocab[merged] = next++;
        }
        var mergeArray = new JsonArray(merges.Select(m => pairMerges ? (JsonNode)new JsonArray(m.Split(' ')[0], m.Split(' ')[1]) : JsonValue.Create(m)!).ToArray());
        JsonNode pre = preTokenizer == "gpt2"
            ? new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true }
            : new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = PreTokenizerPatterns.ByName(preTokenizer) }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray((added ?? []).Select(a => (JsonNode)new JsonObject
            {
                ["id"] = a.Id, ["content"] = a.Content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = a.Special,
            }).ToArray()),
            ["normalizer"] = nfc ? new JsonObject { ["type"] = "NFC" } : null,
            ["pre_tokenizer"] = pre,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = ignoreMerges, ["vocab"] = vocab, ["merges"] = mergeArray,
            },
        };
        return root.ToJsonString();
    }

    private static readonly string[] HelloMerges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Merges_apply_by_rank_in_either_serialisation(bool pairMerges)
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson(HelloMerges, pairMerges: pairMerges));
        // "hello" → h e l l o → he l l o → he ll o → hell o → hello (259); " world" → Ġw o r l d → Ġw or l d → Ġwor l d
        Assert.Equal(new[] { 259, 262, 'l', 'd' }, tok.Encode("hello world"));
        Assert.Equal("hello world", tok.Decode(tok.Encode("hello world")));
    }

    [Fact]
    public void Lowest_rank_wins_and_ties_go_left()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson(["b c", "a b", "a a"]));
        Assert.Equal(new[] { 'a', 256 }, tok.Encode("abc"));          // "b c" (rank 0) beats "a b" (rank 1)
        Assert.Equal(new[] { 258, 'a' }, tok.Encode("aaa"));          // leftmost "a a" first
        Assert.Equal(new[] { 258, 258 }, tok.Encode("aaaa"));
    }

    [Fact]
    public void Ignore_merges_emits_a_whole_pretoken_found_in_the_vocabulary()
    {
        // "hello" is reachable only through "hell o"; with ignore_merges a vocabulary hit needs no merges at all.
        var merges = new[] { "h e", "l l", "he ll", "hell o", "x y" };
        var json = JsonNode.Parse(TokenizerJson(merges, ignoreMerges: true))!;
        json["model"]!["vocab"]!["zzz"] = 400;
        var tok = ByteLevelBpeTokenizer.FromJson(json.ToJsonString());
        Assert.Equal(new[] { 400 }, tok.Encode("zzz"));
        var plain = JsonNode.Parse(TokenizerJson(merges))!;
        plain["model"]!["vocab"]!["zzz"] = 400;
        Assert.Equal(new int[] { 'z', 'z', 'z' }, ByteLevelBpeTokenizer.FromJson(plain.ToJsonString()).Encode("zzz"));
    }

    [Fact]
    public void Gpt2_pretokenizer_by_hand()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson([]));
        Assert.Equal(["Hello", " world", "'s", " ", " 123", " 4567", "\n\n ", " x", "!!"], tok.PreTokenize("Hello world's  123 4567\n\n  x!!"));
        Assert.Equal(["I", "'", "M", " naïve", " café"], tok.PreTokenize("I'M naïve café"));
        Assert.Equal(["hi", "😀😀", " there", "😀", "abc"], tok.PreTokenize("hi😀😀 there😀abc"));
        Assert.Equal(["\t ", " tab", "\r\n"], tok.PreTokenize("\t  tab\r\n"));
    }

    [Fact]
    public void Llama3_pretokenizer_by_hand()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson([], "llama3"));
        Assert.Equal(["Hello", " world", "'s", " ", " ", "123", " ", "456", "7", "\n\n", " ", " x", "!!"], tok.PreTokenize("Hello world's  123 4567\n\n  x!!"));
        Assert.Equal(["I", "'M", " naïve", " café"], tok.PreTokenize("I'M naïve café"));
        Assert.Equal(["hi", "😀😀", " there", "😀abc"], tok.PreTokenize("hi😀😀 there😀abc"));     // the emoji joins the word, as in HF
        Assert.Equal(["x", ";\n\n", "y"], tok.PreTokenize("x;\n\ny"));
    }

    [Fact]
    public void Qwen2_pretokenizer_splits_single_digits_and_normalises_nfc()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson([], "qwen2", nfc: true));
        Assert.Equal(["Hello", " world", "'s", " ", " ", "1", "2", "3", " ", "4", "5", "6", "7", "\n\n", " ", " x", "!!"], tok.PreTokenize("Hello world's  123 4567\n\n  x!!"));
        var composed = "caf\u00e9";
        var decomposed = "cafe\u0301";
        Assert.Equal(tok.Encode(composed), tok.Encode(decomposed));
        Assert.Equal(composed, tok.Decode(tok.Encode(decomposed)));
        var noNfc = ByteLevelBpeTokenizer.FromJson(TokenizerJson([], "qwen2"));
        Assert.NotEqual(noNfc.Encode(composed), noNfc.Encode(decomposed));
    }

    [Fact]
    public void Added_and_special_tokens_are_split_out_first()
    {
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson(HelloMerges, "llama3",
            added: [(263, "<|begin_of_text|>", true), (264, "<|eot_id|>", true), (265, "<|eot_id|>x", false)]));
        Assert.Equal(263, tok.BosId);
        Assert.Equal(new[] { 263, 259, 264, '!' }, tok.Encode("<|begin_of_text|>hello<|eot_id|>!"));
        Assert.Equal(new[] { 265 }, tok.Encode("<|eot_id|>x"));            // longest match wins
        var ids = tok.Encode("<|begin_of_text|>hello<|eot_id|>!");
        Assert.Equal("<|begin_of_text|>hello<|eot_id|>!", tok.Decode(ids));
        Assert.Equal("hello!", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal(266, tok.VocabSize);
    }

    [Fact]
    public void Malformed_tokenizer_json_names_the_file()
    {
        var ex = Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(TokenizerJson(["q z"]).Replace("\"qz\"", "\"qq\""), "/t/tokenizer.json"));
        Assert.StartsWith("/t/tokenizer.json: model.merges[0]: ", ex.Message);
        Assert.Contains("\"qz\" is not in model.vocab", ex.Message);
        var wp = JsonNode.Parse(TokenizerJson([]))!;
        wp["model"]!["type"] = "WordPiece";
        Assert.Contains("the model type \"WordPiece\" is not supported (only BPE)", Assert.Throws<HfFormatException>(() => ByteLevelBpeTokenizer.FromJson(wp.ToJsonString())).Message);
    }

    private static readonly Gen<string> Texts =
        Gen.ArrayOf(Gen.OneOf(
                Gen.Choose(0x20, 0x7e), Gen.Elements(0x09, 0x0a, 0x0d, 0x20, 0x20, 0x3000, 0x00a0, 0x0085),
                Gen.Choose(0x30, 0x39), Gen.Choose(0xa1, 0x24f), Gen.Choose(0x4e00, 0x4eff), Gen.Choose(0x0300, 0x036f),
                Gen.Choose(0x1f600, 0x1f64f), Gen.Choose(0x10000, 0x10ffff).Where(c => c is < 0xd800 or > 0xdfff), Gen.Choose(0, 0x1f)))
            .Select(cps => string.Concat(cps.Select(char.ConvertFromUtf32)));

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    public void Encode_then_decode_is_the_identity_on_any_text(string pre)
    {
        var nfc = pre == "qwen2";
        var tok = ByteLevelBpeTokenizer.FromJson(TokenizerJson(HelloMerges.Concat(["Ġ Ġ", "Ċ Ċ", "1 2", "ä ¸"]).ToArray(), pre, nfc: nfc,
            added: [(400, "<|endoftext|>", true)]));
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(150).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(Texts), text =>
        {
            var input = nfc ? text.Normalize(NormalizationForm.FormC) : text;
            Assert.Equal(input, tok.Decode(tok.Encode(input)));
            var withSpecial = input + "<|endoftext|>" + input;
            Assert.Equal(withSpecial, tok.Decode(tok.Encode(withSpecial)));
        }));
    }

    /// <summary>
    /// The plain-loop definition of BPE: scan for the lowest-ranked adjacent pair (leftmost on ties), merge it, repeat.
    /// A repeated merge keeps its last rank.
    /// </summary>
    private static int[] NaiveBpe(string word, IReadOnlyList<(string L, string R)> merges, IReadOnlyDictionary<string, int> vocab)
    {
        var rank = new Dictionary<(string, string), int>();
        for (var i = 0; i < merges.Count; i++) rank[merges[i]] = i;
        var symbols = ByteLevel.Encode(Encoding.UTF8.GetBytes(word)).Select(c => c.ToString()).ToList();
        while (true)
        {
            int best = -1, bestRank = int.MaxValue;
            for (var i = 0; i + 1 < symbols.Count; i++)
                if (rank.TryGetValue((symbols[i], symbols[i + 1]), out var r) && r < bestRank) { bestRank = r; best = i; }
            if (best < 0) break;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        return symbols.Select(t => vocab[t]).ToArray();
    }

    [Fact]
    public void Heap_bpe_equals_the_plain_loop_on_random_merge_tables_and_words()
    {
        // Merges over a three-letter alphabet, built so that every merge's parts exist; words long enough for cascades.
        var mergeTables = Gen.Choose(1, 60).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 1 << 20), n)).Select(seeds =>
        {
            var tokens = new List<string> { "a", "b", "c" };
            var merges = new List<(string, string)>();
            foreach (var s in seeds)
            {
                var l = tokens[s % tokens.Count];
                var r = tokens[(s / 7) % tokens.Count];
                merges.Add((l, r));
                if (!tokens.Contains(l + r)) tokens.Add(l + r);
            }
            return merges;
        });
        var words = Gen.Choose(0, 200).SelectMany(n => Gen.ArrayOf(Gen.Elements('a', 'b', 'c'), n)).Select(cs => new string(cs));
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(mergeTables), Arb.From(words), (merges, word) =>
        {
            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
            foreach (var (l, r) in merges) vocab.TryAdd(l + r, vocab.Count);
            var model = new BpeModel(vocab, merges, ignoreMerges: false, unkToken: null, fuseUnk: false);
            Assert.Equal(NaiveBpe(word, merges, vocab), model.Tokenize(word));
        }));
    }

    [Fact]
    public void A_megabyte_word_merges_in_n_log_n()
    {
        // One pre-token of 2^20 letters: the plain loop would take ~10^12 steps; the heap finishes in about a second.
        var model = new BpeModel(Enumerable.Range(0, 256).ToDictionary(b => ByteLevel.ByteToChar[b].ToString(), b => b)
            .Concat([new KeyValuePair<string, int>("aa", 256), new("aaaa", 257)]).ToDictionary(), [("a", "a"), ("aa", "aa")], false, null, false);
        var ids = model.Tokenize(new string('a', 1 << 20));
        Assert.Equal(1 << 18, ids.Length);
        Assert.All(ids, id => Assert.Equal(257, id));
    }

    private static IReadOnlyList<string> SplitOnly(SplitPreTokenizer step)
    {
        var vocab = Enumerable.Range(0, 256).ToDictionary(b => ByteLevel.ByteToChar[b].ToString(), b => b);
        return new ByteLevelBpeTokenizer(vocab, [], preTokenizers: [step]).PreTokenize("How are you doing?");
    }

    // The cases of tokenizers' own Split tests (src/pre_tokenizers/split.rs, `basic`): the pattern matches words and
    // punctuation, inverted, so the spaces are what each behaviour acts on.
    [Theory]
    [InlineData(SplitBehavior.Removed, new[] { "How", "are", "you", "doing", "?" })]
    [InlineData(SplitBehavior.Isolated, new[] { "How", " ", "are", " ", "you", " ", "doing", "?" })]
    [InlineData(SplitBehavior.MergedWithPrevious, new[] { "How ", "are ", "you ", "doing", "?" })]
    [InlineData(SplitBehavior.MergedWithNext, new[] { "How", " are", " you", " doing", "?" })]
    [InlineData(SplitBehavior.Contiguous, new[] { "How", " ", "are", " ", "you", " ", "doing?" })]
    public void Split_behaviours_match_tokenizers_own_cases(SplitBehavior behavior, string[] expected) =>
        Assert.Equal(expected, SplitOnly(new SplitPreTokenizer(@"\w+|[^\w\s]+", isRegex: true, behavior, invert: true)));

    [Fact]
    public void Literal_split_patterns_match_only_themselves()
    {
        var vocab = Enumerable.Range(0, 256).ToDictionary(b => ByteLevel.ByteToChar[b].ToString(), b => b);
        IReadOnlyList<string> Pre(SplitPreTokenizer step, string text) => new ByteLevelBpeTokenizer(vocab, [], preTokenizers: [step]).PreTokenize(text);
        Assert.Equal(["Hey,", "man!"], Pre(new SplitPreTokenizer(" ", isRegex: false, SplitBehavior.Removed), "Hey, man!"));
        Assert.Equal(["Hello", "Hello", "Hello"], Pre(new SplitPreTokenizer("Hello", isRegex: false, SplitBehavior.Removed, invert: true), "Hello Hello Hello"));
        // Regex metacharacters and astral characters in a literal are literal.
        Assert.Equal(["a", ".*", "b", "𝐀", "c"], Pre(new SplitPreTokenizer(".*", isRegex: false), "a.*b𝐀c").SelectMany(p => Pre(new SplitPreTokenizer("𝐀", isRegex: false), p)).ToList());
    }

    [Fact]
    public void Byte_tokenizer_round_trips_and_names_specials()
    {
        var tok = new ByteTokenizer();
        Assert.Equal(259, tok.VocabSize);
        Assert.Equal(new[] { 104, 195, 169 }, tok.Encode("hé"));
        int[] ids = [ByteTokenizer.Bos, 104, 195, 169, ByteTokenizer.Eos, ByteTokenizer.Pad];
        Assert.Equal("<bos>hé<eos><pad>", tok.Decode(ids));
        Assert.Equal("hé", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([259]));
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(Texts), t => tok.Decode(tok.Encode(t)) == t));
    }
}
