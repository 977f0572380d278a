using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// ZeRO-3 parameter offload (DeepSpeed's <c>offload_param: {device: cpu}</c>, as ROLL's deepspeed_zero3_cpuoffload template
/// sets it): on a CPU device the parameter shards already live in host memory, so it is accepted at stage 3 and trains
/// exactly as stage 3 without it; DeepSpeed refuses it below stage 3, and so does the engine.
/// </summary>
public class ParameterOffloadTests
{
    private static readonly ModelConfig Model = ModelConfig.Llama(64, 32, 48, 2, 4, kvHeads: 2);

    private static DeepSpeedSettings WithOffload(DeepSpeedSettings s, OffloadDevice device) =>
        s with { ZeroOptimization = s.ZeroOptimization with { OffloadParam = s.ZeroOptimization.OffloadParam with { Device = device } } };

    /// <summary>One step on a fixed batch; the gathered weights after it.</summary>
    private static Dictionary<string, Tensor> OneStep(DeepSpeedSettings settings)
    {
        var layers = new TransformerLayers(Model);
        using var e = new ZeroEngine(layers, settings, null, seed: 5, gradientCheckpointing: true);
        using var g = new Generator(11);
        var ids = Torch.Randint(0, Model.VocabSize, [2, 6], g);
        e.Backward(e.Forward(ids).LogSoftmax(-1).Mean());
        e.Step();
        Assert.True(double.IsFinite(e.LastGradNorm) && e.LastGradNorm > 0, $"grad norm {e.LastGradNorm}");
        return e.GatherFullWeights().ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    [Fact]
    public void A_stage_3_config_with_offload_param_cpu_trains_one_step_as_stage_3_without_it()
    {
        using var scope = Torch.NewScope();
        var stage3 = TestEngines.Settings(3, mb: 2);
        var offloaded = OneStep(WithOffload(stage3, OffloadDevice.Cpu));
        var plain = OneStep(stage3);
        using var init = ModelInit.Random(Model, 5);
        Assert.Contains(offloaded, kv => !kv.Value.Equal(init[kv.Key]));   // not vacuous: the step moved the weights
        foreach (var (name, t) in plain) Assert.True(t.Equal(offloaded[name]), $"{name} differs with offload_param");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Offload_param_below_stage_3_is_refused_as_DeepSpeed_refuses_it(int stage)
    {
        var settings = WithOffload(TestEngines.Settings(stage, mb: 2), OffloadDevice.Cpu);
        var e = Assert.Throws<NotSupportedException>(() => new ZeroEngine(new TransformerLayers(Model), settings, null, seed: 5, gradientCheckpointing: true));
        Assert.Contains($"offload_param needs ZeRO stage 3, got stage {stage}", e.Message);
    }

    [Fact]
    public void Offload_param_to_nvme_is_refused_naming_the_device()
    {
        var settings = WithOffload(TestEngines.Settings(3, mb: 2), OffloadDevice.Nvme);
        var e = Assert.Throws<NotSupportedException>(() => new ZeroEngine(new TransformerLayers(Model), settings, null, seed: 5, gradientCheckpointing: true));
        Assert.Contains("offload_param.device nvme", e.Message);
    }
}
