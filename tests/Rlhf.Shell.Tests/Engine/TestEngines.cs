using System.Globalization;
using Rlhf.Settings;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Tests.Engine;

/// <summary>Engine settings for one-process tests, written as the YAML a user would write and bound by the real binder and resolver.</summary>
internal static class TestEngines
{
    private static string N(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// Settings at world size 1: <paramref name="stage"/>, micro-batch <paramref name="mb"/>, accumulation <paramref name="gas"/>,
    /// AdamW (lr, betas 0.9/0.999, eps 1e-8, weight decay), clipping, bf16, stage 3's persistence threshold and any extra
    /// top-level YAML (e.g. a scheduler section).
    /// </summary>
    public static DeepSpeedSettings Settings(int stage, long mb = 1, long gas = 1, long persistence = 0, bool bf16 = false,
        double lr = 1e-3, double weightDecay = 0.01, double clip = 0, string extra = "") =>
        DeepSpeedConfig.Parse($"""
            train_micro_batch_size_per_gpu: {mb}
            gradient_accumulation_steps: {gas}
            gradient_clipping: {N(clip)}
            bf16: {(bf16 ? "{enabled: true}" : "{enabled: false}")}
            optimizer: {"{"}type: AdamW, params: {"{"}lr: {N(lr)}, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: {N(weightDecay)}{"}}"}
            zero_optimization: {"{"}stage: {stage}, stage3_param_persistence_threshold: {persistence}{"}"}
            {extra}
            """, worldSize: 1);
}
