namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>Text ↔ token ids.</summary>
public interface ITokenizer
{
    /// <summary>Token ids of <paramref name="text"/>, without adding BOS/EOS (callers add specials explicitly).</summary>
    int[] Encode(string text);

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
