namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>Text ↔ token ids.</summary>
public interface ITokenizer
{
    /// <summary>Token ids of <paramref name="text"/>, without adding BOS/EOS (callers add specials explicitly).</summary>
    int[] Encode(string text);

    /// <summary>
    /// Token ids of <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the tokenizer's own post-processing
    /// adds its special tokens (as transformers' <c>encode</c> does by default). A tokenizer without one returns <see cref="Encode(string)"/>.
    /// </summary>
    int[] Encode(string text, bool addSpecialTokens) => Encode(text);

    /// <summary>The text of <paramref name="ids"/>; special tokens are dropped when <paramref name="skipSpecialTokens"/>.</summary>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false);

    /// <summary>Number of ids (the embedding rows a model needs at least).</summary>
    int VocabSize { get; }

    /// <summary>End-of-sequence id, if any.</summary>
    int? EosId { get; }

    /// <summary>Padding id, if any.</summary>
    int? PadId { get; }

    /// <summary>Beginning-of-sequence id, if any.</summary>
    int? BosId { get; }
}
