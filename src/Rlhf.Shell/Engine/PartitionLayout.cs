using System.Text.Json.Serialization;

namespace Rlhf.Shell.Engine;

/// <summary>One parameter's place in the flat space: name, shape, element count, offset.</summary>
public sealed record FlatParam(string Name, long[] Shape, long NumEl, long Offset);

/// <summary>
/// The contiguous run of one parameter that a rank owns: elements [ParamOffset, ParamOffset + Length)
/// of the parameter live at [OwnedOffset, OwnedOffset + Length) of the rank's owned buffer.
/// </summary>
public readonly record struct OwnedPiece(int Param, long ParamOffset, long OwnedOffset, long Length);

/// <summary>
/// Where every parameter element lives under ZeRO at a world size (DeepSpeed v0.16, runtime/zero/stage_1_and_2.py and stage3.py):
/// stages 0–2 flatten all parameters into one buffer padded to a multiple of 2 × world size and cut it
/// into equal slices (stage 0: every rank owns everything); stage 3 pads each parameter to a multiple
/// of the world size and rank r keeps chunk r (<c>ceil(numel / ws)</c> elements). Pure: a function of
/// the parameter list, the stage and the world size, saved with every checkpoint.
/// </summary>
public sealed record PartitionLayout(ZeroStage Stage, int WorldSize, IReadOnlyList<FlatParam> Params)
{
    /// <summary>Builds the layout of <paramref name="specs"/> (name, shape) in order.</summary>
    public static PartitionLayout Create(ZeroStage stage, int worldSize, IEnumerable<(string Name, long[] Shape)> specs)
    {
        if (worldSize < 1) throw new ArgumentException($"world size {worldSize}");
        var list = new List<FlatParam>();
        long off = 0;
        foreach (var (name, shape) in specs)
        {
            var n = shape.Aggregate(1L, (a, b) => a * b);
            list.Add(new FlatParam(name, shape, n, off));
            off += n;
        }
        return new PartitionLayout(stage, worldSize, list);
    }

    /// <summary>Ψ: the number of parameter elements.</summary>
    [JsonIgnore] public long Total => Params.Count == 0 ? 0 : Params[^1].Offset + Params[^1].NumEl;

    /// <summary>Stages 0–2: Ψ padded to a multiple of 2 × world size.</summary>
    [JsonIgnore] public long PaddedTotal => RoundUp(Total, 2L * WorldSize);

    /// <summary>Stages 1–2: elements per rank's slice of the flat buffer.</summary>
    [JsonIgnore] public long PartitionSize => PaddedTotal / WorldSize;

    /// <summary>Stage 3: chunk length of parameter <paramref name="j"/> (<c>ceil(numel / ws)</c>).</summary>
    public long Chunk(int j) => (Params[j].NumEl + WorldSize - 1) / WorldSize;

    /// <summary>Stage 3: offset of parameter <paramref name="j"/>'s chunk in a rank's shard buffer.</summary>
    public long ShardOffset(int j)
    {
        long s = 0;
        for (var i = 0; i < j; i++) s += Chunk(i);
        return s;
    }

    /// <summary>Elements a rank owns (its optimizer state length): Ψ_pad (stage 0), Ψ_pad / ws (1–2), Σ chunks (3).</summary>
    [JsonIgnore]
    public long OwnedLength => Stage switch
    {
        ZeroStage.Disabled => PaddedTotal,
        ZeroStage.Parameters => Enumerable.Range(0, Params.Count).Sum(Chunk),
        _ => PartitionSize,
    };

    /// <summary>Stages 0–2: where a rank's owned slice starts in the flat buffer.</summary>
    public long OwnedStart(int rank) => Stage == ZeroStage.Disabled ? 0 : rank * PartitionSize;

    /// <summary>The parameter runs <paramref name="rank"/> owns, in owned-buffer order (padding excluded).</summary>
    public IEnumerable<OwnedPiece> Pieces(int rank)
    {
        if (Stage == ZeroStage.Parameters)
        {
            long s = 0;
            for (var j = 0; j < Params.Count; j++)
            {
                var c = Chunk(j);
                var start = rank * c;
                var len = Math.Max(0, Math.Min(c, Params[j].NumEl - start));
                if (len > 0) yield return new OwnedPiece(j, start, s, len);
                s += c;
            }
            yield break;
        }
        long a = OwnedStart(rank), b = a + OwnedLength;
        for (var j = 0; j < Params.Count; j++)
        {
            var p = Params[j];
            long lo = Math.Max(a, p.Offset), hi = Math.Min(b, p.Offset + p.NumEl);
            if (hi > lo) yield return new OwnedPiece(j, lo - p.Offset, lo - a, hi - lo);
        }
    }

    /// <summary>Rounds <paramref name="n"/> up to a multiple of <paramref name="m"/>.</summary>
    public static long RoundUp(long n, long m) => (n + m - 1) / m * m;
}
