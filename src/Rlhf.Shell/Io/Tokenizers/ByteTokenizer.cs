using System.Text;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// Bytes as tokens, for synthetic tasks: ids 0–255 are the UTF-8 bytes, 256 = &lt;pad&gt;, 257 = &lt;eos&gt;,
/// 258 = &lt;bos&gt;; the vocabulary may be declared larger (unused ids decode as nothing when skipping specials,
/// else as &lt;id:N&gt;).
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>The padding id.</summary>
    public const int Pad = 256;
    /// <summary>The end-of-sequence id.</summary>
    public const int Eos = 257;
    /// <summary>The beginning-of-sequence id.</summary>
    public const int Bos = 258;

    /// <summary>A byte tokenizer with <paramref name="vocabSize"/> ids (at least 259).</summary>
    public ByteTokenizer(int vocabSize = 259)
    {
        if (vocabSize < 259) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "a byte tokenizer needs at least 259 ids (256 bytes + pad, eos, bos)");
        VocabSize = vocabSize;
    }

    /// <inheritdoc />
    public int VocabSize { get; }
    /// <inheritdoc />
    public int? EosId => Eos;
    /// <inheritdoc />
    public int? PadId => Pad;
    /// <inheritdoc />
    public int? BosId => Bos;

    /// <inheritdoc />
    public int[] Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        void Flush() { sb.Append(Encoding.UTF8.GetString(bytes.ToArray())); bytes.Clear(); }
        foreach (var id in ids)
        {
            if (id is >= 0 and < 256) { bytes.Add((byte)id); continue; }
            if (id < 0 || id >= VocabSize) throw new ArgumentOutOfRangeException(nameof(ids), id, $"id outside the vocabulary of {VocabSize}");
            Flush();
            if (!skipSpecialTokens) sb.Append(id switch { Pad => "<pad>", Eos => "<eos>", Bos => "<bos>", _ => $"<id:{id}>" });
        }
        Flush();
        return sb.ToString();
    }
}
