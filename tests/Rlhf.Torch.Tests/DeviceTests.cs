// Devices: parsing and printing; CUDA requests on a CPU-only libtorch fail with a clear TorchException.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class DeviceTests
{
    [Theory]
    [InlineData("cpu", DeviceType.Cpu, -1, "cpu")]
    [InlineData(" CPU ", DeviceType.Cpu, -1, "cpu")]
    [InlineData("cuda", DeviceType.Cuda, 0, "cuda:0")]
    [InlineData("cuda:0", DeviceType.Cuda, 0, "cuda:0")]
    [InlineData("CUDA:3", DeviceType.Cuda, 3, "cuda:3")]
    public void Parse_reads_cpu_cuda_and_cuda_n(string text, DeviceType type, int index, string printed)
    {
        var d = Device.Parse(text);
        Assert.Equal(type, d.Type);
        Assert.Equal(index, d.Index);
        Assert.Equal(printed, d.ToString());
        Assert.Equal(d, Device.Parse(d.ToString()));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("")]
    public void Parse_rejects_other_text(string text)
    {
        var e = Assert.Throws<FormatException>(() => Device.Parse(text));
        Assert.Contains("cpu, cuda or cuda:N", e.Message);
    }

    [Fact]
    public void Devices_compare_by_value()
    {
        Assert.Equal(Device.Cuda(1), Device.Parse("cuda:1"));
        Assert.NotEqual(Device.Cuda(0), Device.Cuda(1));
        Assert.Equal(Device.Cpu, new Device(DeviceType.Cpu));
    }

    [Fact]
    public void Tensors_live_on_the_cpu_by_default()
    {
        using var scope = Torch.NewScope();
        var t = Torch.Ones([2]);
        Assert.Equal(Device.Cpu, t.Device);
        Assert.Equal(Device.Cpu, t.To(Device.Cpu).Device);
        Assert.Equal(Device.Cpu, t.Cpu().Device);
        Assert.Equal(new float[] { 1, 1 }, t.PinMemory().ToArray<float>());
        Assert.Contains("cpu", t.ToString());
    }

    [Fact]
    public void The_default_device_places_what_is_made_without_one()
    {
        var before = Torch.DefaultDevice;
        using var scope = Torch.NewScope();
        try
        {
            Torch.DefaultDevice = Device.Cpu;
            Assert.Equal(Device.Cpu, Torch.Zeros([2]).Device);
            Torch.DefaultDevice = Device.Cuda(0);
            Assert.Equal(Device.Cpu, Torch.Zeros([2], device: Device.Cpu).Device);   // an explicit device wins
            if (Torch.CudaIsAvailable)
            {
                Assert.Equal(Device.Cuda(0), Torch.Zeros([2]).Device);
                Assert.Equal(Device.Cuda(0), Torch.From(new float[] { 1, 2 }).Device);
                using var g = new Generator(1);
                Assert.Equal(Device.Cuda(0), Torch.Randn([2], g).Device);
            }
            else
            {
                foreach (var attempt in new Action[] { () => Torch.Zeros([2]), () => Torch.From(new float[] { 1, 2 }), () => new Generator(1) })
                    Assert.Contains("CUDA", Assert.Throws<TorchException>(attempt).Message);
            }
        }
        finally { Torch.SetDefaultDevice(null); }
        Assert.Equal(before, Torch.DefaultDevice);
    }

    [Fact]
    public void Setting_the_default_device_affects_the_calling_thread_only()
    {
        var before = Torch.DefaultDevice;
        try
        {
            Torch.DefaultDevice = Device.Cuda(3);
            Device seenElsewhere = Device.Cuda(3);
            var other = new Thread(() => seenElsewhere = Torch.DefaultDevice);
            other.Start();
            other.Join();
            Assert.Equal(before, seenElsewhere);
            Assert.Equal(Device.Cuda(3), Torch.DefaultDevice);
        }
        finally { Torch.SetDefaultDevice(null); }
    }

    [Fact]
    public void Asking_for_cuda_without_it_is_a_torch_exception_not_a_crash()
    {
        using var scope = Torch.NewScope();
        if (Torch.CudaIsAvailable)
        {
            // A CUDA libtorch with a device: the same calls must work.
            Assert.Equal(Device.Cuda(0), Torch.Zeros([2], device: Device.Cuda(0)).Device);
            return;
        }
        Assert.Equal(0, Torch.CudaDeviceCount);
        var t = Torch.Ones([2]);
        foreach (var attempt in new Action[]
        {
            () => Torch.Zeros([2], device: Device.Cuda(0)),
            () => Torch.Randn([2], device: Device.Cuda(0)),
            () => Torch.From(new float[] { 1, 2 }, device: Device.Cuda(0)),
            () => t.To(Device.Cuda(0)),
            () => t.Cuda(),
            () => new Generator(1, Device.Cuda(0)),
        })
        {
            var e = Assert.Throws<TorchException>(attempt);
            Assert.Contains("CUDA", e.Message);
            Assert.Contains("without CUDA", e.Message); // says why: this libtorch is CPU-only
        }
        Torch.CudaSynchronize(); // a no-op, not an error
        Assert.Equal(2.0, t.Sum().Item()); // and the process goes on
    }
}
