using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>A token added on top of the BPE vocabulary (HF <c>added_tokens</c>): matched verbatim before pre-tokenizing.</summary>
public sealed record AddedToken(int Id, string Content, bool Special);

/// <summary>
/// Byte-level BPE as Hugging Face <c>tokenizers</c> runs it for GPT-2, Llama-3 and Qwen2:
/// added tokens are split out first (longest match, leftmost); the rest is normalised (NFC for Qwen2), cut into
/// pre-tokens by the family's regex, each pre-token's UTF-8 bytes mapped to characters (<see cref="ByteLevel"/>),
/// and merged pairwise — always the lowest-ranked adjacent pair, leftmost on ties — until no merge applies.
/// With <c>ignore_merges</c>, a pre-token that is itself in the vocabulary is emitted whole.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private readonly Dictionary<string, int> vocab;
    private readonly string[] idToToken;
    private readonly Dictionary<(string, string), int> ranks;
    private readonly Dictionary<int, AddedToken> added;
    private readonly Regex? addedRegex;
    private readonly Dictionary<string, AddedToken> addedByContent;
    private readonly Regex preTokenizer;
    private readonly ConcurrentDictionary<string, int[]> cache = new();

    /// <summary>Builds a tokenizer from its parts (ranks are the merges' order).</summary>
    public ByteLevelBpeTokenizer(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<AddedToken>? addedTokens = null, string? pattern = null, bool nfc = false, bool ignoreMerges = false, bool addPrefixSpace = false)
    {
        this.vocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        ranks = new Dictionary<(string, string), int>();
        for (var i = 0; i < merges.Count; i++)
        {
            var (l, r) = merges[i];
            if (!this.vocab.ContainsKey(l + r)) throw new ArgumentException($"merge {i} ('{l}' '{r}') produces '{l + r}', which is not in the vocabulary");
            ranks.TryAdd((l, r), i);
        }
        added = new Dictionary<int, AddedToken>();
        addedByContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var a in addedTokens ?? [])
        {
            added[a.Id] = a;
            addedByContent[a.Content] = a;
        }
        if (addedByContent.Count > 0)
            addedRegex = new Regex(string.Join("|", addedByContent.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
        Pattern = pattern ?? PreTokenizerPatterns.Gpt2;
        preTokenizer = PreTokenizerPatterns.Compile(Pattern);
        Nfc = nfc;
        IgnoreMerges = ignoreMerges;
        AddPrefixSpace = addPrefixSpace;
        var size = Math.Max(this.vocab.Count == 0 ? 0 : this.vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Keys.Max() + 1);
        idToToken = new string[size];
        foreach (var (tok, id) in this.vocab) idToToken[id] = tok;
        VocabSize = size;
        foreach (var a in added.Values)
        {
            if (a.Special && a.Content is "<|endoftext|>" or "<|end_of_text|>" or "<|im_end|>" or "</s>" or "<eos>") EosId ??= a.Id;
            if (a.Special && a.Content is "<|begin_of_text|>" or "<s>" or "<bos>") BosId ??= a.Id;
            if (a.Special && a.Content is "<pad>" or "<|pad|>" or "[PAD]") PadId ??= a.Id;
        }
    }

    /// <summary>The pre-tokenizer regex in HF syntax.</summary>
    public string Pattern { get; }
    /// <summary>Whether text is NFC-normalised first (Qwen2).</summary>
    public bool Nfc { get; }
    /// <summary>Whether a pre-token found in the vocabulary is emitted whole (Llama-3).</summary>
    public bool IgnoreMerges { get; }
    /// <summary>Whether a space is prepended when the text does not start with one (ByteLevel <c>add_prefix_space</c>).</summary>
    public bool AddPrefixSpace { get; }
    /// <summary>The added tokens by id.</summary>
    public IReadOnlyDictionary<int, AddedToken> AddedTokens => added;

    /// <inheritdoc />
    public int VocabSize { get; }
    /// <inheritdoc />
    public int? EosId { get; set; }
    /// <inheritdoc />
    public int? PadId { get; set; }
    /// <inheritdoc />
    public int? BosId { get; set; }

    /// <summary>The id of a vocabulary or added token, or null.</summary>
    public int? TokenToId(string token) => addedByContent.TryGetValue(token, out var a) ? a.Id : vocab.TryGetValue(token, out var id) ? id : null;

    /// <summary>Reads a tokenizer.json file.</summary>
    public static ByteLevelBpeTokenizer FromFile(string path)
    {
        if (!File.Exists(path)) throw new HfFormatException(path, "tokenizer.json not found");
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>
    /// Parses tokenizer.json text: a BPE <c>model</c> (vocab; merges as "a b" strings or ["a", "b"] pairs;
    /// ignore_merges), <c>added_tokens</c>, a null/NFC <c>normalizer</c>, and a ByteLevel pre-tokenizer alone
    /// (GPT-2 regex) or after a Split whose regex it uses (Llama-3, Qwen2). Anything else is an error naming
    /// <paramref name="path"/>.
    /// </summary>
    public static ByteLevelBpeTokenizer FromJson(string json, string path = "tokenizer.json")
    {
        JsonObject root;
        try { root = JsonNode.Parse(json) as JsonObject ?? throw new HfFormatException(path, "tokenizer.json must be an object"); }
        catch (JsonException e) { throw new HfFormatException(path, $"invalid JSON: {e.Message}", e); }
        var model = root["model"] as JsonObject ?? throw new HfFormatException(path, "missing 'model'");
        var type = model["type"]?.GetValue<string>();
        if (type is not null and not "BPE") throw new HfFormatException(path, $"model type '{type}' is not BPE");
        foreach (var k in new[] { "continuing_subword_prefix", "end_of_word_suffix", "dropout" })
            if (model[k] is JsonValue v && !(v.TryGetValue<string>(out var s) && s == ""))
                throw new HfFormatException(path, $"BPE option '{k}' = {v.ToJsonString()} is not supported");
        var vocabNode = model["vocab"] as JsonObject ?? throw new HfFormatException(path, "missing 'model.vocab'");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (tok, id) in vocabNode) vocab[tok] = id!.GetValue<int>();
        var merges = new List<(string, string)>();
        if (model["merges"] is JsonArray ma)
            foreach (var m in ma)
            {
                if (m is JsonArray pair && pair.Count == 2) merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
                else if (m is JsonValue sv && sv.TryGetValue<string>(out var s))
                {
                    var parts = s.Split(' ');
                    if (parts.Length != 2) throw new HfFormatException(path, $"merge \"{s}\" is not two tokens separated by one space");
                    merges.Add((parts[0], parts[1]));
                }
                else throw new HfFormatException(path, $"merge {m?.ToJsonString()} is neither \"a b\" nor [\"a\", \"b\"]");
            }
        var ignoreMerges = model["ignore_merges"] is JsonValue im && im.GetValue<bool>();
        var addedTokens = new List<AddedToken>();
        if (root["added_tokens"] is JsonArray at)
            foreach (var a in at)
                addedTokens.Add(new AddedToken(a!["id"]!.GetValue<int>(), a["content"]!.GetValue<string>(), a["special"] is JsonValue sp && sp.GetValue<bool>()));
        var nfc = false;
        void Normalizer(JsonNode? n)
        {
            if (n is null) return;
            switch (n["type"]?.GetValue<string>())
            {
                case "NFC": nfc = true; break;
                case "Sequence": foreach (var x in (n["normalizers"] as JsonArray) ?? []) Normalizer(x); break;
                case var t: throw new HfFormatException(path, $"normalizer '{t}' is not supported (only NFC)");
            }
        }
        Normalizer(root["normalizer"]);
        string? pattern = null;
        var byteLevel = false;
        var prefixSpace = false;
        void Pre(JsonNode? n)
        {
            if (n is null) return;
            switch (n["type"]?.GetValue<string>())
            {
                case "Sequence": foreach (var x in (n["pretokenizers"] as JsonArray) ?? []) Pre(x); break;
                case "ByteLevel":
                    byteLevel = true;
                    prefixSpace = n["add_prefix_space"] is JsonValue ps && ps.GetValue<bool>();
                    if (n["use_regex"] is not JsonValue ur || ur.GetValue<bool>()) pattern ??= PreTokenizerPatterns.Gpt2;
                    break;
                case "Split":
                {
                    if (n["behavior"]?.GetValue<string>() is { } b && b != "Isolated") throw new HfFormatException(path, $"Split behavior '{b}' is not supported (only Isolated)");
                    if (n["invert"] is JsonValue inv && inv.GetValue<bool>()) throw new HfFormatException(path, "inverted Split is not supported");
                    pattern = n["pattern"]?["Regex"]?.GetValue<string>()
                        ?? (n["pattern"]?["String"]?.GetValue<string>() is { } lit ? Regex.Escape(lit) : throw new HfFormatException(path, "Split pre-tokenizer without a pattern"));
                    break;
                }
                case var t: throw new HfFormatException(path, $"pre-tokenizer '{t}' is not supported (ByteLevel, Split, Sequence)");
            }
        }
        Pre(root["pre_tokenizer"]);
        if (!byteLevel) throw new HfFormatException(path, "not a byte-level tokenizer (no ByteLevel pre-tokenizer)");
        try { return new ByteLevelBpeTokenizer(vocab, merges, addedTokens, pattern, nfc, ignoreMerges, prefixSpace); }
        catch (ArgumentException e) { throw new HfFormatException(path, e.Message, e); }
    }

    /// <summary>Pre-tokens of text without added tokens (after normalisation): the regex matches in order.</summary>
    public IReadOnlyList<string> PreTokenize(string text)
    {
        if (Nfc) text = text.Normalize(NormalizationForm.FormC);
        if (AddPrefixSpace && !text.StartsWith(' ')) text = " " + text;
        return preTokenizer.Matches(text).Select(m => m.Value).ToList();
    }

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        var ids = new List<int>();
        var start = 0;
        if (addedRegex is not null)
            foreach (Match m in addedRegex.Matches(text))
            {
                EncodeOrdinary(text[start..m.Index], ids);
                ids.Add(addedByContent[m.Value].Id);
                start = m.Index + m.Length;
            }
        EncodeOrdinary(text[start..], ids);
        return ids.ToArray();
    }

    private void EncodeOrdinary(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        foreach (var piece in PreTokenize(text)) ids.AddRange(cache.GetOrAdd(piece, Bpe));
    }

    /// <summary>BPE of one pre-token: lowest-ranked adjacent pair first, leftmost on ties.</summary>
    private int[] Bpe(string piece)
    {
        var mapped = ByteLevel.Encode(Encoding.UTF8.GetBytes(piece));
        if (IgnoreMerges && vocab.TryGetValue(mapped, out var whole)) return [whole];
        var symbols = mapped.Select(c => c.ToString()).ToList();
        while (symbols.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (var i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out var r) && r < bestRank) { bestRank = r; best = i; }
            if (best < 0) break;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        var result = new int[symbols.Count];
        for (var i = 0; i < symbols.Count; i++)
            result[i] = vocab.TryGetValue(symbols[i], out var id) ? id
                : throw new InvalidOperationException($"symbol '{symbols[i]}' of pre-token \"{piece}\" is not in the vocabulary (a byte-level vocabulary must contain all 256 byte characters)");
        return result;
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (added.TryGetValue(id, out var a))
            {
                if (!(skipSpecialTokens && a.Special)) bytes.AddRange(Encoding.UTF8.GetBytes(a.Content));
                continue;
            }
            if (id < 0 || id >= idToToken.Length || idToToken[id] is null) throw new ArgumentOutOfRangeException(nameof(ids), id, "id not in the vocabulary");
            foreach (var ch in idToToken[id])
                if (ByteLevel.CharToByte.TryGetValue(ch, out var b)) bytes.Add(b);
                else bytes.AddRange(Encoding.UTF8.GetBytes(ch.ToString()));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
