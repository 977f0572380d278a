using System.Text.Json;

namespace Rlhf.Engine.Tests;

/// <summary>Runs the memory scenario (medium MLP, every stage, fp32 and bf16) on two ranks once.</summary>
public sealed class MemoryFixture : IDisposable
{
    public string Dir { get; } = Results.TempDir();
    public JsonElement[] PerRank { get; }

    public MemoryFixture()
    {
        var path = Path.Combine(Dir, "mem.json");
        Cluster.RunOk(2, "memory", [$"out={path}", "persistence=100"], TimeSpan.FromSeconds(180));
        PerRank = [Results.Read(path + ".0"), Results.Read(path + ".1")];
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>Per-rank model-state bytes against the ZeRO paper's formulas (Rajbhandari et al., 2020, §5: Ψ parameters, N = 2 ranks).</summary>
public class MemoryTests(MemoryFixture f) : IClassFixture<MemoryFixture>
{
    // The medium test MLP: in 12 → 61 (+ scalar gain) → 97 → 3 (no bias).
    private static readonly (string Name, long NumEl, int Layer)[] Params =
    [
        ("in.weight", 61 * 12, 0), ("in.bias", 61, 0), ("in.gain", 1, 0),
        ("mid.weight", 97 * 61, 1), ("mid.bias", 97, 1),
        ("head.weight", 3 * 97, 2),
    ];
    private const int N = 2;
    private const long Persistence = 100;
    private static long Psi => Params.Sum(p => p.NumEl);

    private static double Formula(int stage, bool bf16) => (stage, bf16) switch
    {
        (0, _) => 16.0 * Psi,
        (1, false) => 8.0 * Psi + 8.0 * Psi / N,
        (1, true) => 4.0 * Psi + 12.0 * Psi / N,
        (2, false) => 4.0 * Psi + 12.0 * Psi / N,
        (2, true) => 2.0 * Psi + 14.0 * Psi / N,
        _ => 16.0 * Psi / N,
    };

    /// <summary>Bytes of padding the layout may add: to a multiple of 2N overall (stages 0–2) or of N per parameter (stage 3), at 16 bytes per element.</summary>
    private static double Padding(int stage) => stage == 3
        ? 16.0 * Params.Sum(p => (p.NumEl + N - 1) / N * N - p.NumEl) / N
        : 16.0 * ((Psi + 2 * N - 1) / (2 * N) * (2 * N) - Psi);

    [Theory]
    [InlineData(0, false)] [InlineData(1, false)] [InlineData(2, false)] [InlineData(3, false)]
    [InlineData(0, true)] [InlineData(1, true)] [InlineData(2, true)] [InlineData(3, true)]
    public void Model_state_bytes_match_the_zero_formula_within_five_percent_plus_padding(int stage, bool bf16)
    {
        var expected = Formula(stage, bf16);
        foreach (var rank in f.PerRank)
        {
            var m = rank.GetProperty($"s{stage}{(bf16 ? "-bf16" : "")}");
            var measured = m.GetProperty("model_states").GetInt64();
            Assert.InRange(measured, expected * 0.95, expected * 1.05 + Padding(stage));
            Assert.Equal(measured, m.GetProperty("parameters").GetInt64() + m.GetProperty("gradients").GetInt64() + m.GetProperty("optimizer").GetInt64());
        }
    }

    [Fact]
    public void Stages_shrink_per_rank_memory_in_order()
    {
        foreach (var bf in new[] { "", "-bf16" })
        {
            var bytes = Enumerable.Range(0, 4).Select(s => f.PerRank[0].GetProperty($"s{s}{bf}").GetProperty("model_states").GetInt64()).ToArray();
            Assert.True(bytes[0] > bytes[1] && bytes[1] > bytes[2] && bytes[2] > bytes[3], string.Join(", ", bytes));
        }
    }

    [Theory]
    [InlineData(false, 4)]
    [InlineData(true, 2)]
    public void Stage3_peak_gathered_parameters_stay_under_one_layer_plus_the_persistent_ones(bool bf16, int elementSize)
    {
        var persistent = Params.Where(p => p.NumEl < Persistence).Sum(p => p.NumEl) * elementSize;
        var largestLayer = Params.Where(p => p.NumEl >= Persistence).GroupBy(p => p.Layer)
            .Max(g => g.Sum(p => (p.NumEl + N - 1) / N * N)) * elementSize;
        var allParams = Psi * elementSize;
        Assert.True(largestLayer + persistent < allParams, "the model must have more than one layer's worth of parameters for this test to mean anything");
        foreach (var rank in f.PerRank)
        {
            var m = rank.GetProperty($"s3{(bf16 ? "-bf16" : "")}");
            Assert.Equal(persistent, m.GetProperty("persistent").GetInt64());
            var peak = m.GetProperty("peak_gathered").GetInt64();
            Assert.InRange(peak, persistent + 1, largestLayer + persistent);
        }
    }
}
