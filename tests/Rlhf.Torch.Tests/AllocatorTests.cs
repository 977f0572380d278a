using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

using Torch = Rlhf.Torch.Torch;

public class AllocatorTests
{
    // oneDNN asserts that CPU DataPtrs have context == data; the counting allocator must preserve that.
    [Fact]
    public void Exact_gelu_runs_through_onednn_with_the_counting_allocator()
    {
        using var scope = Torch.NewScope();
        var x = Torch.From(new float[] { -1, 0, 1, 2 });
        var y = x.Gelu().ToArray<float>();
        double Exact(double v) => 0.5 * v * (1 + Erf(v / Math.Sqrt(2)));
        var xs = new[] { -1.0, 0, 1, 2 };
        for (var i = 0; i < 4; i++) Assert.Equal(Exact(xs[i]), y[i], 5);
    }

    [Fact]
    public void Live_bytes_grow_by_a_tensor_and_fall_back_when_it_is_freed()
    {
        var before = Torch.LiveBytes;
        var t = Torch.Zeros([1024, 256]); // 1 MiB of float32
        var during = Torch.LiveBytes;
        t.Dispose();
        var after = Torch.LiveBytes;
        Assert.True(during - before >= 1024 * 256 * 4, $"live bytes grew by {during - before}");
        Assert.Equal(before, after);
    }

    // Abramowitz–Stegun 7.1.26 is too coarse for 5 digits; use a series/continued-fraction free route:
    // erf via Math functions is not in .NET, so integrate exp(-t^2) with Simpson's rule.
    private static double Erf(double x)
    {
        var n = 2000;
        var h = x / n;
        var s = 1.0 + Math.Exp(-x * x);
        for (var i = 1; i < n; i++) s += (i % 2 == 1 ? 4 : 2) * Math.Exp(-(i * h) * (i * h));
        return 2 / Math.Sqrt(Math.PI) * s * h / 3;
    }
}
