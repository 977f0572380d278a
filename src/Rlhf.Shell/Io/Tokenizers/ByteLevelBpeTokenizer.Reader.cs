using System.Text;
using System.Text.Json;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>The reading half: <c>tokenizer.json</c> (model, added tokens, normalizer, pre-tokenizer, post-processor) to a tokenizer, every value type-checked with its JSON path.</summary>
public sealed partial class ByteLevelBpeTokenizer
{
    /// <summary>Reads a tokenizer.json file (at most <see cref="TokenizerLimits.MaxFileBytes"/>, read without trusting its reported length).</summary>
    public static ByteLevelBpeTokenizer FromFile(string path, TokenizerLimits? limits = null)
    {
        limits ??= TokenizerLimits.Default;
        if (!File.Exists(path)) throw new HfFormatException(path, "tokenizer.json not found");
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var buffer = new MemoryStream();
            var chunk = new byte[1 << 16];
            int n;
            while ((n = stream.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (buffer.Length + n > limits.MaxFileBytes)
                    throw new HfFormatException(path, $"larger than the bound of {limits.MaxFileBytes} bytes for a tokenizer.json");
                buffer.Write(chunk, 0, n);
            }
            bytes = buffer.ToArray();
        }
        catch (Exception e) when (e is IOException and not HfFormatException or UnauthorizedAccessException)
        {
            throw new HfFormatException(path, $"cannot be read: {e.Message}", e);
        }
        return FromJson(bytes, path, limits);
    }

    /// <summary>Parses tokenizer.json text (see <see cref="FromJson(ReadOnlyMemory{byte}, string, TokenizerLimits?)"/>).</summary>
    public static ByteLevelBpeTokenizer FromJson(string json, string path = "tokenizer.json", TokenizerLimits? limits = null) =>
        FromJson(Encoding.UTF8.GetBytes(json), path, limits);

    /// <summary>
    /// Parses tokenizer.json: a BPE <c>model</c> (vocab; merges as "a b" strings or ["a", "b"] pairs;
    /// <c>ignore_merges</c>, <c>unk_token</c>, <c>fuse_unk</c>), <c>added_tokens</c> with their flags, a normalizer
    /// (NFC, NFD, NFKC, NFKD, Sequence), a pre-tokenizer (ByteLevel, Split, Digits, Sequence; one ByteLevel is required)
    /// and a post-processor (TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence). Every value's
    /// JSON type is checked before use; anything wrong or unsupported is one <see cref="HfFormatException"/> naming
    /// <paramref name="path"/>, the JSON path and what was expected.
    /// </summary>
    public static ByteLevelBpeTokenizer FromJson(ReadOnlyMemory<byte> utf8, string path = "tokenizer.json", TokenizerLimits? limits = null)
    {
        limits ??= TokenizerLimits.Default;
        var r = new TokenizerJsonReader(path, limits);
        using var doc = r.Parse(utf8);
        var root = r.Object(doc.RootElement, "");
        var (vocab, merges, ignoreMerges, unkToken, fuseUnk) = ReadModel(r, r.Required(root, "", "model", "the model (an object)"));
        var addedTokens = ReadAddedTokens(r, root, vocab);
        var normalizers = new List<NormalizationForm>();
        if (TokenizerJsonReader.Optional(root, "normalizer") is { } norm) ReadNormalizer(r, norm, "normalizer", normalizers);
        var steps = new List<PreTokenizer>();
        if (TokenizerJsonReader.Optional(root, "pre_tokenizer") is { } pre) ReadPreTokenizer(r, pre, "pre_tokenizer", steps);
        if (!steps.OfType<ByteLevelPreTokenizer>().Any()) throw r.Error("pre_tokenizer", "not a byte-level tokenizer (no ByteLevel pre-tokenizer)");
        var post = TokenizerJsonReader.Optional(root, "post_processor") is { } pp ? ReadPostProcessor(r, pp, "post_processor") : null;
        try { return new ByteLevelBpeTokenizer(vocab, merges, addedTokens, steps, normalizers, post, ignoreMerges, unkToken, fuseUnk, limits); }
        catch (ArgumentException e) { throw r.Error("model", e.Message); }
    }

    private static (Dictionary<string, int> Vocab, List<(string, string)> Merges, bool IgnoreMerges, string? Unk, bool FuseUnk) ReadModel(TokenizerJsonReader r, JsonElement model)
    {
        const string at = "model";
        r.Object(model, at);
        if (r.OptionalString(model, at, "type") is { } type && type != "BPE") throw r.Error("model.type", $"the model type {TokenizerJsonReader.Quote(type)} is not supported (only BPE)");
        foreach (var k in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (r.OptionalString(model, at, k) is { Length: > 0 } s) throw r.Error(TokenizerJsonReader.Member(at, k), $"{TokenizerJsonReader.Quote(s)} is not supported by a byte-level BPE (expected null or \"\")");
        if (TokenizerJsonReader.Optional(model, "dropout") is { } dropout)
            if (dropout.ValueKind != JsonValueKind.Number || !dropout.TryGetDouble(out var p) || p != 0)
                throw r.Expected("model.dropout", "null (BPE dropout is a training-time option and is not supported)", dropout);
        if (r.OptionalBool(model, at, "byte_fallback", false)) throw r.Error("model.byte_fallback", "byte fallback is not supported by a byte-level BPE (expected false)");

        var vocabNode = r.Object(r.Required(model, at, "vocab", "the vocabulary (an object of token → id)"), "model.vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var prop in vocabNode.EnumerateObject())
        {
            var keyPath = TokenizerJsonReader.Key("model.vocab", prop.Name);
            if (prop.Name.Length > r.Limits.MaxTokenLength) throw r.Error(keyPath, $"a token of {prop.Name.Length} characters is longer than the bound of {r.Limits.MaxTokenLength}");
            var id = r.Id(prop.Value, keyPath);
            if (!vocab.TryAdd(prop.Name, id)) throw r.Error(keyPath, "the token appears twice in the vocabulary");
        }

        var merges = new List<(string, string)>();
        if (TokenizerJsonReader.Optional(model, "merges") is { } mergesNode)
        {
            r.Array(mergesNode, "model.merges");
            if (mergesNode.GetArrayLength() > r.Limits.MaxMerges) throw r.Error("model.merges", $"{mergesNode.GetArrayLength()} merges exceed the bound of {r.Limits.MaxMerges}");
            var i = 0;
            foreach (var m in mergesNode.EnumerateArray())
            {
                var mp = TokenizerJsonReader.Index("model.merges", i++);
                const string expected = "a merge: \"left right\" or [\"left\", \"right\"]";
                if (m.ValueKind == JsonValueKind.String)
                {
                    var s = r.String(m, mp);
                    var parts = s.Split(' ');
                    if (parts.Length != 2) throw r.Expected(mp, expected + " (two tokens separated by one space)", m);
                    merges.Add((parts[0], parts[1]));
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                    merges.Add((r.String(m[0], TokenizerJsonReader.Index(mp, 0)), r.String(m[1], TokenizerJsonReader.Index(mp, 1))));
                else throw r.Expected(mp, expected, m);
                var (left, right) = merges[^1];
                foreach (var part in new[] { left, right, left + right })
                    if (!vocab.ContainsKey(part))
                        throw r.Error(mp, $"{(part == left + right ? "the merged token" : "the token")} {TokenizerJsonReader.Quote(part)} is not in model.vocab");
            }
        }
        var ignoreMerges = r.OptionalBool(model, at, "ignore_merges", false);
        var unk = r.OptionalString(model, at, "unk_token");
        if (unk is not null && !vocab.ContainsKey(unk)) throw r.Error("model.unk_token", $"{TokenizerJsonReader.Quote(unk)} is not in model.vocab");
        var fuseUnk = r.OptionalBool(model, at, "fuse_unk", false);
        return (vocab, merges, ignoreMerges, unk, fuseUnk);
    }

    /// <summary>
    /// The added tokens with the ids <c>tokenizers</c> gives them when it loads the file (<c>AddedVocabulary::add_tokens</c>):
    /// a content already in the vocabulary (or added before) keeps that id, every other one takes the next id from
    /// the vocabulary's size on, in file order; the <c>id</c> written in the file must be a valid id but is not used
    /// (tokenizers only warns when it differs). Empty contents are skipped.
    /// </summary>
    private static List<AddedToken> ReadAddedTokens(TokenizerJsonReader r, JsonElement root, Dictionary<string, int> vocab)
    {
        var byContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        var order = new List<string>();
        if (TokenizerJsonReader.Optional(root, "added_tokens") is not { } list) return [];
        r.Array(list, "added_tokens");
        if (list.GetArrayLength() > r.Limits.MaxAddedTokens) throw r.Error("added_tokens", $"{list.GetArrayLength()} added tokens exceed the bound of {r.Limits.MaxAddedTokens}");
        var nextId = vocab.Count;
        var i = 0;
        foreach (var a in list.EnumerateArray())
        {
            var ap = TokenizerJsonReader.Index("added_tokens", i++);
            r.Object(a, ap);
            r.Id(r.Required(a, ap, "id", "a token id"), TokenizerJsonReader.Member(ap, "id"));
            var content = r.String(r.Required(a, ap, "content", "the token's text (a string)"), TokenizerJsonReader.Member(ap, "content"));
            var special = r.OptionalBool(a, ap, "special", false);
            var flags = (SingleWord: r.OptionalBool(a, ap, "single_word", false), LStrip: r.OptionalBool(a, ap, "lstrip", false),
                RStrip: r.OptionalBool(a, ap, "rstrip", false), Normalized: r.OptionalBool(a, ap, "normalized", !special));
            if (content.Length == 0) continue;
            int id;
            if (byContent.TryGetValue(content, out var before)) id = before.Id;
            else if (vocab.TryGetValue(content, out var inVocab)) id = inVocab;
            else id = nextId++;
            if (id >= r.Limits.MaxVocabularySize) throw r.Error(ap, $"the token would get id {id}, beyond the bound of {r.Limits.MaxVocabularySize} ids");
            if (!byContent.ContainsKey(content)) order.Add(content);
            byContent[content] = new AddedToken(id, content, special)
            {
                SingleWord = flags.SingleWord, LStrip = flags.LStrip, RStrip = flags.RStrip, Normalized = flags.Normalized,
            };
        }
        return order.Select(c => byContent[c]).ToList();
    }

    private static void ReadNormalizer(TokenizerJsonReader r, JsonElement n, string at, List<NormalizationForm> output)
    {
        switch (r.Type(n, at))
        {
            case "NFC": output.Add(NormalizationForm.FormC); break;
            case "NFD": output.Add(NormalizationForm.FormD); break;
            case "NFKC": output.Add(NormalizationForm.FormKC); break;
            case "NFKD": output.Add(NormalizationForm.FormKD); break;
            case "Sequence":
            {
                var list = r.Array(r.Required(n, at, "normalizers", "a list of normalizers"), TokenizerJsonReader.Member(at, "normalizers"));
                var i = 0;
                foreach (var x in list.EnumerateArray()) ReadNormalizer(r, x, TokenizerJsonReader.Index(TokenizerJsonReader.Member(at, "normalizers"), i++), output);
                break;
            }
            case var t: throw r.Error(TokenizerJsonReader.Member(at, "type"), $"the normalizer {TokenizerJsonReader.Quote(t)} is not supported (NFC, NFD, NFKC, NFKD, Sequence)");
        }
    }

    private static void ReadPreTokenizer(TokenizerJsonReader r, JsonElement n, string at, List<PreTokenizer> output)
    {
        switch (r.Type(n, at))
        {
            case "Sequence":
            {
                var lp = TokenizerJsonReader.Member(at, "pretokenizers");
                var list = r.Array(r.Required(n, at, "pretokenizers", "a list of pre-tokenizers"), lp);
                var i = 0;
                foreach (var x in list.EnumerateArray()) ReadPreTokenizer(r, x, TokenizerJsonReader.Index(lp, i++), output);
                break;
            }
            case "ByteLevel":
                output.Add(new ByteLevelPreTokenizer(r.OptionalBool(n, at, "add_prefix_space", false), r.OptionalBool(n, at, "use_regex", true)));
                break;
            case "Digits":
                output.Add(new SplitPreTokenizer(r.OptionalBool(n, at, "individual_digits", false) ? @"\p{N}" : @"\p{N}+", isRegex: true, limits: r.Limits, file: r.File, jsonPath: at));
                break;
            case "Split":
            {
                var pp = TokenizerJsonReader.Member(at, "pattern");
                var pattern = r.Object(r.Required(n, at, "pattern", "{\"Regex\": …} or {\"String\": …}"), pp);
                string text;
                bool isRegex;
                string patternPath;
                if (TokenizerJsonReader.Optional(pattern, "Regex") is { } re) { patternPath = TokenizerJsonReader.Member(pp, "Regex"); text = r.String(re, patternPath); isRegex = true; }
                else if (TokenizerJsonReader.Optional(pattern, "String") is { } lit) { patternPath = TokenizerJsonReader.Member(pp, "String"); text = r.String(lit, patternPath); isRegex = false; }
                else throw r.Expected(pp, "{\"Regex\": \"…\"} or {\"String\": \"…\"}", pattern);
                var behavior = SplitBehavior.Isolated;
                if (r.OptionalString(n, at, "behavior") is { } b && !(Enum.GetNames<SplitBehavior>().Contains(b) && Enum.TryParse(b, out behavior)))
                    throw r.Error(TokenizerJsonReader.Member(at, "behavior"), $"expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous, found {TokenizerJsonReader.Quote(b)}");
                var invert = r.OptionalBool(n, at, "invert", false);
                output.Add(new SplitPreTokenizer(text, isRegex, behavior, invert, r.Limits, r.File, patternPath));
                break;
            }
            case var t: throw r.Error(TokenizerJsonReader.Member(at, "type"), $"the pre-tokenizer {TokenizerJsonReader.Quote(t)} is not supported (ByteLevel, Split, Digits, Sequence)");
        }
    }

    private static PostProcessor ReadPostProcessor(TokenizerJsonReader r, JsonElement n, string at)
    {
        switch (r.Type(n, at))
        {
            case "ByteLevel": return new ByteLevelProcessing();
            case "Sequence":
            {
                var lp = TokenizerJsonReader.Member(at, "processors");
                var list = r.Array(r.Required(n, at, "processors", "a list of post-processors"), lp);
                var i = 0;
                return new SequenceProcessing(list.EnumerateArray().Select(x => ReadPostProcessor(r, x, TokenizerJsonReader.Index(lp, i++))).ToList());
            }
            case "RobertaProcessing": return new RobertaProcessing(ReadIdPair(r, n, at, "cls"), ReadIdPair(r, n, at, "sep"));
            case "BertProcessing": return new BertProcessing(ReadIdPair(r, n, at, "cls"), ReadIdPair(r, n, at, "sep"));
            case "TemplateProcessing":
            {
                var sp = TokenizerJsonReader.Member(at, "special_tokens");
                var specials = new Dictionary<string, IReadOnlyList<int>>(StringComparer.Ordinal);
                foreach (var prop in r.Object(r.Required(n, at, "special_tokens", "an object of special tokens"), sp).EnumerateObject())
                {
                    var kp = TokenizerJsonReader.Key(sp, prop.Name);
                    var tok = r.Object(prop.Value, kp);
                    var ids = r.Array(r.Required(tok, kp, "ids", "a list of token ids"), TokenizerJsonReader.Member(kp, "ids"));
                    var tokens = r.Array(r.Required(tok, kp, "tokens", "a list of token strings"), TokenizerJsonReader.Member(kp, "tokens"));
                    if (ids.GetArrayLength() != tokens.GetArrayLength())
                        throw r.Error(kp, $"'ids' has {ids.GetArrayLength()} entries but 'tokens' has {tokens.GetArrayLength()}; they must be of the same length");
                    var j = 0;
                    specials[prop.Name] = ids.EnumerateArray().Select(x => r.Id(x, TokenizerJsonReader.Index(TokenizerJsonReader.Member(kp, "ids"), j++))).ToArray();
                }
                return new TemplateProcessing(ReadTemplate(r, n, at, "single", specials), ReadTemplate(r, n, at, "pair", specials), specials);
            }
            case var t: throw r.Error(TokenizerJsonReader.Member(at, "type"), $"the post-processor {TokenizerJsonReader.Quote(t)} is not supported (TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
        }
    }

    /// <summary>A <c>["token", id]</c> pair (Bert/Roberta <c>cls</c>, <c>sep</c>); returns the id.</summary>
    private static int ReadIdPair(TokenizerJsonReader r, JsonElement n, string at, string name)
    {
        var p = TokenizerJsonReader.Member(at, name);
        var pair = r.Required(n, at, name, "[\"token\", id]");
        if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2) throw r.Expected(p, "[\"token\", id]", pair);
        r.String(pair[0], TokenizerJsonReader.Index(p, 0));
        return r.Id(pair[1], TokenizerJsonReader.Index(p, 1));
    }

    private static List<TemplatePiece> ReadTemplate(TokenizerJsonReader r, JsonElement n, string at, string name, Dictionary<string, IReadOnlyList<int>> specials)
    {
        var tp = TokenizerJsonReader.Member(at, name);
        var list = r.Array(r.Required(n, at, name, "a template (a list of pieces)"), tp);
        var result = new List<TemplatePiece>();
        var i = 0;
        foreach (var piece in list.EnumerateArray())
        {
            var pp = TokenizerJsonReader.Index(tp, i++);
            const string expected = "{\"Sequence\": {\"id\": \"A\"|\"B\", \"type_id\": n}} or {\"SpecialToken\": {\"id\": name, \"type_id\": n}}";
            r.Object(piece, pp);
            if (TokenizerJsonReader.Optional(piece, "Sequence") is { } seq)
            {
                var sp = TokenizerJsonReader.Member(pp, "Sequence");
                var id = r.String(r.Required(r.Object(seq, sp), sp, "id", "\"A\" or \"B\""), TokenizerJsonReader.Member(sp, "id"));
                if (id is not ("A" or "B")) throw r.Expected(TokenizerJsonReader.Member(sp, "id"), "\"A\" or \"B\"", seq.GetProperty("id"));
                if (name == "single" && id == "B") throw r.Error(TokenizerJsonReader.Member(sp, "id"), "the single-sequence template cannot use sequence B");
                result.Add(new TemplatePiece(true, id, r.Count(r.Required(seq, sp, "type_id", "a type id"), TokenizerJsonReader.Member(sp, "type_id"))));
            }
            else if (TokenizerJsonReader.Optional(piece, "SpecialToken") is { } st)
            {
                var sp = TokenizerJsonReader.Member(pp, "SpecialToken");
                var id = r.String(r.Required(r.Object(st, sp), sp, "id", "a special token name"), TokenizerJsonReader.Member(sp, "id"));
                if (!specials.ContainsKey(id)) throw r.Error(TokenizerJsonReader.Member(sp, "id"), $"{TokenizerJsonReader.Quote(id)} is not in {TokenizerJsonReader.Member(at, "special_tokens")}");
                result.Add(new TemplatePiece(false, id, r.Count(r.Required(st, sp, "type_id", "a type id"), TokenizerJsonReader.Member(sp, "type_id"))));
            }
            else throw r.Expected(pp, expected, piece);
        }
        return result;
    }
}
