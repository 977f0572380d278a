namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// Ids of one or two encoded sequences with their type ids (<c>token_type_ids</c>) and which tokens the
/// post-processor added (<c>special_tokens_mask</c>), as Hugging Face <c>tokenizers</c>' <c>Encoding</c>.
/// </summary>
public sealed record TokenEncoding(int[] Ids, int[] TypeIds, bool[] SpecialTokensMask)
{
    /// <summary>The encoding of plain ids, all of one type.</summary>
    public static TokenEncoding Of(int[] ids, int typeId) => new(ids, Enumerable.Repeat(typeId, ids.Length).ToArray(), new bool[ids.Length]);

    /// <summary>Special tokens with their ids, all of one type.</summary>
    public static TokenEncoding Special(IReadOnlyList<int> ids, int typeId) =>
        new(ids.ToArray(), Enumerable.Repeat(typeId, ids.Count).ToArray(), Enumerable.Repeat(true, ids.Count).ToArray());

    /// <summary>This encoding with every type id set to <paramref name="typeId"/>.</summary>
    public TokenEncoding WithTypeId(int typeId) => this with { TypeIds = Enumerable.Repeat(typeId, Ids.Length).ToArray() };

    /// <summary>The encodings one after the other.</summary>
    public static TokenEncoding Concat(IEnumerable<TokenEncoding> parts)
    {
        var list = parts.ToList();
        return new(list.SelectMany(p => p.Ids).ToArray(), list.SelectMany(p => p.TypeIds).ToArray(), list.SelectMany(p => p.SpecialTokensMask).ToArray());
    }
}

/// <summary>
/// A <c>post_processor</c> of tokenizer.json: what <c>encode(…, add_special_tokens=True)</c> wraps around the encoded
/// sequence (or pair). Semantics of Hugging Face <c>tokenizers</c> 0.22 (<c>src/processors/*.rs</c>): the first
/// sequence arrives with type id 0, the second with type id 1; a processor may retype them even when special tokens
/// are not added.
/// </summary>
public abstract record PostProcessor
{
    /// <summary>Post-processes one (<c>[A]</c>) or two (<c>[A, B]</c>) encodings; the result is concatenated by the caller.</summary>
    public abstract IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens);
}

/// <summary>One element of a <see cref="TemplateProcessing"/> template: sequence A or B, or a named special token, with its type id.</summary>
public sealed record TemplatePiece(bool IsSequence, string Id, int TypeId);

/// <summary>
/// <c>TemplateProcessing</c>: the pieces of <c>single</c> (or <c>pair</c>) in order; a special-token piece expands to
/// the ids of its entry in <c>special_tokens</c> (added only with special tokens), a sequence piece is that
/// sequence retyped to the piece's type id (always). Llama-3: single = <c>&lt;|begin_of_text|&gt; $A</c>.
/// </summary>
public sealed record TemplateProcessing(IReadOnlyList<TemplatePiece> Single, IReadOnlyList<TemplatePiece> Pair, IReadOnlyDictionary<string, IReadOnlyList<int>> SpecialTokens) : PostProcessor
{
    /// <inheritdoc />
    public override IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens)
    {
        var template = encodings.Count == 2 ? Pair : Single;
        var result = new List<TokenEncoding>();
        foreach (var piece in template)
        {
            if (piece.IsSequence) result.Add(encodings[piece.Id == "A" ? 0 : 1].WithTypeId(piece.TypeId));
            else if (addSpecialTokens) result.Add(TokenEncoding.Special(SpecialTokens[piece.Id], piece.TypeId));
        }
        return result;
    }
}

/// <summary><c>BertProcessing</c>: <c>[CLS] A [SEP]</c> and <c>[CLS] A [SEP] B [SEP]</c>, the second part of type 1; nothing without special tokens.</summary>
public sealed record BertProcessing(int ClsId, int SepId) : PostProcessor
{
    /// <inheritdoc />
    public override IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return encodings;
        var result = new List<TokenEncoding> { TokenEncoding.Special([ClsId], 0), encodings[0], TokenEncoding.Special([SepId], 0) };
        if (encodings.Count == 2) result.AddRange([encodings[1], TokenEncoding.Special([SepId], 1)]);
        return result;
    }
}

/// <summary><c>RobertaProcessing</c>: <c>&lt;s&gt; A &lt;/s&gt;</c> and <c>&lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;</c>, every type id 0 (also without special tokens).</summary>
public sealed record RobertaProcessing(int ClsId, int SepId) : PostProcessor
{
    /// <inheritdoc />
    public override IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens)
    {
        var retyped = encodings.Select(e => e.WithTypeId(0)).ToList();
        if (!addSpecialTokens) return retyped;
        var result = new List<TokenEncoding> { TokenEncoding.Special([ClsId], 0), retyped[0], TokenEncoding.Special([SepId], 0) };
        if (retyped.Count == 2) result.AddRange([TokenEncoding.Special([SepId], 0), retyped[1], TokenEncoding.Special([SepId], 0)]);
        return result;
    }
}

/// <summary><c>ByteLevel</c> as a post-processor: it only trims offsets, so ids and type ids pass unchanged.</summary>
public sealed record ByteLevelProcessing : PostProcessor
{
    /// <inheritdoc />
    public override IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens) => encodings;
}

/// <summary><c>Sequence</c>: each processor in turn, on the previous one's output.</summary>
public sealed record SequenceProcessing(IReadOnlyList<PostProcessor> Processors) : PostProcessor
{
    /// <inheritdoc />
    public override IReadOnlyList<TokenEncoding> Process(IReadOnlyList<TokenEncoding> encodings, bool addSpecialTokens)
    {
        foreach (var p in Processors) encodings = p.Process(encodings, addSpecialTokens);
        return encodings;
    }
}
