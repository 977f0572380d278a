// Error discipline: every native failure is a TorchException with libtorch's text; nothing leaks, nothing sticks.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class ErrorTests
{
    [Fact]
    public void A_shape_mismatch_is_a_torch_exception_and_leaks_no_handle()
    {
        var baseline = Live.Baseline();
        using (Torch.NewScope())
        {
            var a = Torch.Ones([2, 3]);
            var b = Torch.Ones([4]);
            var e = Assert.Throws<TorchException>(() => a + b);
            Assert.Equal("The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1", e.Message);
            var m = Assert.Throws<TorchException>(() => a.Matmul(Torch.Ones([4, 5])));
            Assert.Contains("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)", m.Message);
            Assert.Equal(baseline + 3, Torch.LiveTensors); // a, b and the [4, 5]; no half-made results
            Assert.Equal(new float[] { 2, 2, 2, 2, 2, 2 }, (a + a).ToArray<float>()); // the process goes on
        }
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Theory]
    [InlineData(0, "debug c10::Error")]
    [InlineData(1, "debug std::exception")]
    [InlineData(2, "unknown native exception")]
    public void Every_kind_of_native_exception_becomes_a_torch_exception(int kind, string message)
    {
        var e = Assert.Throws<TorchException>(() => Torch.DebugThrow(kind));
        Assert.Equal(message, e.Message);
        // the stored message was taken and cleared: the next calls work, and the next error has its own text
        using var scope = Torch.NewScope();
        Assert.Equal(6.0, T.D(1, 2, 3).Sum().Item());
        var next = Assert.Throws<TorchException>(() => T.D(1, 2).View(3));
        Assert.DoesNotContain("debug", next.Message);
        Assert.Contains("shape '[3]' is invalid for input of size 2", next.Message);
    }

    [Fact]
    public void Errors_in_status_returning_calls_and_multi_result_calls()
    {
        var baseline = Live.Baseline();
        using (Torch.NewScope())
        {
            var x = T.D(1, 2, 3);
            Assert.Contains("cannot be converted to Scalar", Assert.Throws<TorchException>(() => x.Item()).Message);
            Assert.Throws<TorchException>(() => x.Max(3));
            Assert.Throws<TorchException>(() => x.TopK(4));
            Assert.Throws<TorchException>(() => x.Add_(T.D(1, 2)));
            Assert.Contains("did not match", Assert.Throws<TorchException>(() => x.AllClose(T.L(1, 2, 3))).Message);
            // list-returning calls: bad sizes are libtorch's errors, not managed arithmetic failures
            Assert.Throws<TorchException>(() => x.Split(0));
            Assert.Throws<TorchException>(() => x.Chunk(0));
            Assert.Throws<TorchException>(() => x.Chunk(-1));
            Assert.Throws<TorchException>(() => x.Unbind(1));
            Assert.Throws<TorchException>(() => x.Split(1, dim: 2));
            Assert.Equal(baseline + 3, Torch.LiveTensors); // x and the two operands made here; no half-made results
        }
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Errors_stay_on_their_own_thread()
    {
        Exception? other = null;
        var t = new Thread(() =>
        {
            try { Torch.DebugThrow(1); }
            catch (Exception e) { other = e; }
        });
        t.Start();
        t.Join();
        Assert.IsType<TorchException>(other);
        // nothing of the other thread's error is pending here
        using var scope = Torch.NewScope();
        Assert.Equal(3.0, T.D(1, 2).Sum().Item());
        Assert.Equal("debug c10::Error", Assert.Throws<TorchException>(() => Torch.DebugThrow(0)).Message);
    }

    [Fact]
    public void Managed_misuse_is_caught_before_native_code()
    {
        using var scope = Torch.NewScope();
        var d = T.D(1, 2);
        Assert.Throws<InvalidOperationException>(() => d.ToArray<float>());
        Assert.Throws<InvalidOperationException>(() => d.Item<double>());
        Assert.Throws<InvalidOperationException>(() => T.D(new double[] { 1, 2, 3, 4 }, 2, 2).T.Data<double>().Length);
        Assert.Throws<InvalidOperationException>(() => d.Data<float>().Length);
        var gone = T.D(1);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => gone + d);
        Assert.Throws<FormatException>(() => Device.Parse("tpu"));
    }

    [Fact]
    public void A_disposed_tensor_in_a_list_argument_is_refused_not_dereferenced()
    {
        // Regression: list arguments passed raw pointers, so a disposed tensor reached native code as freed memory.
        using var scope = Torch.NewScope();
        var a = T.D(1, 2).RequiresGrad_();
        var gone = T.D(3, 4);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Torch.Cat([a, gone]));
        Assert.Throws<ObjectDisposedException>(() => Torch.Stack([gone, a]));
        Assert.Throws<ObjectDisposedException>(() => a.Index(gone));
        Assert.Throws<ObjectDisposedException>(() => Optim.SumOfSquares([a, gone]));
        Assert.Throws<ObjectDisposedException>(() => Optim.ClipGradNorm_([gone], 1));
        Assert.Throws<ObjectDisposedException>(() => Optim.AdamWStep([a], [gone], [a], [a], 0.1, 0.9, 0.99, 1e-8, 0, 1));
        Assert.Throws<ObjectDisposedException>(() => Autograd.Grad([(a * 2).Sum()], [gone]));
        Assert.Equal(new double[] { 1, 2, 1, 2 }, Torch.Cat([a, a]).ToArray<double>());
    }

    [Fact]
    public void Many_errors_in_a_row_leak_nothing()
    {
        var baseline = Live.Baseline();
        var bytes = Torch.LiveBytes;
        using (Torch.NewScope())
        {
            var a = Torch.Ones([8, 8]);
            var b = Torch.Ones([7, 7]);
            for (var i = 0; i < 50; i++) // few: each c10::Error captures a backtrace (milliseconds)
                Assert.Throws<TorchException>(() => a.Matmul(b));
        }
        Assert.Equal(baseline, Torch.LiveTensors);
        Assert.Equal(bytes, Torch.LiveBytes);
    }
}
