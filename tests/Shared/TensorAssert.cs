// Linked into the binding's and the core's test projects: element-wise comparison of a kernel's result with a reference.
using Rlhf.Torch;
using Xunit;

internal static class TensorAssert
{
    /// <summary>Same shape, and every element within atol + rtol·|want| of the reference (compared in float64).</summary>
    public static void Close(Tensor got, Tensor want, string what, double atol, double rtol)
    {
        Assert.Equal(want.Shape, got.Shape);
        var g = got.To(ScalarType.Float64).ToArray<double>();
        var w = want.To(ScalarType.Float64).ToArray<double>();
        for (var i = 0; i < w.Length; i++)
            Assert.True(Math.Abs(g[i] - w[i]) <= atol + rtol * Math.Abs(w[i]), $"{what}[{i}]: {g[i]} vs reference {w[i]}");
    }
}
