using System.Text.Json;
using System.Text.Json.Serialization;

namespace Rlhf.Shell.Training.Quickstart;

/// <summary>
/// The outcome of a quickstart run, written as <c>summary.json</c> (snake_case keys) so scripts and CI can read it: the SFT
/// policy against the final one on the held-out prompts (gold reward, gold win-rate with ties counting half, exact match,
/// proxy reward), the final policy's KL to the SFT policy, the reward model's held-out pair accuracy and the wall time.
/// </summary>
/// <param name="Algorithm">The online algorithm (<c>training.algorithm</c>).</param>
/// <param name="Async">Whether the online stage ran the asynchronous loop.</param>
/// <param name="MaxStaleness">training.max_staleness of the online stage (0 when synchronous).</param>
/// <param name="GoldWinRate">Fraction of held-out prompts where the final policy's sample has the higher gold reward than the SFT policy's (ties half).</param>
/// <param name="GoldRewardSft">Mean gold reward of the SFT policy's samples.</param>
/// <param name="GoldRewardFinal">Mean gold reward of the final policy's samples.</param>
/// <param name="ExactMatchSft">Exact-match rate of the SFT policy's samples.</param>
/// <param name="ExactMatchFinal">Exact-match rate of the final policy's samples.</param>
/// <param name="KlToSft">Mean over the final policy's samples of Σ_t log π_final − log π_SFT (a Monte Carlo estimate of KL(π_final ‖ π_SFT) per sequence).</param>
/// <param name="ProxyRewardSft">Mean learned-reward-model score of the SFT policy's samples.</param>
/// <param name="ProxyRewardFinal">Mean learned-reward-model score of the final policy's samples.</param>
/// <param name="RewardModelAccuracy">Held-out pair accuracy of the reward model.</param>
/// <param name="RewardPairs">Gold-labelled pairs of SFT samples the reward model saw (train and held out).</param>
/// <param name="EvalPrompts">Held-out prompts of the evaluation.</param>
/// <param name="WallSeconds">Wall time of the whole pipeline.</param>
/// <param name="StageSeconds">Wall time of each stage.</param>
public sealed record QuickstartSummary(
    string Algorithm,
    bool Async,
    long MaxStaleness,
    double GoldWinRate,
    double GoldRewardSft,
    double GoldRewardFinal,
    double ExactMatchSft,
    double ExactMatchFinal,
    double KlToSft,
    double ProxyRewardSft,
    double ProxyRewardFinal,
    double RewardModelAccuracy,
    long RewardPairs,
    int EvalPrompts,
    double WallSeconds,
    IReadOnlyDictionary<string, double> StageSeconds)
{
    /// <summary>The file's name in a run directory.</summary>
    public const string FileName = "summary.json";

    /// <summary>snake_case keys, indented.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Writes <c>summary.json</c> into <paramref name="directory"/> (atomically); returns its path.</summary>
    public string Write(string directory)
    {
        var path = Path.Combine(directory, FileName);
        TrainingRun.WriteAtomically(path, JsonSerializer.Serialize(this, Json) + "\n");
        return path;
    }

    /// <summary>The before → after rows of the summary table: metric, SFT, final.</summary>
    public IReadOnlyList<IReadOnlyList<string>> BeforeAfterRows()
    {
        static string F(double v) => v.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture);
        return
        [
            ["gold reward", F(GoldRewardSft), F(GoldRewardFinal)],
            ["gold win-rate vs SFT", F(0.5), F(GoldWinRate)],
            ["exact match", F(ExactMatchSft), F(ExactMatchFinal)],
            ["proxy reward (reward model)", F(ProxyRewardSft), F(ProxyRewardFinal)],
            ["KL to SFT", F(0), F(KlToSft)],
        ];
    }
}
