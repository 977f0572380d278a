// Every differentiable op the models use: autograd against float64 central finite differences.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

/// <summary>Float64 gradient check: autograd's d/dx of a scalar function against central differences.</summary>
internal static class GradCheck
{
    /// <summary>Step of the central differences; the truncation error is O(h²), the rounding error O(ε/h).</summary>
    public const double H = 1e-6;

    /// <summary>
    /// Checks d f / d x for a scalar-valued <paramref name="f"/> at <paramref name="x"/> (float64), element by element:
    /// (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h against <c>Autograd.Grad</c>. Also insists the gradient is not all zero,
    /// so a case that never reaches x cannot pass.
    /// </summary>
    public static void Scalar(Func<Tensor, Tensor> f, Tensor x, double atol = 1e-6, double rtol = 1e-6)
    {
        using var scope = Torch.NewScope();
        Assert.Equal(ScalarType.Float64, x.Dtype);
        var shape = x.Shape;
        var x0 = x.Detach().Contiguous().ToArray<double>();

        var xa = Torch.From(x0, shape).RequiresGrad_();
        var y = f(xa);
        Assert.Equal(0, y.Dim);
        var analytic = Autograd.Grad([y], [xa])[0]!.ToArray<double>();

        var numeric = new double[x0.Length];
        using (Torch.NoGrad())
        {
            var xp = (double[])x0.Clone();
            for (var i = 0; i < x0.Length; i++)
            {
                using var inner = Torch.NewScope();
                xp[i] = x0[i] + H;
                var fp = f(Torch.From(xp, shape)).Item();
                xp[i] = x0[i] - H;
                var fm = f(Torch.From(xp, shape)).Item();
                xp[i] = x0[i];
                numeric[i] = (fp - fm) / (2 * H);
            }
        }
        Assert.True(numeric.Any(v => Math.Abs(v) > 1e-3), "the numeric gradient is all zero: the case does not test anything");
        Near.Equal(numeric, analytic, atol, rtol);
    }

    /// <summary>
    /// Checks a tensor-valued <paramref name="f"/> through the scalar Σ w ⊙ f(x) with fixed random weights w,
    /// so every output element's gradient counts (a plain sum would hide, say, softmax's: it sums to 1).
    /// </summary>
    public static void Check(Func<Tensor, Tensor> f, Tensor x, double atol = 1e-6, double rtol = 1e-6)
    {
        using var scope = Torch.NewScope();
        long[] outShape;
        using (Torch.NoGrad()) outShape = f(x.Detach()).Shape;
        using var g = new Generator(4242);
        var w = Torch.Randn(outShape, g, ScalarType.Float64);
        Scalar(v => (f(v) * w).Sum(), x, atol, rtol);
    }
}

public class GradCheckTests
{
    /// <summary>Seeded float64 inputs for one case.</summary>
    private sealed class In : IDisposable
    {
        private readonly Generator g = new(20240601);
        /// <summary>Standard normal.</summary>
        public Tensor N(params long[] shape) => Torch.Randn(shape, g, ScalarType.Float64);
        /// <summary>In [0.5, 2): safe for log, sqrt, division.</summary>
        public Tensor Pos(params long[] shape) => Torch.Rand(shape, g, ScalarType.Float64) * 1.5 + 0.5;
        /// <summary>|x| ≥ 0.2: away from the kinks of relu and abs.</summary>
        public Tensor AwayFromZero(params long[] shape)
        {
            var n = N(shape);
            return n.Sign() * (n.Abs() + 0.2);
        }
        /// <summary>Integers in [0, n).</summary>
        public Tensor Ids(long n, params long[] shape) => Torch.Randint(0, n, shape, g);
        public void Dispose() => g.Dispose();
    }

    private static readonly Dictionary<string, Action<In>> Cases = new()
    {
        // ---- arithmetic ----
        ["add"] = r => { var b = r.N(2, 3); GradCheck.Check(a => a + b, r.N(2, 3)); GradCheck.Check(x => b + x, r.N(3)); },
        ["add alpha"] = r => { var b = r.N(3); GradCheck.Check(x => b.Add(x, alpha: -2.5), r.N(3)); },
        ["sub"] = r => { var b = r.N(2, 3); GradCheck.Check(a => a - b, r.N(2, 3)); GradCheck.Check(x => b.Sub(x, alpha: 3), r.N(2, 3)); },
        ["mul"] = r => { var b = r.N(2, 3); GradCheck.Check(a => a * b, r.N(2, 3)); GradCheck.Check(x => b * x, r.N(2, 1)); },
        ["div"] = r => { var b = r.Pos(2, 3); GradCheck.Check(a => a / b, r.N(2, 3)); GradCheck.Check(x => b / x, r.Pos(2, 3)); },
        ["scalar ops"] = r => GradCheck.Check(x => (3 - x) * 2 + 1.5 / x - x / 4 + (2 + x) * (x - 1), r.Pos(4)),
        ["neg"] = r => GradCheck.Check(x => -x, r.N(3)),
        ["matmul"] = r =>
        {
            var b = r.N(4, 2);
            GradCheck.Check(a => a.Matmul(b), r.N(3, 4));
            var a0 = r.N(3, 4);
            GradCheck.Check(x => a0.Matmul(x), r.N(4, 2));
            var batch = r.N(2, 3, 4);
            GradCheck.Check(x => batch.Matmul(x), r.N(4)); // broadcast batch × vector
        },
        ["mm"] = r => { var b = r.N(3, 2); GradCheck.Check(a => a.Mm(b), r.N(2, 3)); },
        ["bmm"] = r =>
        {
            var b = r.N(2, 4, 3);
            GradCheck.Check(a => a.Bmm(b), r.N(2, 3, 4));
            var a0 = r.N(2, 3, 4);
            GradCheck.Check(x => a0.Bmm(x), r.N(2, 4, 3));
        },
        ["addmm baddbmm outer"] = r =>
        {
            var m1 = r.N(2, 3);
            var m2 = r.N(3, 2);
            GradCheck.Check(bias => Torch.Addmm(bias, m1, m2, 0.5, 2), r.N(2, 2));
            var bias2 = r.N(2);
            var bias3 = r.N(1, 2, 2);
            GradCheck.Check(x => Torch.Addmm(bias2, x, m2), r.N(2, 3));
            GradCheck.Check(x => Torch.Baddbmm(bias3, x, m2.Unsqueeze(0), 1, 0.5), r.N(1, 2, 3));
            var v = r.N(3);
            GradCheck.Check(x => x.Outer(v), r.N(2));
        },
        ["pow"] = r =>
        {
            GradCheck.Check(x => x.Pow(3), r.N(5));
            GradCheck.Check(x => x.Pow(0.5), r.Pos(5));
            GradCheck.Check(x => x.Pow(-1.5), r.Pos(5));
            var e = r.N(5);
            GradCheck.Check(x => x.Pow(e), r.Pos(5));
            var b = r.Pos(5);
            GradCheck.Check(x => b.Pow(x), r.N(5));
        },
        ["square reciprocal abs sign"] = r =>
        {
            GradCheck.Check(x => x.Square(), r.N(4));
            GradCheck.Check(x => x.Reciprocal(), r.Pos(4));
            GradCheck.Check(x => x.Abs() + x.Sign() * 0.5, r.AwayFromZero(6));
        },

        // ---- elementwise functions ----
        ["exp"] = r => GradCheck.Check(x => x.Exp(), r.N(2, 3)),
        ["expm1"] = r => GradCheck.Check(x => x.Expm1(), r.N(4)),
        ["log"] = r => GradCheck.Check(x => x.Log(), r.Pos(2, 3)),
        ["log1p"] = r => GradCheck.Check(x => x.Log1p(), r.Pos(2, 3) - 0.4),
        ["log2"] = r => GradCheck.Check(x => x.Log2(), r.Pos(4)),
        ["sqrt"] = r => GradCheck.Check(x => x.Sqrt(), r.Pos(2, 3)),
        ["rsqrt"] = r => GradCheck.Check(x => x.Rsqrt(), r.Pos(2, 3)),
        ["sin cos erf"] = r => GradCheck.Check(x => x.Sin() + x.Cos() * 2 + x.Erf() * 3, r.N(5)),
        ["tanh"] = r => GradCheck.Check(x => x.Tanh(), r.N(2, 3)),
        ["sigmoid"] = r => GradCheck.Check(x => x.Sigmoid(), r.N(2, 3)),
        ["logsigmoid"] = r => GradCheck.Check(x => x.LogSigmoid(), r.N(2, 3) * 3),
        ["relu"] = r => GradCheck.Check(x => x.Relu(), r.AwayFromZero(2, 4)),
        ["silu"] = r => GradCheck.Check(x => x.Silu(), r.N(2, 3)),
        ["gelu"] = r => GradCheck.Check(x => x.Gelu(), r.N(2, 3) * 2),
        ["gelu tanh"] = r => GradCheck.Check(x => x.Gelu(tanhApproximation: true), r.N(2, 3) * 2),
        ["softplus"] = r =>
        {
            GradCheck.Check(x => x.Softplus(), r.N(2, 3) * 2);
            GradCheck.Check(x => x.Softplus(beta: 2, threshold: 5), r.N(2, 3));
        },
        ["softmax"] = r =>
        {
            GradCheck.Check(x => x.Softmax(-1), r.N(2, 4));
            GradCheck.Check(x => x.Softmax(0), r.N(3, 2));
        },
        ["log_softmax"] = r =>
        {
            GradCheck.Check(x => x.LogSoftmax(1), r.N(2, 4));
            GradCheck.Check(x => x.LogSoftmax(0), r.N(3, 2) * 10);
        },
        ["logsumexp"] = r =>
        {
            GradCheck.Check(x => x.LogSumExp(1), r.N(3, 4));
            GradCheck.Check(x => x.LogSumExp([0, 2], keepDim: true), r.N(2, 2, 3));
        },

        // ---- nn ----
        ["layer_norm"] = r =>
        {
            var w = r.N(4);
            var b = r.N(4);
            var x0 = r.N(3, 4);
            GradCheck.Check(x => Functional.LayerNorm(x, [4], w, b), r.N(3, 4));
            GradCheck.Check(x => Functional.LayerNorm(x0, [4], x, b), r.N(4));
            GradCheck.Check(x => Functional.LayerNorm(x0, [4], w, x), r.N(4));
            GradCheck.Check(x => Functional.LayerNorm(x, [2, 3], null, null), r.N(2, 2, 3));
        },
        ["embedding"] = r =>
        {
            var ids = T.L(new long[] { 1, 3, 1, 0, 4, 1 }, 2, 3); // repeated ids accumulate
            GradCheck.Check(w => Functional.Embedding(w, ids), r.N(5, 2));
        },
        ["linear"] = r =>
        {
            var x0 = r.N(3, 4);
            var w0 = r.N(2, 4);
            var b0 = r.N(2);
            GradCheck.Check(x => Functional.Linear(x, w0, b0), r.N(3, 4));
            GradCheck.Check(w => Functional.Linear(x0, w, b0), r.N(2, 4));
            GradCheck.Check(b => Functional.Linear(x0, w0, b), r.N(2));
            GradCheck.Check(x => Functional.Linear(x, w0), r.N(2, 3, 4));
        },
        ["cross_entropy"] = r =>
        {
            var target = T.L(2, 0, 3, 1);
            GradCheck.Scalar(l => Functional.CrossEntropy(l, target), r.N(4, 5));
            GradCheck.Scalar(l => Functional.CrossEntropy(l, T.L(2, -100, 3, -100)), r.N(4, 5));
            GradCheck.Scalar(l => Functional.CrossEntropy(l, target, reduction: Reduction.Sum, labelSmoothing: 0.1), r.N(4, 5));
            GradCheck.Check(l => Functional.CrossEntropy(l, target, reduction: Reduction.None), r.N(4, 5));
        },
        ["nll_loss"] = r =>
        {
            var target = T.L(1, 0, 2);
            GradCheck.Scalar(lp => Functional.NllLoss(lp, target), r.N(3, 4));
            GradCheck.Check(lp => Functional.NllLoss(lp, T.L(1, -100, 2), reduction: Reduction.None), r.N(3, 4));
            GradCheck.Scalar(l => Functional.NllLoss(l.LogSoftmax(1), target, reduction: Reduction.Sum), r.N(3, 4));
        },
        ["mse_loss"] = r =>
        {
            var b = r.N(2, 3);
            GradCheck.Scalar(a => Functional.MseLoss(a, b), r.N(2, 3));
            GradCheck.Scalar(x => Functional.MseLoss(b, x, Reduction.Sum), r.N(2, 3));
            GradCheck.Check(x => Functional.MseLoss(x, b, Reduction.None), r.N(2, 3));
        },
        ["dropout with a fixed mask"] = r =>
            GradCheck.Check(x => { using var g = new Generator(5); return Functional.Dropout(x, 0.4, training: true, g); }, r.N(3, 4)),

        // ---- indexing ----
        ["gather"] = r =>
        {
            var idx = T.L(new long[] { 0, 2, 2, 1, 3, 0 }, 2, 3);
            GradCheck.Check(x => x.Gather(1, idx), r.N(2, 4));
        },
        ["index_select"] = r =>
        {
            GradCheck.Check(x => x.IndexSelect(0, T.L(2, 0, 2)), r.N(3, 2));
            GradCheck.Check(x => x.IndexSelect(1, T.L(1, 1)), r.N(3, 2));
        },
        ["index and index_put"] = r =>
        {
            GradCheck.Check(x => x.Index(T.L(0, 2, 0), T.L(1, 1, 0)), r.N(3, 2));
            var v = r.N(2);
            GradCheck.Check(x => x.IndexPut([T.L(0, 2)], v), r.N(3));
            var x0 = r.N(3);
            GradCheck.Check(vals => x0.IndexPut([T.L(0, 0)], vals, accumulate: true), r.N(2));
        },
        ["scatter and index_copy"] = r =>
        {
            var idx = T.L(new long[] { 1, 0, 2, 2 }, 2, 2);
            var self = r.N(2, 3);
            GradCheck.Check(src => self.ScatterAdd(1, idx, src), r.N(2, 2));
            var src0 = r.N(2, 2);
            GradCheck.Check(x => x.ScatterAdd(1, idx, src0), r.N(2, 3));
            GradCheck.Check(src => self.Scatter(1, T.L(new long[] { 1, 0, 2, 0 }, 2, 2), src), r.N(2, 2));
            GradCheck.Check(src => self.IndexCopy(1, T.L(2, 0), src), r.N(2, 2));
        },
        ["masked_fill"] = r =>
        {
            var mask = T.B(true, false, false, true, false, true).View(2, 3);
            GradCheck.Check(x => x.MaskedFill(mask, -1e4), r.N(2, 3));
        },
        ["where"] = r =>
        {
            var cond = T.B(true, false, true, false, false, true).View(2, 3);
            var b = r.N(2, 3);
            GradCheck.Check(a => Torch.Where(cond, a, b), r.N(2, 3));
            GradCheck.Check(x => Torch.Where(cond, b, x), r.N(2, 3));
            GradCheck.Check(a => Torch.Where(cond, a, 0.5), r.N(2, 3));
        },

        // ---- joins, views and shapes ----
        ["cat"] = r =>
        {
            var b = r.N(1, 3);
            GradCheck.Check(a => Torch.Cat([a, b, a], 0), r.N(2, 3));
            GradCheck.Check(x => Torch.Cat([b, x], 1), r.N(1, 2));
        },
        ["stack"] = r =>
        {
            var b = r.N(2, 3);
            GradCheck.Check(a => Torch.Stack([a, b]), r.N(2, 3));
            GradCheck.Check(a => Torch.Stack([b, a, a], 2), r.N(2, 3));
        },
        ["split chunk unbind"] = r =>
        {
            GradCheck.Check(x => { var p = x.Split(2, 1); return p[0] * 2 + p[1].Sum() - p[2].Sum(1, keepDim: true); }, r.N(2, 5));
            GradCheck.Check(x => { var c = x.Chunk(2, 0); return c[0] * c[1]; }, r.N(4, 2));
            GradCheck.Check(x => { var u = x.Unbind(1); return u[0] - u[1] * 3; }, r.N(3, 2));
        },
        ["transpose"] = r => GradCheck.Check(x => x.Transpose(0, 1) * T.D(1, 2), r.N(3, 2).Transpose(0, 1)),
        ["permute"] = r => GradCheck.Check(x => x.Permute(2, 0, 1).Contiguous().View(-1).Cumsum(0), r.N(2, 3, 2)),
        ["reshape view flatten squeeze"] = r =>
        {
            GradCheck.Check(x => x.Reshape(3, 2).Matmul(T.D(1, -1)), r.N(2, 3));
            GradCheck.Check(x => x.View(6).Cumsum(0), r.N(2, 3));
            GradCheck.Check(x => x.Flatten().Unsqueeze(0).Squeeze(0).Cumsum(0), r.N(2, 1, 3));
            GradCheck.Check(x => x.Squeeze(1).Cumsum(0), r.N(3, 1));
        },
        ["narrow"] = r => GradCheck.Check(x => x.Narrow(1, 1, 2), r.N(2, 4)),
        ["slice select"] = r =>
        {
            GradCheck.Check(x => x.Slice(1, -3, long.MaxValue, 2), r.N(2, 5));
            GradCheck.Check(x => x.Select(0, 1) * x.Select(0, -1), r.N(3, 2));
            GradCheck.Check(x => x[0] + x[1], r.N(2, 3));
        },
        ["expand repeat"] = r =>
        {
            var w = r.N(3, 4);
            GradCheck.Check(x => x.Expand(3, 4) * w, r.N(3, 1));
            GradCheck.Check(x => x.Repeat(2, 3), r.N(2, 1));
            GradCheck.Check(x => x.RepeatInterleave(2, 0), r.N(3));
        },
        ["flip roll"] = r => GradCheck.Check(x => x.Flip(1).Roll(1, 0).Cumsum(1), r.N(3, 3)),
        ["tril triu"] = r =>
        {
            GradCheck.Check(x => x.Tril(), r.N(3, 3));
            GradCheck.Check(x => x.Tril(-1) + x.Triu(1) * 2, r.N(3, 4));
        },

        // ---- reductions ----
        ["sum"] = r =>
        {
            GradCheck.Check(x => x.Sum(), r.N(2, 3));
            GradCheck.Check(x => x.Sum(0), r.N(2, 3));
            GradCheck.Check(x => x.Sum([0, 2], keepDim: true), r.N(2, 3, 2));
        },
        ["mean"] = r =>
        {
            GradCheck.Check(x => x.Mean(), r.N(2, 3));
            GradCheck.Check(x => x.Mean(1), r.N(2, 3));
            GradCheck.Check(x => x.Mean([0, 1], keepDim: true), r.N(2, 3, 2));
        },
        ["var"] = r =>
        {
            GradCheck.Check(x => x.Var(), r.N(2, 3));
            GradCheck.Check(x => x.Var([1], correction: 0), r.N(2, 3));
        },
        ["std"] = r =>
        {
            GradCheck.Check(x => x.Std(), r.N(2, 3));
            GradCheck.Check(x => x.Std([0], correction: 0, keepDim: true), r.N(3, 2));
        },
        ["norm"] = r =>
        {
            GradCheck.Check(x => x.Norm(), r.N(2, 3));
            GradCheck.Check(x => x.Norm(2, [1]), r.N(2, 3));
            GradCheck.Check(x => x.Norm(1), r.AwayFromZero(2, 3));
            GradCheck.Check(x => x.Norm(3, [0], keepDim: true), r.AwayFromZero(2, 3));
        },
        ["prod cumprod"] = r =>
        {
            GradCheck.Check(x => x.Prod(), r.Pos(4));
            GradCheck.Check(x => x.Cumprod(1), r.N(2, 3));
        },
        ["max min topk sort"] = r =>
        {
            GradCheck.Check(x => x.Max() - x.Min(), r.N(2, 3));
            GradCheck.Check(x => x.Max(1).Values, r.N(2, 3));
            GradCheck.Check(x => x.Min(0, keepDim: true).Values, r.N(2, 3));
            GradCheck.Check(x => x.TopK(2).Values, r.N(2, 4));
            GradCheck.Check(x => x.Sort(descending: true).Values, r.N(5));
        },
        ["clamp"] = r =>
        {
            // interior points follow x; clamped points are constant (gradient 0)
            var x0 = T.D(-2, -0.5, 0.1, 0.7, 2);
            GradCheck.Check(x => x.Clamp(-1, 1), x0);
            GradCheck.Check(x => x.Clamp(min: 0), x0);
            GradCheck.Check(x => x.Clamp(T.D(-1, -1, -1, -1, -1), T.D(0, 0, 0, 1, 1)), x0);
        },
        ["minimum maximum"] = r =>
        {
            var b = r.N(2, 3);
            GradCheck.Check(a => a.Minimum(b), r.N(2, 3));
            GradCheck.Check(a => b.Maximum(a), r.N(2, 3));
        },
        ["cumsum"] = r =>
        {
            GradCheck.Check(x => x.Cumsum(0), r.N(3, 2));
            GradCheck.Check(x => x.Cumsum(-1), r.N(3, 2));
        },

        // ---- a composite: one attention head with a causal mask, as the models use it ----
        ["attention"] = r =>
        {
            var k = r.N(1, 3, 4);
            var v = r.N(1, 3, 4);
            var causal = Torch.Ones([3, 3], ScalarType.Bool).Triu(1);
            GradCheck.Check(q =>
            {
                var att = q.Matmul(k.Transpose(1, 2)) / Math.Sqrt(4);  // [1, T, T]
                att = att.MaskedFill(causal, double.NegativeInfinity).Softmax(-1);
                return att.Matmul(v);                                   // [1, T, hs]
            }, r.N(1, 3, 4));
        },
    };

    public static TheoryData<string> Ops => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(Ops))]
    public void Autograd_matches_central_differences(string op)
    {
        using var scope = Torch.NewScope();
        using var inputs = new In();
        Cases[op](inputs);
    }

    [Fact]
    public void The_check_catches_a_wrong_gradient()
    {
        // A function whose autograd gradient is deliberately wrong: the value of x·c, the gradient of x·2c.
        using var scope = Torch.NewScope();
        var c = T.D(1, 2, 3);
        Tensor Wrong(Tensor x) => (x * c + (x * c).Detach() - (x * c * 2).Detach() + (x * c * 2) - (x * c)).Sum();
        // value: Σ x·c (the detached parts cancel the extra graph terms in value); gradient: 2c
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => GradCheck.Scalar(Wrong, T.D(0.5, -1, 2)));
        GradCheck.Scalar(x => (x * c).Sum(), T.D(0.5, -1, 2));
    }
}
