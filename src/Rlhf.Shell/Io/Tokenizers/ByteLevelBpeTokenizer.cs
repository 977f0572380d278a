using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// Byte-level BPE as Hugging Face <c>tokenizers</c> runs it for GPT-2, Llama-3 and Qwen2 (the pipeline of
/// <c>Tokenizer::encode</c>): added tokens whose <c>normalized</c> flag is off are split out of the raw text first,
/// the rest is normalised (NFC for Qwen2) and searched for the normalised added tokens, the remaining text is cut
/// into pre-tokens by the pre-tokenizer steps (Split regexes over Unicode scalar values, ByteLevel), each pre-token's
/// UTF-8 bytes are merged by <see cref="BpeModel"/>, and with special tokens the <see cref="PostProcessor"/> wraps
/// the result (Llama-3's <c>&lt;|begin_of_text|&gt;</c>).
/// </summary>
public sealed partial class ByteLevelBpeTokenizer : ITokenizer
{
    private readonly BpeModel model;
    private readonly string?[] idToToken;
    private readonly Dictionary<int, AddedToken> added;
    private readonly Dictionary<string, AddedToken> addedByContent;
    private readonly AddedTokenMatcher rawAdded;
    private readonly AddedTokenMatcher normalizedAdded;
    private readonly ConcurrentDictionary<string, int[]> cache = new(StringComparer.Ordinal);
    private readonly TokenizerLimits limits;

    /// <summary>
    /// Builds a tokenizer from its parts: ranks are the merges' order; <paramref name="preTokenizers"/> default to
    /// GPT-2's ByteLevel step; <paramref name="normalizers"/> are applied in order. Throws
    /// <see cref="ArgumentException"/> for a merge or unknown token outside the vocabulary, or an id beyond the limits.
    /// </summary>
    public ByteLevelBpeTokenizer(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<AddedToken>? addedTokens = null, IReadOnlyList<PreTokenizer>? preTokenizers = null,
        IReadOnlyList<NormalizationForm>? normalizers = null, PostProcessor? postProcessor = null, bool ignoreMerges = false,
        string? unkToken = null, bool fuseUnk = false, TokenizerLimits? limits = null)
    {
        this.limits = limits ?? TokenizerLimits.Default;
        model = new BpeModel(vocab, merges, ignoreMerges, unkToken, fuseUnk);
        added = new Dictionary<int, AddedToken>();
        addedByContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var a in addedTokens ?? [])
        {
            added[a.Id] = a;
            addedByContent[a.Content] = a;
        }
        PreTokenizers = preTokenizers ?? [new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)];
        Normalizers = normalizers ?? [];
        rawAdded = new AddedTokenMatcher(addedByContent.Values.Where(a => !a.Normalized).Select(a => (a.Content, a)));
        normalizedAdded = new AddedTokenMatcher(addedByContent.Values.Where(a => a.Normalized).Select(a => (Normalize(a.Content), a)));
        PostProcessor = postProcessor;
        var maxId = -1;
        foreach (var id in model.Vocab.Values) maxId = Math.Max(maxId, id);
        foreach (var id in added.Keys) maxId = Math.Max(maxId, id);
        if (maxId >= this.limits.MaxVocabularySize) throw new ArgumentException($"id {maxId} is not below the bound of {this.limits.MaxVocabularySize} ids");
        VocabSize = maxId + 1;
        idToToken = new string?[VocabSize];
        foreach (var (tok, id) in model.Vocab) idToToken[id] = tok;
        foreach (var a in added.Values)
        {
            if (a.Special && a.Content is "<|endoftext|>" or "<|end_of_text|>" or "<|im_end|>" or "</s>" or "<eos>") EosId ??= a.Id;
            if (a.Special && a.Content is "<|begin_of_text|>" or "<s>" or "<bos>") BosId ??= a.Id;
            if (a.Special && a.Content is "<pad>" or "<|pad|>" or "[PAD]") PadId ??= a.Id;
        }
    }

    /// <summary>The pre-tokenizer steps, in order.</summary>
    public IReadOnlyList<PreTokenizer> PreTokenizers { get; }
    /// <summary>The Unicode normalisations applied before pre-tokenizing, in order (Qwen2: NFC).</summary>
    public IReadOnlyList<NormalizationForm> Normalizers { get; }
    /// <summary>What <see cref="Encode(string, bool)"/> with special tokens wraps around the ids, or null.</summary>
    public PostProcessor? PostProcessor { get; }
    /// <summary>Whether a pre-token found in the vocabulary is emitted whole (Llama-3).</summary>
    public bool IgnoreMerges => model.IgnoreMerges;
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
    public int? TokenToId(string token) => addedByContent.TryGetValue(token, out var a) ? a.Id : model.Vocab.TryGetValue(token, out var id) ? id : null;


    /// <summary>Replaces lone surrogates with U+FFFD, as UTF-8 encoding would (Rust strings cannot hold them).</summary>
    private static string ScalarValuesOnly(string text)
    {
        var i = 0;
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            break;
        }
        if (i == text.Length) return text;
        var sb = new StringBuilder(text.Length);
        for (var j = 0; j < text.Length; j++)
        {
            var c = text[j];
            if (char.IsHighSurrogate(c) && j + 1 < text.Length && char.IsLowSurrogate(text[j + 1])) { sb.Append(c).Append(text[++j]); continue; }
            sb.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
        }
        return sb.ToString();
    }

    private string Normalize(string text)
    {
        foreach (var form in Normalizers) text = text.Normalize(form);
        return text;
    }

    private List<string> PreTokenizeNormalized(string text)
    {
        var pieces = new List<string> { text };
        foreach (var step in PreTokenizers)
        {
            if (step is ByteLevelPreTokenizer { AddPrefixSpace: false, UseRegex: false }) continue;   // the identity
            var next = new List<string>(pieces.Count * 2);
            foreach (var p in pieces) step.Split(p, next);
            pieces = next;
        }
        return pieces;
    }

    /// <summary>Pre-tokens of text without added tokens: normalised, then cut by every pre-tokenizer step in turn.</summary>
    public IReadOnlyList<string> PreTokenize(string text) => PreTokenizeNormalized(Normalize(ScalarValuesOnly(text)));

    /// <summary>Token ids of <paramref name="text"/> without special tokens from the post-processor (added tokens written in the text are still found).</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (raw, rawToken) in rawAdded.Split(ScalarValuesOnly(text)))
        {
            if (rawToken is not null) { ids.Add(rawToken.Id); continue; }
            var normalized = Normalize(raw);
            var pieces = normalizedAdded.IsEmpty ? [(normalized, null)] : normalizedAdded.Split(normalized);
            foreach (var (piece, token) in pieces)
            {
                if (token is not null) { ids.Add(token.Id); continue; }
                foreach (var preToken in PreTokenizeNormalized(piece)) ids.AddRange(Bpe(preToken));
            }
        }
        return ids.ToArray();
    }

    /// <summary>
    /// Token ids of <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor adds its
    /// special tokens, as transformers' <c>encode</c> does by default (Llama-3: <c>&lt;|begin_of_text|&gt;</c> first).
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens) => addSpecialTokens ? EncodeWithTypes(text).Ids : Encode(text);

    /// <summary>
    /// The encoding of <paramref name="text"/> (type id 0) and optionally <paramref name="pair"/> (type id 1) after the
    /// post-processor, with type ids and the special-tokens mask; without a post-processor the two are concatenated.
    /// </summary>
    public TokenEncoding EncodeWithTypes(string text, string? pair = null, bool addSpecialTokens = true)
    {
        IReadOnlyList<TokenEncoding> encodings = pair is null
            ? [TokenEncoding.Of(Encode(text), 0)]
            : [TokenEncoding.Of(Encode(text), 0), TokenEncoding.Of(Encode(pair), 1)];
        return TokenEncoding.Concat(PostProcessor?.Process(encodings, addSpecialTokens) ?? encodings);
    }

    private int[] Bpe(string preToken)
    {
        if (preToken.Length > limits.MaxCachedPreTokenLength) return model.Tokenize(preToken);
        if (cache.TryGetValue(preToken, out var ids)) return ids;
        ids = model.Tokenize(preToken);
        if (cache.Count < limits.MaxCachedPreTokens) cache.TryAdd(preToken, ids);
        return ids;
    }

    /// <summary>
    /// The text of <paramref name="ids"/>: vocabulary tokens map back to their bytes (invalid UTF-8 becomes U+FFFD), added
    /// tokens give their content (special ones dropped when <paramref name="skipSpecialTokens"/>). One deliberate
    /// difference from <c>tokenizers</c> 0.22: its ByteLevel decoder also maps an added token's characters as if they were
    /// byte characters, so a non-ASCII added token such as "café" decodes to "caf\uFFFD" there and to "café" here.
    /// </summary>
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
            if (id < 0 || id >= idToToken.Length || idToToken[id] is not { } token) throw new ArgumentOutOfRangeException(nameof(ids), id, "id not in the vocabulary");
            foreach (var ch in token)
                if (ByteLevel.CharToByte.TryGetValue(ch, out var b)) bytes.Add(b);
                else bytes.AddRange(Encoding.UTF8.GetBytes(ch.ToString()));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
