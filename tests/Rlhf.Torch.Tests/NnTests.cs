// torch.nn.functional ops: linear, embedding, layer norm, losses, one-hot — against hand values.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class NnTests
{
    [Fact]
    public void Linear_is_x_times_w_transposed_plus_b()
    {
        using var scope = Torch.NewScope();
        var x = T.D(new double[] { 1, 2, 3, 4, 5, 6 }, 2, 3);       // [N=2, in=3]
        var w = T.D(new double[] { 1, 0, -1, 0.5, 0.5, 0.5 }, 2, 3); // [out=2, in=3]
        var b = T.D(10, 20);
        Assert.Equal(new double[] { -2, 3, -2, 7.5 }, Functional.Linear(x, w).ToArray<double>());
        Assert.Equal(new double[] { 8, 23, 8, 27.5 }, Functional.Linear(x, w, b).ToArray<double>());
        var batched = Functional.Linear(x.Unsqueeze(0).Expand(4, 2, 3), w, b); // leading dims pass through
        Assert.Equal(new long[] { 4, 2, 2 }, batched.Shape);
        Assert.Throws<TorchException>(() => Functional.Linear(x, w.T));
    }

    [Fact]
    public void Embedding_picks_rows()
    {
        using var scope = Torch.NewScope();
        var weight = T.D(new double[] { 0, 0, 1, 1, 2, 2, 3, 3 }, 4, 2); // [V=4, D=2]
        var ids = T.L(new long[] { 3, 0, 1, 1 }, 2, 2);
        var e = Functional.Embedding(weight, ids);
        Assert.Equal(new long[] { 2, 2, 2 }, e.Shape);
        Assert.Equal(new double[] { 3, 3, 0, 0, 1, 1, 1, 1 }, e.ToArray<double>());
        Assert.Throws<TorchException>(() => Functional.Embedding(weight, T.L(4)));
    }

    [Fact]
    public void Layer_norm_normalises_the_trailing_dims()
    {
        using var scope = Torch.NewScope();
        var x = T.D(new double[] { 1, 2, 3, 4, 10, 10, 10, 10 }, 2, 4);
        const double eps = 1e-5;
        var s = Math.Sqrt(1.25 + eps); // mean 2.5, biased variance 1.25
        var y0 = new[] { -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s };
        Near.Equal(y0.Concat(new double[4]).ToArray(), Functional.LayerNorm(x, [4], null, null, eps), 1e-12);
        var w = T.D(1, 2, 3, 4);
        var b = T.D(0, 0, 0, 1);
        var expected = y0.Select((v, i) => v * (i + 1) + (i == 3 ? 1 : 0)).Concat(new double[] { 0, 0, 0, 1 }).ToArray();
        Near.Equal(expected, Functional.LayerNorm(x, [4], w, b, eps), 1e-12);
        // over both dims: one mean and variance for all 8 values
        var all = Functional.LayerNorm(x, [2, 4], null, null, eps);
        Near.Equal(0.0, all.Mean().Item(), 1e-12);
        Near.Equal(1.0, all.Var(correction: 0).Item(), 1e-4);
    }

    private static double Lse(params double[] v) => Math.Log(v.Sum(Math.Exp));

    [Fact]
    public void Cross_entropy_matches_log_sum_exp_minus_target_logit()
    {
        using var scope = Torch.NewScope();
        var logits = T.D(new double[] { 1, 2, 3, 1, 1, 1 }, 2, 3);
        var target = T.L(2, 0);
        var l0 = Lse(1, 2, 3) - 3;
        var l1 = Math.Log(3);
        Near.Equal(new[] { l0, l1 }, Functional.CrossEntropy(logits, target, reduction: Reduction.None), 1e-12);
        Near.Equal((l0 + l1) / 2, Functional.CrossEntropy(logits, target).Item(), 1e-12);
        Near.Equal(l0 + l1, Functional.CrossEntropy(logits, target, reduction: Reduction.Sum).Item(), 1e-12);
        // an ignored target drops out of the sum and of the mean's denominator
        Near.Equal(l0, Functional.CrossEntropy(logits, T.L(2, -100)).Item(), 1e-12);
        Near.Equal(l1, Functional.CrossEntropy(logits, T.L(7, 0), ignoreIndex: 7).Item(), 1e-12);
        Near.Equal(new[] { l0, 0 }, Functional.CrossEntropy(logits, T.L(2, -100), reduction: Reduction.None), 1e-12);
        Assert.Throws<TorchException>(() => Functional.CrossEntropy(logits, T.L(3, 0)));
    }

    [Fact]
    public void Cross_entropy_with_label_smoothing()
    {
        using var scope = Torch.NewScope();
        var logits = T.D(new double[] { 1, 2, 3 }, 1, 3);
        const double eps = 0.1;
        var logp = new[] { 1.0, 2, 3 }.Select(v => v - Lse(1, 2, 3)).ToArray();
        var expected = (1 - eps) * -logp[0] + eps / 3 * -logp.Sum(); // (1−ε)·nll + ε·mean over classes of −log p
        Near.Equal(expected, Functional.CrossEntropy(logits, T.L(0), labelSmoothing: eps).Item(), 1e-12);
    }

    [Fact]
    public void Nll_loss_picks_the_negated_target_entry()
    {
        using var scope = Torch.NewScope();
        var logp = T.D(new double[] { -0.1, -2, -3, -1, -0.5, -4 }, 2, 3);
        Near.Equal((3 + 0.5) / 2.0, Functional.NllLoss(logp, T.L(2, 1)).Item(), 1e-12);
        Near.Equal(new[] { 3, 0.5 }, Functional.NllLoss(logp, T.L(2, 1), reduction: Reduction.None), 1e-12);
        Near.Equal(0.1, Functional.NllLoss(logp, T.L(0, -100)).Item(), 1e-12);
        Near.Equal(3.5, Functional.NllLoss(logp, T.L(2, 1), reduction: Reduction.Sum).Item(), 1e-12);
        // cross-entropy = nll of log-softmax
        var logits = T.D(new double[] { 0.3, -1, 2, 0, 0, 1 }, 2, 3);
        Near.Equal(Functional.CrossEntropy(logits, T.L(1, 2)).Item(), Functional.NllLoss(logits.LogSoftmax(1), T.L(1, 2)).Item(), 1e-12);
    }

    [Fact]
    public void Mse_loss_reductions()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2, 3, 4);
        var b = T.D(0, 2, 5, 1);
        Assert.Equal(new double[] { 1, 0, 4, 9 }, Functional.MseLoss(a, b, Reduction.None).ToArray<double>());
        Assert.Equal(3.5, Functional.MseLoss(a, b).Item());
        Assert.Equal(14.0, Functional.MseLoss(a, b, Reduction.Sum).Item());
    }

    [Fact]
    public void One_hot_encodes_ids()
    {
        using var scope = Torch.NewScope();
        var oh = Functional.OneHot(T.L(2, 0, 1), 4);
        Assert.Equal(ScalarType.Int64, oh.Dtype);
        Assert.Equal(new long[] { 3, 4 }, oh.Shape);
        Assert.Equal(new long[] { 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0 }, oh.ToArray<long>());
        Assert.Throws<TorchException>(() => Functional.OneHot(T.L(4), 4));
    }
}
