// Build information and threads.
using System.Text.RegularExpressions;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class InfoTests
{
    [Fact]
    public void Version_is_a_dotted_version()
    {
        Assert.Matches(new Regex(@"^\d+\.\d+(\.\d+)?([a-z+].*)?$"), Torch.Version);
    }

    [Fact]
    public void Build_config_mentions_blas()
    {
        var config = Torch.BuildConfig;
        Assert.Contains("BLAS", config);
        Assert.StartsWith("PyTorch built with", config);
    }

    [Fact]
    public void Num_threads_defaults_to_the_processor_count_unless_set_by_the_environment()
    {
        var env = Environment.GetEnvironmentVariable("RLHF_NUM_THREADS") ?? Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        var expected = int.TryParse(env, out var n) && n > 0 ? n : Environment.ProcessorCount;
        Assert.Equal(expected, Torch.NumThreads);
        Assert.Contains($"at::get_num_threads() : {expected}", Torch.ParallelInfo);
        Assert.True(Torch.NumInteropThreads >= 1);
    }

    [Fact]
    public void Num_threads_can_be_set_and_read_back()
    {
        var before = Torch.NumThreads;
        try
        {
            Torch.NumThreads = 1;
            Assert.Equal(1, Torch.NumThreads);
            Torch.NumThreads = 3;
            Assert.Equal(3, Torch.NumThreads);
            Assert.Contains("at::get_num_threads() : 3", Torch.ParallelInfo);
            Assert.Throws<TorchException>(() => Torch.NumThreads = 0);
        }
        finally
        {
            Torch.NumThreads = before;
        }
        Assert.Equal(before, Torch.NumThreads);
    }
}
