using System.Text.Json;

namespace Rlhf.Engine.Tests;

/// <summary>Runs frozen engines at every stage on two ranks, once.</summary>
public sealed class FrozenFixture : IDisposable
{
    public string Dir { get; } = Results.TempDir();
    public JsonElement Two { get; }

    public FrozenFixture()
    {
        var two = Path.Combine(Dir, "two.json");
        Cluster.RunOk(2, "frozen", ["runs=s0,s1,s2,s3", $"out={two}"], TimeSpan.FromSeconds(120));
        Two = Results.Read(two);
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>
/// A frozen engine (reference and reward models) on two ranks: its forward equals the trainable engine's from the same
/// seed, records no graph, refuses backward, and holds parameters only — at stage 3 a shard of them, gathered per layer.
/// </summary>
public class FrozenTests(FrozenFixture f) : IClassFixture<FrozenFixture>
{
    [Theory]
    [InlineData("s0")]
    [InlineData("s1")]
    [InlineData("s2")]
    [InlineData("s3")]
    public void Frozen_forward_equals_the_trainable_forward_with_parameters_only(string run)
    {
        var r = f.Two.GetProperty(run);
        Assert.Equal(0.0, r.GetProperty("max_diff").GetDouble());
        Assert.False(r.GetProperty("requires_grad").GetBoolean());
        Assert.True(r.GetProperty("backward_refused").GetBoolean());
        Assert.Equal(0, r.GetProperty("gradients").GetInt64());
        Assert.Equal(0, r.GetProperty("optimizer").GetInt64());
        Assert.Equal(r.GetProperty("trainable_parameters").GetInt64(), r.GetProperty("parameters").GetInt64());
        var keys = r.GetProperty("metric_keys").EnumerateArray().Select(k => k.GetString()).ToArray();
        Assert.Contains("memory/parameters_bytes", keys);
        Assert.DoesNotContain("memory/gradients_bytes", keys);
        Assert.DoesNotContain("memory/optimizer_bytes", keys);
    }

    [Fact]
    public void Stage_3_frozen_keeps_a_shard_and_gathers_per_layer()
    {
        var r = f.Two.GetProperty("s3");
        var full = r.GetProperty("full_bytes").GetInt64();
        Assert.True(r.GetProperty("parameters").GetInt64() < full * 6 / 10, "a stage-3 rank should hold about half the parameters");
        var peak = r.GetProperty("peak_gathered").GetInt64();
        Assert.True(peak > r.GetProperty("persistent").GetInt64(), "the forward gathered nothing beyond the persistent parameters");
        Assert.True(peak < full, $"peak gathered {peak} bytes: the whole model ({full}) was gathered at once, not per layer");
    }
}
