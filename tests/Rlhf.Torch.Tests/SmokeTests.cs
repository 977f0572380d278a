using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class SmokeTests
{
    [Fact]
    public void Add_matmul_backward_work_end_to_end()
    {
        using var scope = Torch.NewScope();
        var a = Torch.From(new float[] { 1, 2, 3, 4 }, 2, 2);
        var b = Torch.Ones([2, 2]);
        Assert.Equal(new float[] { 2, 3, 4, 5 }, (a + b).ToArray<float>());
        Assert.Equal(new float[] { 3, 3, 7, 7 }, a.Matmul(b).ToArray<float>());
        var x = Torch.From(new double[] { 1, 2, 3 }).RequiresGrad_();
        (x * x).Sum().Backward();
        Assert.Equal(new double[] { 2, 4, 6 }, x.Grad!.ToArray<double>());
    }
}
