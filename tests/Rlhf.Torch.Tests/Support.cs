// Shared helpers for the binding's tests: tolerant comparisons, float64 views, live-handle baselines.
using Rlhf.Torch;

// Live-tensor and live-byte counters are process-wide; tests that assert them must not overlap.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Rlhf.Torch.Tests;

internal static class Near
{
    /// <summary>Asserts |e − a| ≤ atol + rtol·|e| elementwise, naming the first index that differs.</summary>
    public static void Equal(double[] expected, double[] actual, double atol = 1e-6, double rtol = 0)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var e = expected[i];
            var a = actual[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (double.IsInfinity(e) && e == a) continue;
            Assert.True(Math.Abs(e - a) <= atol + rtol * Math.Abs(e),
                $"element {i}: expected {e:R}, actual {a:R} (atol {atol}, rtol {rtol})\nexpected [{string.Join(", ", expected)}]\nactual   [{string.Join(", ", actual)}]");
        }
    }

    /// <summary>Compares a tensor of any floating or integer dtype with expected values, through float64.</summary>
    public static void Equal(double[] expected, Tensor actual, double atol = 1e-6, double rtol = 0) =>
        Equal(expected, Values(actual), atol, rtol);

    /// <summary>The elements of a tensor as float64 (row-major), whatever its dtype.</summary>
    public static double[] Values(Tensor t)
    {
        using var d = t.Detach().To(ScalarType.Float64);
        return d.ToArray<double>();
    }

    /// <summary>A scalar as a double, with tolerance.</summary>
    public static void Equal(double expected, double actual, double atol = 1e-6) =>
        Assert.True(Math.Abs(expected - actual) <= atol, $"expected {expected:R}, actual {actual:R} (atol {atol})");
}

internal static class Live
{
    /// <summary>
    /// Runs pending finalizers (leaked handles of earlier code) and returns the live-tensor count:
    /// a baseline that later, unflushed reads can be compared with exactly.
    /// </summary>
    public static long Baseline()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Torch.LiveTensors;
    }
}

/// <summary>Float64 tensors from literals, to keep hand-written cases short.</summary>
internal static class T
{
    public static Tensor D(params double[] v) => Torch.From(v);
    public static Tensor D(double[] v, params long[] shape) => Torch.From(v, shape);
    public static Tensor F(params float[] v) => Torch.From(v);
    public static Tensor F(float[] v, params long[] shape) => Torch.From(v, shape);
    public static Tensor L(params long[] v) => Torch.From(v);
    public static Tensor L(long[] v, params long[] shape) => Torch.From(v, shape);
    public static Tensor B(params bool[] v) => Torch.From(v);
}
