using System.Text.Json;

namespace Rlhf.Engine.Tests;

/// <summary>Reading the workers' JSON results and comparing runs.</summary>
public static class Results
{
    /// <summary>Parses a JSON file.</summary>
    public static JsonElement Read(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement.Clone();

    /// <summary>An array of numbers.</summary>
    public static double[] Numbers(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    /// <summary>A name → flat values map.</summary>
    public static Dictionary<string, double[]> Weights(JsonElement e) => e.EnumerateObject().ToDictionary(p => p.Name, p => Numbers(p.Value));

    /// <summary>Asserts every loss agrees within <paramref name="rel"/> relative.</summary>
    public static void LossesClose(double[] expected, double[] actual, double rel, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= rel * Math.Abs(expected[i]),
                $"{what}: loss at step {i + 1} is {actual[i]:R}, expected {expected[i]:R} (relative {Math.Abs(actual[i] - expected[i]) / Math.Abs(expected[i]):E2} > {rel:E0})");
    }

    /// <summary>Asserts the same parameter names and, per tensor, ‖a − b‖ ≤ rel·‖b‖ and every |aᵢ − bᵢ| ≤ rel·max(|bᵢ|, rms(b)).</summary>
    public static void WeightsClose(Dictionary<string, double[]> expected, Dictionary<string, double[]> actual, double rel, string what)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, b) in expected)
        {
            var a = actual[name];
            Assert.Equal(b.Length, a.Length);
            double num = 0, den = 0;
            for (var i = 0; i < b.Length; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
            var rms = Math.Sqrt(den / b.Length);
            Assert.True(Math.Sqrt(num) <= rel * Math.Sqrt(den), $"{what}: {name} differs by {Math.Sqrt(num / den):E2} relative (> {rel:E0})");
            for (var i = 0; i < b.Length; i++)
                Assert.True(Math.Abs(a[i] - b[i]) <= rel * Math.Max(Math.Abs(b[i]), rms), $"{what}: {name}[{i}] = {a[i]:R}, expected {b[i]:R}");
        }
    }

    /// <summary>A fresh temporary directory.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "rlhf-engine-tests", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(d);
        return d;
    }
}
