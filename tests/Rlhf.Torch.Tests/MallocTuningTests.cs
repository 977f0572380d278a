// The process's malloc settings: made before libtorch loads unless the user chose, and in effect for tensor memory.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class MallocTuningTests
{
    [Theory]
    [InlineData(null, new string[0])]
    [InlineData("MALLOC_TRIM_THRESHOLD_", new[] { "MALLOC_TRIM_THRESHOLD_" })]
    [InlineData("GLIBC_TUNABLES", new[] { "GLIBC_TUNABLES" })]
    [InlineData("LD_PRELOAD", new[] { "LD_PRELOAD" })]
    [InlineData("MALLOC_ARENA_MAX", new string[0])]                               // not one of the settings Rlhf makes
    public void A_user_choice_of_any_threshold_or_allocator_leaves_malloc_alone(string? set, string[] expected)
    {
        string? Env(string name) => name == set ? "1" : null;
        Assert.Equal(expected, Allocator.ChosenByUser(Env));
    }

    [Fact]
    public void An_empty_variable_is_not_a_choice() => Assert.Empty(Allocator.ChosenByUser(_ => ""));

    [Fact]
    public void Tensor_memory_below_the_threshold_comes_from_the_heap_and_stays_mapped()
    {
        if (!OperatingSystem.IsLinux() || Allocator.MmappedBytes < 0) return;
        _ = Torch.Version;                                                        // loading the shim makes the settings
        var chosen = Allocator.ChosenByUser(Environment.GetEnvironmentVariable);
        Assert.Equal(chosen.Length == 0, Allocator.TunedByRlhf);                  // tuned exactly when the user chose nothing
        Assert.Contains(Allocator.TunedByRlhf ? "set by Rlhf" : chosen.Length > 0 ? "left to the environment" : "glibc defaults", Allocator.Settings);
        if (!Allocator.TunedByRlhf) return;
        Assert.Equal(2, Allocator.EnvironmentForPeers.Count);
        // 48 MiB: above glibc's largest adaptive mmap threshold (32 MiB), so with its defaults always a fresh mmap.
        var before = Allocator.MmappedBytes;
        using (var t = Torch.Zeros([12 << 20]))
        {
            Assert.Equal(48L << 20, t.NumEl * 4);
            Assert.True(Allocator.MmappedBytes - before < 8 << 20, $"a 48 MiB tensor was mmapped ({Allocator.MmappedBytes - before} bytes more in mmapped blocks)");
        }
    }
}
