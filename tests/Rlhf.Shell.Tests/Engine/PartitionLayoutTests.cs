using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Tests.Engine;

/// <summary>The ZeRO partition layout: every element owned exactly once, padding as DeepSpeed v0.16 pads (2 × world size for flat buffers, world size per parameter at stage 3).</summary>
public class PartitionLayoutTests
{
    private static readonly Gen<long[][]> Shapes =
        Gen.Choose(1, 6).SelectMany(n => Gen.ArrayOf(Gen.Choose(1, 3).SelectMany(d => Gen.ArrayOf(Gen.Choose(1, 9).Select(x => (long)x), d)), n));

    [Fact]
    public void Every_element_is_owned_exactly_once_at_every_stage_and_world_size() =>
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(150).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(Shapes), Arb.From(Gen.Choose(1, 5)), Arb.From(Gen.Choose(0, 3)), (shapes, ws, stage) =>
            {
                var layout = PartitionLayout.Create((ZeroStage)stage, ws, shapes.Select((s, i) => ($"p{i}", s)));
                var seen = layout.Params.Select(p => new int[p.NumEl]).ToArray();
                var ranks = stage == 0 ? 1 : ws; // stage 0: every rank owns everything; count one copy
                for (var r = 0; r < ranks; r++)
                    foreach (var piece in layout.Pieces(r))
                    {
                        Assert.InRange(piece.OwnedOffset + piece.Length, 1, layout.OwnedLength);
                        for (var k = 0; k < piece.Length; k++) seen[piece.Param][piece.ParamOffset + k]++;
                    }
                Assert.All(seen, s => Assert.All(s, c => Assert.Equal(1, c)));
                if (stage is 1 or 2) Assert.Equal(0, layout.PaddedTotal % (2 * ws));
                if (stage == 3)
                    for (var j = 0; j < layout.Params.Count; j++)
                        Assert.Equal((layout.Params[j].NumEl + ws - 1) / ws, layout.Chunk(j));
            }));

    [Fact]
    public void The_uneven_test_model_pads_117_elements_to_120_at_world_size_2()
    {
        var layout = PartitionLayout.Create(ZeroStage.OptimizerStates, 2,
            [("in.weight", [4L, 12]), ("in.bias", [4L]), ("in.gain", [1L]), ("mid.weight", [8L, 4]), ("mid.bias", [8L]), ("head.weight", [3L, 8])]);
        Assert.Equal(117, layout.Total);
        Assert.Equal(120, layout.PaddedTotal);
        Assert.Equal(60, layout.PartitionSize);
        // rank 1 starts inside mid.weight: elements 60.. are mid.weight[7..]
        var first = layout.Pieces(1).First();
        Assert.Equal((3, 7L, 0L), (first.Param, first.ParamOffset, first.OwnedOffset));
        var s3 = layout with { Stage = ZeroStage.Parameters };
        Assert.Equal(24 + 2 + 1 + 16 + 4 + 12, s3.OwnedLength);
    }
}
