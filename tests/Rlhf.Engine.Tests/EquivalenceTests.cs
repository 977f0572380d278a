using System.Text.Json;

namespace Rlhf.Engine.Tests;

/// <summary>Runs the single-process reference (world size 1, micro-batch 4) and one two-rank job over every configuration, once.</summary>
public sealed class EquivalenceFixture : IDisposable
{
    /// <summary>Configurations the two-rank job trains (see the worker's Equivalence scenario).</summary>
    public const string Runs = "s0,s0-nogc,s1,s1-offload,s2,s2-gas2,s3,s3-gas2,shared";

    public string Dir { get; } = Results.TempDir();
    public JsonElement Single { get; }
    public JsonElement Two { get; }

    public EquivalenceFixture()
    {
        var one = Path.Combine(Dir, "one.json");
        var two = Path.Combine(Dir, "two.json");
        Cluster.RunOk(1, "equivalence", ["runs=s0,shared", $"out={one}"], TimeSpan.FromSeconds(120));
        Cluster.RunOk(2, "equivalence", [$"runs={Runs}", $"out={two}"], TimeSpan.FromSeconds(240));
        Single = Results.Read(one);
        Two = Results.Read(two);
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>
/// 10 steps of the 117-element MLP (53 in its first layer) at world size 2 under every ZeRO stage give the
/// losses and weights of a single-process run of the same global batch, within 1e-5 relative in fp32
/// (with gradient clipping at 0.3 and a WarmupDecayLR schedule active in both).
/// </summary>
public class EquivalenceTests(EquivalenceFixture f) : IClassFixture<EquivalenceFixture>
{
    private const double Rel = 1e-5;

    [Theory]
    [InlineData("s0")]
    [InlineData("s0-nogc")]
    [InlineData("s1")]
    [InlineData("s1-offload")]
    [InlineData("s2")]
    [InlineData("s2-gas2")]
    [InlineData("s3")]
    [InlineData("s3-gas2")]
    public void Two_ranks_match_one_process(string run)
    {
        var reference = f.Single.GetProperty("s0");
        var got = f.Two.GetProperty(run);
        Results.LossesClose(Results.Numbers(reference.GetProperty("losses")), Results.Numbers(got.GetProperty("losses")), Rel, run);
        Results.WeightsClose(Results.Weights(reference.GetProperty("weights")), Results.Weights(got.GetProperty("weights")), Rel, run);
    }

    [Theory]
    [InlineData("s0")]
    [InlineData("s1")]
    [InlineData("s2")]
    [InlineData("s3")]
    public void Training_moved_the_weights_far_beyond_the_tolerance_so_the_comparison_means_something(string run)
    {
        var losses = Results.Numbers(f.Single.GetProperty("s0").GetProperty("losses"));
        Assert.Equal(10, losses.Length);
        Assert.Equal(10, losses.Distinct().Count());
        var got = f.Two.GetProperty(run);
        var initial = Results.Weights(got.GetProperty("initial"));
        var final = Results.Weights(got.GetProperty("weights"));
        Assert.Equal(117, final.Values.Sum(v => v.Length));
        Assert.Equal(53, final["in.weight"].Length + final["in.bias"].Length + final["in.gain"].Length);
        // Every tensor moved, relative to its own norm, by at least 100× the tolerance the equivalence check allows,
        // so a run that did not train (or trained another model) could not pass Two_ranks_match_one_process.
        foreach (var (name, w0) in initial)
        {
            var w1 = final[name];
            double num = 0, den = 0;
            for (var i = 0; i < w0.Length; i++) { num += (w1[i] - w0[i]) * (w1[i] - w0[i]); den += w0[i] * w0[i]; }
            var moved = Math.Sqrt(num / Math.Max(den, 1e-30));
            Assert.True(moved > 100 * Rel, $"{run}: {name} moved only {moved:E2} relative (tolerance {Rel:E0})");
        }
    }

    [Fact]
    public void Two_engines_sharing_one_loss_match_one_process()
    {
        var reference = f.Single.GetProperty("shared");
        var got = f.Two.GetProperty("shared");
        Results.LossesClose(Results.Numbers(reference.GetProperty("losses")), Results.Numbers(got.GetProperty("losses")), Rel, "shared");
        Results.WeightsClose(Results.Weights(reference.GetProperty("weights")), Results.Weights(got.GetProperty("weights")), Rel, "shared policy (stage 3)");
        Results.WeightsClose(Results.Weights(reference.GetProperty("weights2")), Results.Weights(got.GetProperty("weights2")), Rel, "shared value (stage 1)");
    }
}
