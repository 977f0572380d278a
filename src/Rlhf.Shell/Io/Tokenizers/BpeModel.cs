using System.Text;

namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// The byte-level BPE model: a pre-token's UTF-8 bytes become the ids of their byte characters
/// (<see cref="ByteLevel"/>), then adjacent pairs merge — always the lowest-ranked pair, leftmost on ties — until no
/// merge applies. As <c>tokenizers</c>' <c>Word::merge_all</c> (<c>src/models/bpe/word.rs</c>) it keeps the symbols in a
/// linked list and candidate merges in a priority queue ordered by (rank, position), so a pre-token of n bytes costs
/// O(n log n), not the O(n²) of rescanning for the best pair (a hostile one-megabyte word stays fast).
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<long, (int Rank, int Id)> merges;
    private readonly int[] byteIds;

    /// <summary>
    /// A model over <paramref name="vocab"/> and <paramref name="merges"/> (rank = index). Throws
    /// <see cref="ArgumentException"/> naming the merge when one of its parts or its result is not in the vocabulary.
    /// </summary>
    public BpeModel(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, bool ignoreMerges, string? unkToken, bool fuseUnk)
    {
        Vocab = vocab as Dictionary<string, int> ?? new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        this.merges = new Dictionary<long, (int, int)>(merges.Count);
        for (var i = 0; i < merges.Count; i++)
        {
            var (l, r) = merges[i];
            if (!Vocab.TryGetValue(l, out var li)) throw new ArgumentException($"merge {i} (\"{l} {r}\"): '{l}' is not in the vocabulary");
            if (!Vocab.TryGetValue(r, out var ri)) throw new ArgumentException($"merge {i} (\"{l} {r}\"): '{r}' is not in the vocabulary");
            if (!Vocab.TryGetValue(l + r, out var id)) throw new ArgumentException($"merge {i} (\"{l} {r}\") produces '{l + r}', which is not in the vocabulary");
            this.merges[Key(li, ri)] = (i, id); // a repeated merge keeps its last rank, as tokenizers' HashMap collect does
        }
        byteIds = new int[256];
        for (var b = 0; b < 256; b++) byteIds[b] = Vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out var id) ? id : -1;
        IgnoreMerges = ignoreMerges;
        if (unkToken is not null)
            UnkId = Vocab.TryGetValue(unkToken, out var u) ? u : throw new ArgumentException($"the unknown token '{unkToken}' is not in the vocabulary");
        FuseUnk = fuseUnk;
    }

    /// <summary>Token → id.</summary>
    public Dictionary<string, int> Vocab { get; }
    /// <summary>Whether a pre-token found whole in the vocabulary is emitted without merging (Llama-3).</summary>
    public bool IgnoreMerges { get; }
    /// <summary>The id emitted for a byte character missing from the vocabulary; without one such bytes are dropped, as in <c>tokenizers</c>.</summary>
    public int? UnkId { get; }
    /// <summary>Whether consecutive unknowns become one.</summary>
    public bool FuseUnk { get; }
    /// <summary>Number of merges.</summary>
    public int MergeCount => merges.Count;

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>The ids of one pre-token.</summary>
    public int[] Tokenize(string preToken)
    {
        var bytes = Encoding.UTF8.GetBytes(preToken);
        if (IgnoreMerges && Vocab.TryGetValue(ByteLevel.Encode(bytes), out var whole)) return [whole];
        var ids = new List<int>(bytes.Length);
        var pendingUnk = false;
        foreach (var b in bytes)
        {
            var id = byteIds[b];
            if (id >= 0) { ids.Add(id); pendingUnk = false; continue; }
            if (UnkId is not { } unk) continue;
            if (!(FuseUnk && pendingUnk)) ids.Add(unk);
            pendingUnk = true;
        }
        return ids.Count < 2 ? ids.ToArray() : Merge(ids);
    }

    private int[] Merge(List<int> initial)
    {
        var n = initial.Count;
        var id = initial.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (var i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        void Consider(int pos)
        {
            var nx = next[pos];
            if (nx >= 0 && merges.TryGetValue(Key(id[pos], id[nx]), out var m)) queue.Enqueue((pos, m.Id), (m.Rank, pos));
        }
        for (var i = 0; i + 1 < n; i++) Consider(i);
        var count = n;
        while (queue.TryDequeue(out var top, out _))
        {
            var pos = top.Pos;
            if (!alive[pos]) continue;
            var right = next[pos];
            if (right < 0) continue;
            // Stale entry: the pair at pos changed since it was queued.
            if (!merges.TryGetValue(Key(id[pos], id[right]), out var m) || m.Id != top.NewId) continue;
            id[pos] = m.Id;
            alive[right] = false;
            next[pos] = next[right];
            if (next[pos] >= 0) prev[next[pos]] = pos;
            count--;
            if (prev[pos] >= 0) Consider(prev[pos]);
            Consider(pos);
        }
        var result = new int[count];
        for (int i = 0, k = 0; i >= 0; i = next[i]) result[k++] = id[i];
        return result;
    }
}
