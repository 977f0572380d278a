using System.Diagnostics;
using System.Text.Json;
using Rlhf.Shell.Io;

namespace Rlhf.Engine.Tests;

/// <summary>
/// Saves a stage-3 checkpoint at world size 2 after 3 steps (and trains 3 more), consolidates it with
/// <c>rlhf checkpoint consolidate</c>, then kills a second job in the middle of saving step 4.
/// </summary>
public sealed class CheckpointFixture : IDisposable
{
    public string Dir { get; } = Results.TempDir();
    public string CkptDir => Path.Combine(Dir, "ckpt");
    public string HfDir => Path.Combine(Dir, "hf");
    public JsonElement Saved { get; }
    public string CrashOutput { get; }
    public string ConsolidateOutput { get; }

    public CheckpointFixture()
    {
        var saved = Path.Combine(Dir, "save.json");
        Cluster.RunOk(2, "checkpoint", ["mode=save", "stage=3", $"dir={CkptDir}", "pre=3", "post=3", $"out={saved}"], TimeSpan.FromSeconds(120));
        Saved = Results.Read(saved);

        using (var p = new Process { StartInfo = Cluster.Dotnet([Cluster.RlhfDll, "checkpoint", "consolidate", CkptDir, "--output", HfDir]) })
        {
            p.Start();
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromSeconds(60))) { p.Kill(true); throw new TimeoutException("consolidate hung"); }
            ConsolidateOutput = o.Result + e.Result;
            if (p.ExitCode != 0) throw new InvalidOperationException("consolidate failed: " + ConsolidateOutput);
        }

        var crash = Cluster.Start(2, "checkpoint", ["mode=crash", "stage=3", $"dir={CkptDir}"]);
        try
        {
            if (!crash[0].WaitForLine("IN-SAVE rank 0", TimeSpan.FromSeconds(90)))
                throw new InvalidOperationException("the crash job never reached the commit point\n" + Cluster.Describe(crash));
            foreach (var w in crash) w.Kill(); // SIGKILL in the middle of the save
            foreach (var w in crash) w.Process.WaitForExit(10_000);
            CrashOutput = Cluster.Describe(crash);
        }
        finally
        {
            foreach (var w in crash) w.Dispose();
        }
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

public class CheckpointTests(CheckpointFixture f) : IClassFixture<CheckpointFixture>
{
    [Fact]
    public void The_layout_is_deepspeeds_with_per_rank_shards_and_latest_naming_the_tag()
    {
        Assert.Equal("global_step3", f.Saved.GetProperty("tag").GetString());
        var tagDir = Path.Combine(f.CkptDir, "global_step3");
        foreach (var r in new[] { 0, 1 })
        {
            Assert.True(File.Exists(Path.Combine(tagDir, $"zero_pp_rank_{r}_mp_rank_00_optim_states.pt")));
            Assert.True(File.Exists(Path.Combine(tagDir, $"zero_pp_rank_{r}_mp_rank_00_model_states.pt")));
        }
        Assert.True(File.Exists(Path.Combine(tagDir, "engine_state.json")));
        Assert.Empty(Directory.GetFiles(tagDir, "*.part"));
    }

    [Fact]
    public void A_kill_during_save_leaves_the_previous_checkpoint_and_latest_intact()
    {
        Assert.Equal("global_step3", File.ReadAllText(Path.Combine(f.CkptDir, "latest")).Trim());
        Assert.False(Directory.Exists(Path.Combine(f.CkptDir, "global_step4")), "an uncommitted checkpoint became visible\n" + f.CrashOutput);
        Assert.True(Directory.Exists(Path.Combine(f.CkptDir, ".global_step4.tmp")), "the job was not killed mid-save\n" + f.CrashOutput);
        Assert.True(File.Exists(Path.Combine(f.CkptDir, "global_step3", "zero_pp_rank_1_mp_rank_00_optim_states.pt")));
    }

    [Fact]
    public void Resume_at_the_same_world_size_continues_identically()
    {
        var path = Path.Combine(f.Dir, "resume2.json");
        Cluster.RunOk(2, "checkpoint", ["mode=resume", "stage=3", $"dir={f.CkptDir}", "post=3", $"out={path}"], TimeSpan.FromSeconds(120));
        var r = Results.Read(path);
        Assert.Equal(3, r.GetProperty("loadedStep").GetInt64());
        Assert.Equal(Results.Numbers(f.Saved.GetProperty("losses")), Results.Numbers(r.GetProperty("losses")));
        Results.WeightsClose(Results.Weights(f.Saved.GetProperty("weights")), Results.Weights(r.GetProperty("weights")), 0, "resume at 2");
    }

    [Fact]
    public void Resume_at_world_size_one_under_another_stage_continues_within_fp32_tolerance()
    {
        var path = Path.Combine(f.Dir, "resume1.json");
        Cluster.RunOk(1, "checkpoint", ["mode=resume", "stage=1", $"dir={f.CkptDir}", "post=3", $"out={path}"], TimeSpan.FromSeconds(120));
        var r = Results.Read(path);
        Assert.Equal(3, r.GetProperty("loadedStep").GetInt64());
        Results.WeightsClose(Results.Weights(f.Saved.GetProperty("saved")), Results.Weights(r.GetProperty("loaded")), 0, "loaded weights");
        Results.LossesClose(Results.Numbers(f.Saved.GetProperty("losses")), Results.Numbers(r.GetProperty("losses")), 1e-5, "resume at 1");
        Results.WeightsClose(Results.Weights(f.Saved.GetProperty("weights")), Results.Weights(r.GetProperty("weights")), 1e-5, "resume at 1");
    }

    [Fact]
    public void Consolidate_writes_exactly_the_gathered_fp32_weights_as_safetensors()
    {
        var expected = Results.Weights(f.Saved.GetProperty("saved"));
        using var file = SafetensorsFile.Open(Path.Combine(f.HfDir, "model.safetensors"));
        Assert.Equal(expected.Keys.Order(), file.Names.Order());
        using var scope = Rlhf.Torch.Torch.NewScope();
        foreach (var (name, values) in expected)
        {
            var t = file.Load(name);
            Assert.Equal(Rlhf.Torch.ScalarType.Float32, t.Dtype);
            Assert.Equal(values.Select(v => (float)v).ToArray(), t.Reshape(-1).ToArray<float>()); // JSON carries the floats' shortest form
        }
        Assert.Equal(new long[] { 4, 12 }, file.Entry("in.weight").Shape);
    }
}
