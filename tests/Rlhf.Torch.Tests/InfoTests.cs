// Build information and threads.
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
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

    [Theory]
    [InlineData("3", "5", 8, 3)]
    [InlineData(null, "4,2", 8, 4)]                 // OMP_NUM_THREADS's nested list: its first entry
    [InlineData("0", "x", 8, 8)]                    // neither is a positive count: the cores
    [InlineData("", null, 0, 1)]
    public void The_default_count_is_RLHF_NUM_THREADS_then_OMP_NUM_THREADS_then_the_cores(string? rlhf, string? omp, int cores, int expected) =>
        Assert.Equal(expected, IntraOpThreads.Choose(rlhf, omp, cores));

    [Fact]
    public void Every_thread_starts_at_the_default_count_which_libgomp_gets_through_the_C_environment()
    {
        var env = Environment.GetEnvironmentVariable("RLHF_NUM_THREADS") ?? Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        var expected = int.TryParse(env, out var n) && n > 0 ? n : Environment.ProcessorCount;
        Assert.Equal(expected, Torch.DefaultNumThreads);
        // A thread that never set its count (the count is per thread): before the default was exported, such a thread ran
        // libgomp's own default, the CPUs of the affinity mask, which ignores a cgroup's quota.
        var onFresh = OnFreshThread(() => (Torch.NumThreads, Torch.ParallelInfo));
        Assert.Equal(expected, onFresh.Item1);
        Assert.Contains($"at::get_num_threads() : {expected}", onFresh.Item2);
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null)
            Assert.Equal(expected.ToString(System.Globalization.CultureInfo.InvariantCulture), Marshal.PtrToStringUTF8(GetEnv("OMP_NUM_THREADS")));
        Assert.True(Torch.NumInteropThreads >= 1);
    }

    [Fact]
    public void UseThreads_sets_the_calling_thread_only_and_restores_its_count()
    {
        using var sibling = new SiblingThread();              // a thread that already runs at its count
        var siblingBefore = sibling.Read();
        OnFreshThread(() =>
        {
            var before = Torch.NumThreads;
            var other = before == 1 ? 2 : 1;
            using (Torch.UseThreads(other))
            {
                Assert.Equal(other, Torch.NumThreads);
                Assert.Equal(siblingBefore, sibling.Read());  // not the sibling's
            }
            Assert.Equal(before, Torch.NumThreads);
            Assert.Throws<ArgumentOutOfRangeException>(() => Torch.UseThreads(0));
            return 0;
        });
    }

    /// <summary>A thread that reads its own intra-op count on request.</summary>
    private sealed class SiblingThread : IDisposable
    {
        private readonly BlockingCollection<TaskCompletionSource<int>?> requests = new();
        private readonly Thread thread;

        public SiblingThread()
        {
            thread = new Thread(() => { foreach (var r in requests.GetConsumingEnumerable()) r?.SetResult(Torch.NumThreads); });
            thread.Start();
        }

        public int Read()
        {
            var r = new TaskCompletionSource<int>();
            requests.Add(r);
            return r.Task.Result;
        }

        public void Dispose()
        {
            requests.CompleteAdding();
            thread.Join();
            requests.Dispose();
        }
    }

    private static T OnFreshThread<T>(Func<T> f)
    {
        T result = default!;
        Exception? error = null;
        var t = new Thread(() => { try { result = f(); } catch (Exception e) { error = e; } });
        t.Start();
        t.Join();
        if (error is not null) throw new Xunit.Sdk.XunitException($"on a fresh thread: {error}");
        return result;
    }

    [DllImport("libc.so.6", EntryPoint = "getenv")]
    private static extern IntPtr GetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

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
