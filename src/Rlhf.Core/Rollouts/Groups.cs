using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Group ids: which rows of a batch are the n samples of one prompt. Layout-agnostic — ids are arbitrary integers and rows of one
/// group need not be adjacent — with constructors for the two layouts the anchors use.
/// </summary>
public static class Groups
{
    /// <summary>Samples of a prompt are adjacent: <c>[0,0,…,1,1,…]</c> (TRL GRPO: <c>repeat_interleave</c>). → int[P·k].</summary>
    public static int[] Contiguous(int numPrompts, int samplesPerPrompt)
    {
        var ids = new int[numPrompts * samplesPerPrompt];
        for (var i = 0; i < ids.Length; i++) ids[i] = i / samplesPerPrompt;
        return ids;
    }

    /// <summary>Sample j of prompt i sits at row j·P + i: <c>[0,1,…,P−1,0,1,…]</c> (TRL RLOO / online DPO: <c>repeat(k, 1)</c>). → int[P·k].</summary>
    public static int[] Strided(int numPrompts, int samplesPerPrompt)
    {
        var ids = new int[numPrompts * samplesPerPrompt];
        for (var i = 0; i < ids.Length; i++) ids[i] = i % numPrompts;
        return ids;
    }

    /// <summary>The rows of each group, groups in order of first appearance, rows in batch order.</summary>
    public static int[][] Members(IReadOnlyList<int> groupIds)
    {
        var order = new List<int>();
        var rows = new Dictionary<int, List<int>>();
        for (var i = 0; i < groupIds.Count; i++)
        {
            if (!rows.TryGetValue(groupIds[i], out var l))
            {
                rows[groupIds[i]] = l = new List<int>();
                order.Add(groupIds[i]);
            }
            l.Add(i);
        }
        return order.Select(g => rows[g].ToArray()).ToArray();
    }

    /// <summary>Dense group index per row (0 … G−1 in order of first appearance) and G.</summary>
    public static (long[] Index, int Count) Dense(IReadOnlyList<int> groupIds)
    {
        var map = new Dictionary<int, long>();
        var idx = new long[groupIds.Count];
        for (var i = 0; i < idx.Length; i++)
        {
            if (!map.TryGetValue(groupIds[i], out var d)) map[groupIds[i]] = d = map.Count;
            idx[i] = d;
        }
        return (idx, map.Count);
    }

    /// <summary>
    /// Per-row sum and count of its group: <c>sum[i] = Σ_{j ∈ g(i)} x_j</c>, <c>count[i] = |g(i)|</c>. Differentiable in x.
    /// x [B], groupIds int[B] → ([B], [B]).
    /// </summary>
    public static (Tensor Sum, Tensor Count) Broadcast(Tensor x, IReadOnlyList<int> groupIds)
    {
        Guard.Vector(x, groupIds.Count, nameof(x));
        using var scope = Torch.NewScope();
        var (dense, g) = Dense(groupIds);
        var idx = Torch.From(dense).To(x.Device);
        var sums = Torch.Zeros([g], x.Dtype, x.Device).ScatterAdd(0, idx, x);
        var counts = Torch.Zeros([g], x.Dtype, x.Device).ScatterAdd(0, idx, Torch.OnesLike(x));
        return (sums.IndexSelect(0, idx).MoveToOuter(), counts.IndexSelect(0, idx).MoveToOuter());
    }

    /// <summary>Per-row group mean, <c>mean_{g(i)} x</c>. x [B] → [B].</summary>
    public static Tensor Mean(Tensor x, IReadOnlyList<int> groupIds)
    {
        using var scope = Torch.NewScope();
        var (s, c) = Broadcast(x, groupIds);
        return (s / c).MoveToOuter();
    }

    /// <summary>Per-row group standard deviation with Bessel's correction (<c>torch.std</c>; NaN for a group of one). x [B] → [B].</summary>
    public static Tensor Std(Tensor x, IReadOnlyList<int> groupIds)
    {
        using var scope = Torch.NewScope();
        var (s, c) = Broadcast(x, groupIds);
        var centered = x - s / c;
        var (ss, _) = Broadcast(centered.Square(), groupIds);
        return (ss / (c - 1)).Sqrt().MoveToOuter();
    }
}
