// Elementwise math, operators, in-place ops, comparisons and logic, linear algebra — against hand values.
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class MathTests
{
    [Fact]
    public void Tensor_operators_broadcast()
    {
        using var scope = Torch.NewScope();
        var a = T.D(new double[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = T.D(10, 20, 30);
        Assert.Equal(new double[] { 11, 22, 33, 14, 25, 36 }, (a + b).ToArray<double>());
        Assert.Equal(new double[] { -9, -18, -27, -6, -15, -24 }, (a - b).ToArray<double>());
        Assert.Equal(new double[] { 10, 40, 90, 40, 100, 180 }, (a * b).ToArray<double>());
        Assert.Equal(new double[] { 0.1, 0.1, 0.1, 0.4, 0.25, 0.2 }, (a / b).ToArray<double>());
        Assert.Equal(new double[] { -1, -2, -3, -4, -5, -6 }, (-a).ToArray<double>());
        Assert.Equal(new double[] { 21, 42, 63, 24, 45, 66 }, a.Add(b, alpha: 2).ToArray<double>());
        Assert.Equal(new double[] { -29, -58, -87, -26, -55, -84 }, a.Sub(b, alpha: 3).ToArray<double>());
        Assert.Equal(new long[] { 2, 3 }, (a * T.D(new double[] { 1, 2 }, 2, 1)).Shape);
    }

    [Fact]
    public void Scalar_operators_on_both_sides()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2, 4);
        Assert.Equal(new double[] { 3, 4, 6 }, (a + 2).ToArray<double>());
        Assert.Equal(new double[] { 3, 4, 6 }, (2 + a).ToArray<double>());
        Assert.Equal(new double[] { -1, 0, 2 }, (a - 2).ToArray<double>());
        Assert.Equal(new double[] { 1, 0, -2 }, (2 - a).ToArray<double>());
        Assert.Equal(new double[] { 3, 6, 12 }, (a * 3).ToArray<double>());
        Assert.Equal(new double[] { 3, 6, 12 }, (3 * a).ToArray<double>());
        Assert.Equal(new double[] { 0.5, 1, 2 }, (a / 2).ToArray<double>());
        Assert.Equal(new double[] { 4, 2, 1 }, (4 / a).ToArray<double>());
        Assert.Equal(new double[] { 1, 2, 4 }, a.ToArray<double>()); // none of them touched a
    }

    [Fact]
    public void Scalar_divided_by_a_tensor_is_differentiable()
    {
        // Regression: s / a used to scale the reciprocal in place, which breaks ReciprocalBackward.
        using var scope = Torch.NewScope();
        var x = T.D(1, 2, 4).RequiresGrad_();
        (6 / x).Sum().Backward();
        Near.Equal(new[] { -6.0, -1.5, -0.375 }, x.Grad!); // d(6/x) = −6/x²
    }

    [Fact]
    public void Division_with_rounding_modes()
    {
        using var scope = Torch.NewScope();
        var a = T.D(7, -7, 7, -7);
        var b = T.D(2, 2, -2, -2);
        Assert.Equal(new double[] { 3, -4, -4, 3 }, a.Div(b, "floor").ToArray<double>());
        Assert.Equal(new double[] { 3, -3, -3, 3 }, a.Div(b, "trunc").ToArray<double>());
        Assert.Equal(new double[] { 3, -4, 3, -4 }, a.Div(2, "floor").ToArray<double>());
        Assert.Equal(new long[] { 0, 0, 1, 1, 2 }, Torch.Arange(5).FloorDivide(2).ToArray<long>());
        Assert.Throws<TorchException>(() => a.Div(b, "ceil"));
    }

    [Fact]
    public void Pow_remainder_minimum_maximum()
    {
        using var scope = Torch.NewScope();
        var a = T.D(2, 3, -4);
        Assert.Equal(new double[] { 4, 9, 16 }, a.Pow(2).ToArray<double>());
        Assert.Equal(new double[] { 8, 1, 0.0625 }, a.Pow(T.D(3, 0, -2)).ToArray<double>());
        Near.Equal(new[] { Math.Sqrt(2), Math.Sqrt(3) }, T.D(2, 3).Pow(0.5));
        // python semantics: the result takes the divisor's sign
        Assert.Equal(new double[] { 2, 0, 2 }, a.Remainder(3).ToArray<double>());
        Assert.Equal(new double[] { -1, 0, -1 }, a.Remainder(-3).ToArray<double>());
        Assert.Equal(new double[] { 0, 1, -1 }, a.Remainder(T.D(2, 2, -3)).ToArray<double>());
        Assert.Equal(new double[] { 1, 3, -4 }, a.Minimum(T.D(1, 5, 0)).ToArray<double>());
        Assert.Equal(new double[] { 2, 5, 0 }, a.Maximum(T.D(1, 5, 0)).ToArray<double>());
    }

    [Fact]
    public void Clamp_with_scalar_and_tensor_bounds()
    {
        using var scope = Torch.NewScope();
        var x = T.D(-2, -0.5, 0.5, 2);
        Assert.Equal(new double[] { -1, -0.5, 0.5, 1 }, x.Clamp(-1, 1).ToArray<double>());
        Assert.Equal(new double[] { 0, 0, 0.5, 2 }, x.Clamp(min: 0).ToArray<double>());
        Assert.Equal(new double[] { -2, -0.5, 0, 0 }, x.Clamp(max: 0).ToArray<double>());
        Assert.Equal(new double[] { -1, -0.5, 0.5, 1.5 }, x.Clamp(T.D(-1, -1, 0, 0), T.D(1, 1, 1, 1.5)).ToArray<double>());
        Assert.Equal(new double[] { -2, -0.5, 0.25, 0.25 }, x.Clamp(null, T.D(0.25)).ToArray<double>());
        x.Clamp_(-0.25, 0.25);
        Assert.Equal(new double[] { -0.25, -0.25, 0.25, 0.25 }, x.ToArray<double>());
    }

    [Fact]
    public void Unary_functions_match_hand_values()
    {
        using var scope = Torch.NewScope();
        double[] xs = [-1.5, -0.25, 0.5, 2];
        var x = Torch.From(xs);
        static double Sig(double v) => 1 / (1 + Math.Exp(-v));
        static double Erf(double v) // Abramowitz–Stegun 7.1.26 is too coarse; use a series, fine for |v| ≤ 3
        {
            double sum = 0, term = v;
            for (var n = 0; n < 60; n++)
            {
                sum += term / (2 * n + 1);
                term *= -v * v / (n + 1);
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        void Check(Func<double, double> f, Tensor actual) => Near.Equal(xs.Select(f).ToArray(), actual, 1e-12, 1e-12);

        Check(v => -v, x.Neg());
        Check(Math.Exp, x.Exp());
        Check(v => Math.Exp(v) - 1, x.Expm1());
        Check(Math.Abs, x.Abs());
        Check(v => Math.Sign(v), x.Sign());
        Check(v => v * v, x.Square());
        Check(v => 1 / v, x.Reciprocal());
        Check(Math.Sin, x.Sin());
        Check(Math.Cos, x.Cos());
        Check(Math.Tanh, x.Tanh());
        Check(Erf, x.Erf());
        Check(Sig, x.Sigmoid());
        Check(v => Math.Log(Sig(v)), x.LogSigmoid());
        Check(v => Math.Max(v, 0), x.Relu());
        Check(v => v * Sig(v), x.Silu());
        Check(v => 0.5 * v * (1 + Erf(v / Math.Sqrt(2))), x.Gelu());
        Check(v => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))), x.Gelu(tanhApproximation: true));
        Check(v => Math.Log(1 + Math.Exp(v)), x.Softplus());
        Check(v => Math.Log(1 + Math.Exp(2 * v)) / 2, x.Softplus(beta: 2));
        Check(v => v * 2 > 1 ? v : Math.Log(1 + Math.Exp(2 * v)) / 2, x.Softplus(beta: 2, threshold: 1)); // linear above threshold
        Check(Math.Floor, x.Floor());
        Check(Math.Ceiling, x.Ceil());

        double[] pos = [0.25, 1, 4];
        var p = Torch.From(pos);
        Near.Equal(pos.Select(v => Math.Log(v)).ToArray(), p.Log(), 1e-12);
        Near.Equal(pos.Select(v => Math.Log(1 + v)).ToArray(), p.Log1p(), 1e-12);
        Near.Equal(pos.Select(Math.Log2).ToArray(), p.Log2(), 1e-12);
        Near.Equal(pos.Select(Math.Sqrt).ToArray(), p.Sqrt(), 1e-12);
        Near.Equal(pos.Select(v => 1 / Math.Sqrt(v)).ToArray(), p.Rsqrt(), 1e-12);
        // round half to even
        Assert.Equal(new double[] { 0, 2, 2, -2, -0 }, T.D(0.5, 1.5, 2.5, -2.5, -0.4).Round().ToArray<double>());
    }

    [Fact]
    public void Small_arguments_keep_their_precision_in_expm1_and_log1p()
    {
        using var scope = Torch.NewScope();
        var tiny = T.D(1e-12);
        Near.Equal(1e-12, tiny.Expm1().Item(), 1e-24);
        Near.Equal(1e-12, tiny.Log1p().Item(), 1e-24);
        Near.Equal(-1e-12, (-tiny).Log1p().Item(), 1e-24);
        Near.Equal(-40.0, T.D(-40).LogSigmoid().Item(), 1e-12); // stable: log(σ(−40)) = −40 − log(1 + e⁻⁴⁰)
    }

    [Fact]
    public void Nan_and_infinity_tests()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, double.NaN, double.PositiveInfinity, double.NegativeInfinity);
        Assert.Equal(new[] { false, true, false, false }, x.IsNan().ToArray<bool>());
        Assert.Equal(new[] { false, false, true, true }, x.IsInf().ToArray<bool>());
        Assert.Equal(new[] { true, false, false, false }, x.IsFinite().ToArray<bool>());
    }

    [Fact]
    public void Comparisons_return_bool_tensors()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2, 3);
        var b = T.D(3, 2, 1);
        Assert.Equal(ScalarType.Bool, a.Eq(b).Dtype);
        Assert.Equal(new[] { false, true, false }, a.Eq(b).ToArray<bool>());
        Assert.Equal(new[] { true, false, true }, a.Ne(b).ToArray<bool>());
        Assert.Equal(new[] { true, false, false }, a.Lt(b).ToArray<bool>());
        Assert.Equal(new[] { true, true, false }, a.Le(b).ToArray<bool>());
        Assert.Equal(new[] { false, false, true }, a.Gt(b).ToArray<bool>());
        Assert.Equal(new[] { false, true, true }, a.Ge(b).ToArray<bool>());
        Assert.Equal(new[] { false, true, false }, a.Eq(2).ToArray<bool>());
        Assert.Equal(new[] { true, false, true }, a.Ne(2).ToArray<bool>());
        Assert.Equal(new[] { true, false, false }, a.Lt(2).ToArray<bool>());
        Assert.Equal(new[] { true, true, false }, a.Le(2).ToArray<bool>());
        Assert.Equal(new[] { false, false, true }, a.Gt(2).ToArray<bool>());
        Assert.Equal(new[] { false, true, true }, a.Ge(2).ToArray<bool>());
    }

    [Fact]
    public void Logic_equal_and_allclose()
    {
        using var scope = Torch.NewScope();
        var p = T.B(true, true, false, false);
        var q = T.B(true, false, true, false);
        Assert.Equal(new[] { true, false, false, false }, p.LogicalAnd(q).ToArray<bool>());
        Assert.Equal(new[] { true, true, true, false }, p.LogicalOr(q).ToArray<bool>());
        Assert.Equal(new[] { false, true, true, false }, p.LogicalXor(q).ToArray<bool>());
        Assert.Equal(new[] { false, false, true, true }, p.LogicalNot().ToArray<bool>());

        var a = T.D(1, 2, 3);
        Assert.True(a.Equal(T.D(1, 2, 3)));
        Assert.False(a.Equal(T.D(1, 2, 3.0000001)));
        Assert.False(a.Equal(T.D(1, 2)));
        Assert.True(a.AllClose(T.D(1, 2, 3.0000001)));
        Assert.False(a.AllClose(T.D(1, 2, 3.1)));
        Assert.True(a.AllClose(T.D(1, 2, 3.1), rtol: 0, atol: 0.2));
    }

    [Fact]
    public void In_place_arithmetic_returns_the_same_tensor()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2, 3);
        Assert.Same(x, x.Add_(T.D(1, 1, 1), alpha: 2));
        Assert.Equal(new double[] { 3, 4, 5 }, x.ToArray<double>());
        x.Sub_(T.D(1, 1, 1), alpha: 0.5).Mul_(T.D(2, 2, 2)).Div_(T.D(5, 7, 9));
        Assert.Equal(new double[] { 1, 1, 1 }, x.ToArray<double>());
        x.Add_(1).Mul_(3).Div_(2).Pow_(2);
        Assert.Equal(new double[] { 9, 9, 9 }, x.ToArray<double>());
        x.Sqrt_().Neg_();
        Assert.Equal(new double[] { -3, -3, -3 }, x.ToArray<double>());
        x.Relu_();
        Assert.Equal(new double[] { 0, 0, 0 }, x.ToArray<double>());
        x.Exp_();
        Assert.Equal(new double[] { 1, 1, 1 }, x.ToArray<double>());
        x.Addcmul_(T.D(1, 2, 3), T.D(2, 2, 2), v: 0.5);
        Assert.Equal(new double[] { 2, 3, 4 }, x.ToArray<double>());
        x.Addcdiv_(T.D(2, 3, 4), T.D(2, 3, 4), v: -2);
        Assert.Equal(new double[] { 0, 1, 2 }, x.ToArray<double>());
        x.Lerp_(T.D(10, 11, 12), 0.1);
        Near.Equal(new double[] { 1, 2, 3 }, x, 1e-12);
        Assert.Equal(new double[] { 7, 7, 7 }, x.Fill_(7).ToArray<double>());
        Assert.Equal(new double[] { 0, 0, 0 }, x.Zero_().ToArray<double>());
        Assert.Throws<TorchException>(() => x.Add_(T.D(1, 2)));
    }

    [Fact]
    public void Copy_broadcasts_and_converts_set_data_replaces()
    {
        using var scope = Torch.NewScope();
        var dst = Torch.Zeros([2, 3], ScalarType.Float32);
        dst.Copy_(T.D(1.5, 2.5, 3.5));
        Assert.Equal(new float[] { 1.5f, 2.5f, 3.5f, 1.5f, 2.5f, 3.5f }, dst.ToArray<float>());
        var p = Torch.Zeros([2], ScalarType.Float64).RequiresGrad_();
        p.SetData(T.D(4, 5, 6));
        Assert.Equal(new long[] { 3 }, p.Shape);
        Assert.Equal(new double[] { 4, 5, 6 }, p.ToArray<double>());
        Assert.True(p.RequiresGrad && p.IsLeaf);
    }

    [Fact]
    public void Clone_owns_its_storage()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2);
        var c = a.Clone();
        c.Fill_(0);
        Assert.Equal(new double[] { 1, 2 }, a.ToArray<double>());
    }

    [Fact]
    public void Matmul_mm_bmm_outer()
    {
        using var scope = Torch.NewScope();
        var a = T.D(new double[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = T.D(new double[] { 1, 0, 0, 1, 1, 1 }, 3, 2);
        var ab = new double[] { 4, 5, 10, 11 };
        Assert.Equal(ab, a.Mm(b).ToArray<double>());
        Assert.Equal(ab, a.Matmul(b).ToArray<double>());
        Assert.Equal(new double[] { 14, 32 }, a.Matmul(T.D(1, 2, 3)).ToArray<double>()); // matrix × vector
        Assert.Equal(14.0, T.D(1, 2, 3).Matmul(T.D(1, 2, 3)).Item()); // dot
        var batch = Torch.Stack([a, a * 2]);
        var bb = batch.Bmm(Torch.Stack([b, b]));
        Assert.Equal(new long[] { 2, 2, 2 }, bb.Shape);
        Assert.Equal(new double[] { 4, 5, 10, 11, 8, 10, 20, 22 }, bb.ToArray<double>());
        Assert.Equal(bb.ToArray<double>(), batch.Matmul(b).ToArray<double>()); // broadcast over the batch
        Assert.Equal(new double[] { 3, 4, 6, 8 }, T.D(1, 2).Outer(T.D(3, 4)).ToArray<double>());
        var e = Assert.Throws<TorchException>(() => a.Mm(a));
        Assert.Contains("2x3", e.Message);
    }

    [Fact]
    public void Float32_matmul_agrees_with_a_plain_loop()
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(9);
        var a = Torch.Randn([7, 5], g);
        var b = Torch.Randn([5, 3], g);
        var av = a.ToArray<float>();
        var bv = b.ToArray<float>();
        var expected = new double[21];
        for (var i = 0; i < 7; i++)
            for (var j = 0; j < 3; j++)
                for (var k = 0; k < 5; k++)
                    expected[i * 3 + j] += (double)av[i * 5 + k] * bv[k * 3 + j];
        Near.Equal(expected, a.Matmul(b), 1e-5);
    }

    [Fact]
    public void Broadcasting_matches_an_outer_loop() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(-20, 20).ArrayOf()), Arb.From(Gen.Choose(-20, 20).ArrayOf()), (a, b) =>
        {
            using var scope = Torch.NewScope();
            var col = Torch.From(a.Select(v => (double)v).ToArray(), a.Length, 1);
            var row = Torch.From(b.Select(v => (double)v).ToArray(), 1, b.Length);
            var sum = col + row;
            var prod = col * row;
            Assert.Equal(new long[] { a.Length, b.Length }, sum.Shape);
            var es = new double[a.Length * b.Length];
            var ep = new double[a.Length * b.Length];
            for (var i = 0; i < a.Length; i++)
                for (var j = 0; j < b.Length; j++)
                {
                    es[i * b.Length + j] = a[i] + b[j];
                    ep[i * b.Length + j] = a[i] * b[j];
                }
            Assert.Equal(es, sum.ToArray<double>());
            Assert.Equal(ep, prod.ToArray<double>());
        }));
}
