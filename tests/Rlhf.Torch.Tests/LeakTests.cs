// Long-running loops inside scopes: live tensors and live bytes stay flat.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class LeakTests
{
    [Fact]
    public void Ten_thousand_training_steps_inside_scopes_leave_tensors_and_bytes_flat()
    {
        const int steps = 10_000;
        var baseline = Live.Baseline();
        var bytesAtStart = Torch.LiveBytes;

        // A tiny 2-layer MLP regressing y = sin(x₀) + x₁·x₂ on 16 fixed points. Parameters and data live outside every scope.
        Tensor x, y, w1, b1, w2, b2;
        using (var g = new Generator(7))
        using (var setup = Torch.NewScope())
        {
            x = Torch.Randn([16, 3], g).DetachFromScope();
            y = (x.Select(1, 0).Sin() + x.Select(1, 1) * x.Select(1, 2)).Unsqueeze(1).DetachFromScope();
            w1 = (Torch.Randn([8, 3], g) * 0.5).RequiresGrad_().DetachFromScope();
            b1 = Torch.Zeros([8]).RequiresGrad_().DetachFromScope();
            w2 = (Torch.Randn([1, 8], g) * 0.5).RequiresGrad_().DetachFromScope();
            b2 = Torch.Zeros([1]).RequiresGrad_().DetachFromScope();
        }
        var parameters = new[] { w1, b1, w2, b2 };
        var opt = new AdamW(parameters, lr: 0.01, weightDecay: 0.0);
        var tensorsBeforeLoop = Torch.LiveTensors;
        Assert.Equal(baseline + 6 + 8, tensorsBeforeLoop); // data, parameters and the optimizer's moments

        double firstLoss = 0, lastLoss = 0;
        long bytesAt1000 = 0;
        for (var step = 1; step <= steps; step++)
        {
            using (Torch.NewScope())
            {
                var h = Functional.Linear(x, w1, b1).Tanh();     // [16, 8]
                var pred = Functional.Linear(h, w2, b2);        // [16, 1]
                var loss = Functional.MseLoss(pred, y);
                loss.Backward();
                opt.Step();
                opt.ZeroGrad();
                if (step == 1) firstLoss = loss.Item();
                if (step == steps) lastLoss = loss.Item();
            }
            if (step == 1_000)
            {
                Assert.Equal(tensorsBeforeLoop, Torch.LiveTensors);
                bytesAt1000 = Torch.LiveBytes;
            }
        }

        Assert.Equal(tensorsBeforeLoop, Torch.LiveTensors);
        var bytesAtEnd = Torch.LiveBytes;
        Assert.True(Math.Abs(bytesAtEnd - bytesAt1000) <= 4096,
            $"live bytes drifted from {bytesAt1000} at step 1,000 to {bytesAtEnd} at step {steps:N0}");
        Assert.True(lastLoss < firstLoss / 4, $"the loop must really train: loss {firstLoss} → {lastLoss}");

        opt.Dispose();
        foreach (var t in new[] { x, y, w1, b1, w2, b2 }) t.Dispose();
        Assert.Equal(baseline, Torch.LiveTensors);
        Assert.True(Torch.LiveBytes - bytesAtStart <= 4096, $"bytes not returned: {bytesAtStart} → {Torch.LiveBytes}");
    }

    [Fact]
    public void Scratch_work_in_scopes_does_not_raise_the_byte_count()
    {
        var baseline = Live.Baseline();
        long? after1 = null;
        for (var i = 0; i < 50; i++)
        {
            using (Torch.NewScope())
            {
                var a = Torch.Ones([32, 32]);
                var b = a.Matmul(a).Softmax(-1).Sum(0);
                Assert.Equal(32 * 4L, b.NumBytes);
            }
            after1 ??= Torch.LiveBytes;
        }
        Assert.Equal(after1, Torch.LiveBytes);
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Live_bytes_follow_tensor_storage()
    {
        var before = Torch.LiveBytes;
        using (Torch.NewScope())
        {
            var t = Torch.Zeros([1000], ScalarType.Float64);
            Assert.True(Torch.LiveBytes - before >= 8000);
            Torch.ResetPeakBytes();
            var u = Torch.Zeros([2000], ScalarType.Float64);
            Assert.True(Torch.PeakBytes >= Torch.LiveBytes);
            Assert.True(Torch.PeakBytes - before >= 24000);
            GC.KeepAlive((t, u));
        }
        Assert.Equal(before, Torch.LiveBytes);
    }
}
