using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Core.Tests;

using Torch = Rlhf.Torch.Torch;

/// <summary>Random problem sizes for properties: a seed for the tensor generator plus shapes.</summary>
public sealed record Case(int Seed, int B, int T)
{
    /// <summary>A torch generator seeded from this case.</summary>
    public Generator Gen() => new((ulong)Seed);

    public override string ToString() => $"Case(seed={Seed}, B={B}, T={T})";
}

/// <summary>A grouped case: G groups of K samples.</summary>
public sealed record GroupCase(int Seed, int G, int K, bool Strided)
{
    public int B => G * K;
    public int[] Ids => Strided ? Rollouts.Groups.Strided(G, K) : Rollouts.Groups.Contiguous(G, K);
    public Generator Gen() => new((ulong)Seed);
}

internal static class T
{
    public const int MaxTest = 100;

    /// <summary>Runs a property with a throwing config (never Config.Quick, which only prints).</summary>
    public static void Check<TA>(Arbitrary<TA> arb, Func<TA, bool> prop, int maxTest = MaxTest) =>
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithQuietOnSuccess(true), Prop.ForAll(arb, prop));

    /// <summary>Runs a property whose body asserts.</summary>
    public static void Check<TA>(Arbitrary<TA> arb, Action<TA> prop, int maxTest = MaxTest) =>
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithQuietOnSuccess(true), Prop.ForAll(arb, prop));

    public static Arbitrary<Case> Cases(int maxB = 6, int maxT = 8, int minB = 1, int minT = 1) => Arb.From(
        from seed in Gen.Choose(0, 1_000_000)
        from b in Gen.Choose(minB, maxB)
        from t in Gen.Choose(minT, maxT)
        select new Case(seed, b, t));

    public static Arbitrary<GroupCase> GroupCases(int maxG = 4, int maxK = 5) => Arb.From(
        from seed in Gen.Choose(0, 1_000_000)
        from g in Gen.Choose(1, maxG)
        from k in Gen.Choose(2, maxK)
        from strided in Gen.Elements(true, false)
        select new GroupCase(seed, g, k, strided));

    public static Tensor D(double[] v, params long[] shape) => Torch.From(v, shape);
    public static Tensor D2(double[,] v) => Torch.From(v);
    public static Tensor L(long[] v, params long[] shape) => Torch.From(v, shape);
    public static Tensor B(bool[,] v) => Torch.From(v);

    public static Tensor Randn(Generator g, params long[] shape) => Torch.Randn(shape, g, ScalarType.Float64);

    /// <summary>A random mask with at least one active entry per row (the first active position is random).</summary>
    public static Tensor RowMask(Generator g, long b, long t)
    {
        using var scope = Torch.NewScope();
        // A random response length in [1, T] per row: mask = arange(T) < len.
        var len = Torch.Randint(1, t + 1, [b, 1], g);
        return Torch.Arange(t).Unsqueeze(0).Lt(len).MoveToOuter();
    }

    /// <summary>A random mask of arbitrary pattern with at least <paramref name="min"/> active entries overall.</summary>
    public static Tensor AnyMask(Generator g, long b, long t, int min = 2)
    {
        using var scope = Torch.NewScope();
        var m = Torch.Rand([b, t], g).Lt(0.7);
        var flat = m.Flatten().Contiguous();
        var span = flat.Data<bool>();
        for (var i = 0; i < Math.Min(min, span.Length); i++) span[i] = true;
        return flat.View(b, t).MoveToOuter();
    }

    public static double[] A(Tensor t) => t.Detach().To(ScalarType.Float64).Contiguous().ToArray<double>();
    public static long[] AL(Tensor t) => t.Detach().To(ScalarType.Int64).Contiguous().ToArray<long>();
    public static bool[] AB(Tensor t) => t.Detach().To(ScalarType.Bool).Contiguous().ToArray<bool>();
    public static double[,] A2(Tensor t)
    {
        var s = t.Shape;
        var a = A(t);
        var r = new double[s[0], s[1]];
        for (var i = 0; i < s[0]; i++) for (var j = 0; j < s[1]; j++) r[i, j] = a[i * s[1] + j];
        return r;
    }
    public static bool[,] AB2(Tensor t)
    {
        var s = t.Shape;
        var a = AB(t);
        var r = new bool[s[0], s[1]];
        for (var i = 0; i < s[0]; i++) for (var j = 0; j < s[1]; j++) r[i, j] = a[i * s[1] + j];
        return r;
    }

    public static void Close(double expected, double actual, double tol = 1e-9, string? what = null)
    {
        var ok = Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)) || (double.IsNaN(expected) && double.IsNaN(actual));
        Assert.True(ok, $"{what ?? "value"}: expected {expected:R}, got {actual:R} (tol {tol})");
    }

    public static void Close(double[] expected, double[] actual, double tol = 1e-9, string? what = null)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Close(expected[i], actual[i], tol, $"{what ?? "element"}[{i}]");
    }

    public static void Close(double[,] expected, Tensor actual, double tol = 1e-9, string? what = null)
    {
        var flat = new double[expected.Length];
        var k = 0;
        foreach (var v in expected) flat[k++] = v;
        Close(flat, A(actual), tol, what);
    }
}

/// <summary>Central finite-difference gradient checks in float64.</summary>
internal static class GradCheck
{
    /// <summary>
    /// Compares autograd's gradient of the scalar <paramref name="f"/> with respect to each input with
    /// <c>(f(x + h e_j) − f(x − h e_j)) / 2h</c>. Inputs must be float64 and small.
    /// </summary>
    public static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, double h = 1e-6, double tol = 1e-6)
    {
        using var scope = Torch.NewScope();
        var xs = inputs.Select(x =>
        {
            Assert.Equal(ScalarType.Float64, x.Dtype);
            return x.Detach().Clone().RequiresGrad_();
        }).ToArray();
        var y = f(xs);
        Assert.Equal(0, y.Dim);
        var grads = Autograd.Grad([y], xs, allowUnused: true);
        var anyNonZero = false;
        for (var i = 0; i < xs.Length; i++)
        {
            var analytic = grads[i] is { } g ? T.A(g) : new double[xs[i].NumEl];
            var numeric = new double[xs[i].NumEl];
            using (Torch.NoGrad())
            {
                for (var j = 0; j < numeric.Length; j++)
                {
                    double Eval(double delta)
                    {
                        using var s = Torch.NewScope();
                        var args = xs.Select(x => x.Detach().Clone().Contiguous()).ToArray();
                        args[i].Data<double>()[j] += delta;
                        return f(args).Item();
                    }
                    numeric[j] = (Eval(h) - Eval(-h)) / (2 * h);
                }
            }
            for (var j = 0; j < numeric.Length; j++)
            {
                if (analytic[j] != 0) anyNonZero = true;
                var ok = Math.Abs(analytic[j] - numeric[j]) <= tol * Math.Max(1, Math.Abs(numeric[j]));
                Assert.True(ok, $"input {i} element {j}: autograd {analytic[j]:R}, finite difference {numeric[j]:R}");
            }
        }
        Assert.True(anyNonZero, "every gradient is zero: the check would pass for a constant function");
    }
}
