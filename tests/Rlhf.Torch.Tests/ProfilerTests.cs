// The operator profiler: a recorded forward+backward is written as a Chrome trace whose summary names the ops that ran,
// with the time of nested ops taken out of their callers' self time.
namespace Rlhf.Torch.Tests;

public class ProfilerTests
{
    [Fact]
    public void A_recorded_step_is_written_and_summarised_by_op()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rlhf-profile-{Guid.NewGuid():N}.json");
        try
        {
            using var scope = Torch.NewScope();
            var a = Torch.Randn([64, 64]).RequiresGrad_();
            var b = Torch.Randn([64, 64]);
            using (Profiler.Record(path))
            {
                for (var i = 0; i < 3; i++) a.Matmul(b).Sum().Backward();
            }
            Assert.True(File.Exists(path));
            var ops = Profiler.Summarize(path);
            var mm = Assert.Single(ops, o => o.Name == "aten::mm");
            Assert.True(mm.Calls >= 3, $"aten::mm ran {mm.Calls} times");         // forward, and backward's grad of a
            var matmul = Assert.Single(ops, o => o.Name == "aten::matmul");
            Assert.Equal(3, matmul.Calls);
            Assert.True(matmul.SelfMs < matmul.TotalMs, "aten::matmul's self time must exclude the aten::mm it calls");
            Assert.All(ops, o => Assert.True(o.SelfMs >= 0 && o.SelfMs <= o.TotalMs + 1e-9, o.Name));
            Assert.Equal(ops.OrderByDescending(o => o.SelfMs).Select(o => o.Name), ops.Select(o => o.Name));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Recording_twice_on_one_thread_is_a_clear_error()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rlhf-profile-{Guid.NewGuid():N}.json");
        try
        {
            using (Profiler.Record(path))
            {
                var e = Assert.Throws<TorchException>(() => Profiler.Record(path + ".2"));
                Assert.Contains("already recording", e.Message);
            }
        }
        finally { File.Delete(path); }
    }
}
