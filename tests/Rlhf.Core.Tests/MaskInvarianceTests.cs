using Rlhf.Core.Advantages;
using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

/// <summary>No masked function depends on the values at masked positions: junk there (huge, NaN) changes nothing.</summary>
public class MaskInvarianceTests
{
    [Fact]
    public void Masked_losses_ignore_junk_at_masked_positions() => T.Check(T.GroupCases(maxG: 3, maxK: 3), c =>
    {
        using var scope = Torch.NewScope();
        var g = c.Gen();
        const int len = 5;
        var old = T.Randn(g, c.B, len);
        var lp = old + T.Randn(g, c.B, len) * 0.3;
        var rf = old + T.Randn(g, c.B, len) * 0.3;
        var mask = T.RowMask(g, c.B, len);
        var seqAdv = T.Randn(g, c.B);
        Tensor J(Tensor x, double v) => Torch.Where(mask, x, v);
        var (jlp, jold, jrf) = (J(lp, 50.0), J(old, -50.0), J(rf, double.NaN));

        void Same(Func<Tensor, Tensor, Tensor, Tensor> f, string what)
        {
            var a = f(lp, old, rf);
            var b = f(jlp, jold, jrf);
            Assert.True(a.AllClose(b, 1e-12, 1e-12), what);
        }

        foreach (var agg in Enum.GetValues<LossAggregation>())
            Same((l, o, r) => Grpo.Loss(l, o, seqAdv, mask, r, 0.2, 0.2, 0.04, agg).Loss, $"grpo {agg}");
        Same((l, o, _) => Rloo.Loss(l, o, seqAdv, mask, 0.2, 0.2).Loss, "rloo");
        Same((l, _, r) => Rloo.RlhfReward(seqAdv, l, r, mask, 0.05), "rloo reward");
        Same((l, _, r) => Dpo.OnlineLoss(l, r, mask, Dpo.SelectPairs(seqAdv, c.Ids), 0.1, DpoLossType.Sigmoid).Loss, "online dpo");
        Same((l, _, _) => BestOfK.Loss(l, mask).Loss, "best-of-k");
        Same((l, o, _) => ImportanceSampling.Weights(l, o, mask, ImportanceSamplingLevel.Sequence, ImportanceSamplingMode.Truncate, 2.0, 0.0).Weights, "is weights");
        Same((l, _, r) => Kl.K3(l, r, mask), "k3");
        Same((l, _, r) => ReinforcePlusPlus.Advantages(Kl.K1(l, r, mask), seqAdv, mask, 0.1, 1.0, null, (-10, 10), true).Advantages, "reinforce++");
    }, maxTest: 40);
}
