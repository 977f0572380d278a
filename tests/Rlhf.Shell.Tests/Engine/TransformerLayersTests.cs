using Rlhf.Core.Models;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Tests.Io;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The transformer families run through the ZeRO engine layer by layer (one process): the engine's forward equals
/// <see cref="Transformer.Forward"/> on the same weights, its gradients equal plain autograd — with a left-padded
/// batch, so positions and the padding mask must reach every layer, also in the stage-3 / checkpointed recomputation —
/// and its initialisation and saved weights are the HF-named tensors Core and the HF loader use.
/// </summary>
[Collection(MemoryCollection.Name)]
public class TransformerLayersTests
{
    private const long B = 3, T = 6;

    public static readonly TheoryData<string> Variants = new(["llama-gqa", "llama-tied-bias", "qwen2", "neox", "gpt2", "llama-score"]);

    private static ModelConfig Config(string variant) => variant switch
    {
        "llama-gqa" => ModelConfig.Llama(64, 32, 48, 2, 4, kvHeads: 2),
        "llama-tied-bias" => ModelConfig.Llama(64, 32, 48, 2, 4, kvHeads: 2) with { TieWordEmbeddings = true, AttentionBias = true, MlpBias = true },
        "qwen2" => ModelConfig.Qwen2(64, 32, 48, 1, 4, kvHeads: 1),
        "neox" => ModelConfig.GptNeox(64, 32, 48, 2, 4),
        "gpt2" => ModelConfig.Gpt2(64, 32, 2, 4, positions: 16),                       // tied
        "llama-score" => ModelConfig.Llama(64, 32, 48, 1, 4, kvHeads: 2) with { Head = ModelHead.Score },
        _ => throw new ArgumentException(variant),
    };

    /// <summary>A one-process engine over <paramref name="model"/> at <paramref name="stage"/> (seed 5, micro-batch B).</summary>
    private static ZeroEngine Engine(ILayeredModel model, int stage, bool checkpointing, long persistence = 0, bool bf16 = false) =>
        new(model, TestEngines.Settings(stage, mb: B, persistence: persistence, bf16: bf16), null, seed: 5, gradientCheckpointing: checkpointing);

    /// <summary>Weights far from HF init (std 0.4, noisy norms and biases) so every tensor and the padding matter.</summary>
    private static ModelWeights Weights(ModelConfig c)
    {
        using var g = new Generator(77);
        using var w = ModelInit.Random(c, 3, std: 0.4);
        return w.Map((_, t) => (t + Torch.Randn(t.Shape, g) * 0.2).DetachFromScope());
    }

    /// <summary>Left-padded ids [B, T] and mask [B, T]: 2, 0 and 3 pads.</summary>
    private static (Tensor Ids, Tensor Mask) Batch(ModelConfig c)
    {
        using var g = new Generator(11);
        var ids = Torch.Randint(0, c.VocabSize, [B, T], g);
        var mask = Torch.From(new long[] { 0, 0, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 1, /**/ 0, 0, 0, 1, 1, 1 }, B, T);
        return (ids, mask);
    }

    /// <summary>Core's whole-model forward: logits [B, T, V], or per-token scores [B, T] for a score head.</summary>
    private static Tensor Reference(ModelWeights w, Tensor ids, Tensor mask) =>
        w.Config.Head == ModelHead.Score ? ScoreHead.PerToken(w, Transformer.ForwardHidden(w, ids, attentionMask: mask)) : Transformer.Forward(w, ids, attentionMask: mask);

    /// <summary>A non-linear scalar of the output that ignores padding positions.</summary>
    private static Tensor Loss(Tensor output, Tensor mask)
    {
        using var g = new Generator(99);
        var m = mask.Float();
        var weight = output.Dim == 3 ? Torch.Randn(output.Shape, g) * m.Unsqueeze(-1) : Torch.Randn(output.Shape, g) * m;
        var y = output.Dim == 3 ? output.LogSoftmax(-1) : output.Tanh();
        return (y * weight).Sum();
    }

    private static void Close(Tensor expected, Tensor actual, double rel, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var e = expected.Double();
        var a = actual.Double();
        var err = (a - e).Norm(2).Item();
        var scale = e.Norm(2).Item();
        Assert.True(err <= rel * scale, $"{what}: ‖Δ‖ = {err:E3}, ‖expected‖ = {scale:E3} (relative {err / scale:E2} > {rel:E0})");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Random_initialisation_is_ModelInit_Random_with_the_engine_seed_under_HF_names(string variant)
    {
        using var scope = Torch.NewScope();
        var c = Config(variant);
        using var e = Engine(new TransformerLayers(c), 0, true);
        using var expected = ModelInit.Random(c, 5);
        var got = e.GatherFullWeights();
        Assert.Equal(ModelWeights.ExpectedShapes(c).Select(s => s.Name), got.Select(kv => kv.Key));
        foreach (var (name, t) in got) Assert.True(expected[name].Equal(t), $"{name} differs from ModelInit.Random");
        if (c.TieWordEmbeddings) Assert.DoesNotContain(WeightNames.LmHead(c), e.ParameterNames);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Forward_equals_Core_and_gradients_equal_plain_autograd_at_stage_0_with_and_without_checkpointing(string variant)
    {
        foreach (var checkpointing in new[] { true, false }) ForwardAndGradients(variant, 0, checkpointing, 0);
    }

    [Theory]
    [InlineData("llama-gqa", 0)]
    [InlineData("llama-gqa", 100_000)]
    [InlineData("gpt2", 0)]
    [InlineData("gpt2", 100_000)]
    [InlineData("llama-score", 0)]
    public void Stage_3_recomputation_gives_the_same_forward_and_gradients(string variant, long persistence) =>
        ForwardAndGradients(variant, 3, true, persistence);

    [Theory]
    [InlineData("llama-tied-bias", 1)]
    [InlineData("gpt2", 2)]
    public void Stages_1_and_2_accumulate_tied_gradients_like_autograd(string variant, int stage) =>
        ForwardAndGradients(variant, stage, true, 0);

    private static void ForwardAndGradients(string variant, int stage, bool checkpointing, long persistence)
    {
        using var scope = Torch.NewScope();
        var c = Config(variant);
        using var w = Weights(c);
        var (ids, mask) = Batch(c);
        var what = $"{variant} stage {stage}{(checkpointing ? "" : " no-ckpt")} persistence {persistence}";

        // Plain autograd on leaves holding the same values.
        var leaves = w.Map((_, t) => t.Detach().Clone().RequiresGrad_(true));
        var expected = Reference(leaves, ids, mask);
        Loss(expected, mask).Backward();

        using var e = Engine(new TransformerLayers(w), stage, checkpointing, persistence);
        using (Torch.NoGrad())
            Close(expected.Detach(), e.Forward(ids, TransformerLayers.Context(mask)), 1e-6, what + " (no-grad forward)");

        Tensor output;
        // The context's tensors are the caller's: the engine must keep its own handles until backward.
        using (var inner = Torch.NewScope())
        {
            output = e.Forward(ids, TransformerLayers.Context(mask.Clone())).MoveToOuter();
        }
        Close(expected.Detach(), output.Detach(), 1e-6, what + " (training forward)");
        e.Backward(Loss(output, mask));

        var names = e.ParameterNames;
        Assert.Equal(ModelWeights.ExpectedShapes(c).Select(s => s.Name), names);
        for (var j = 0; j < names.Count; j++)
        {
            var g = leaves[names[j]].Grad ?? throw new InvalidOperationException($"{names[j]} has no autograd gradient");
            Assert.True(g.Abs().Max().Item() > 0, $"{what}: {names[j]}'s reference gradient is zero, the comparison would be vacuous");
            Close(g, e.LocalGradient(j), 1e-5, $"{what}: gradient of {names[j]}");
        }
    }

    [Fact]
    public void Bf16_stage_3_trains_a_tied_model_close_to_the_fp32_forward()
    {
        using var scope = Torch.NewScope();
        var c = Config("gpt2");
        using var w = Weights(c);
        var (ids, mask) = Batch(c);
        using var e = Engine(new TransformerLayers(w), 3, true, bf16: true);
        var output = e.Forward(ids, TransformerLayers.Context(mask));
        Assert.Equal(ScalarType.BFloat16, output.Dtype);
        Close(Reference(w, ids, mask), output, 3e-2, "bf16 logits");
        e.Backward(Loss(output.Float(), mask));
        e.Step();
        Assert.True(double.IsFinite(e.LastGradNorm) && e.LastGradNorm > 0, $"grad norm {e.LastGradNorm}");
        Assert.Equal(0, e.SkippedSteps);
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(0, false)]
    [InlineData(3, true)]
    public void A_training_step_leaks_no_tensors_including_the_retained_context(int stage, bool checkpointing)
    {
        var c = Config("llama-tied-bias");
        using var e = Engine(new TransformerLayers(c), stage, checkpointing);
        void Step()
        {
            using var scope = Torch.NewScope();
            var (ids, mask) = Batch(c);
            e.Backward(Loss(e.Forward(ids, TransformerLayers.Context(mask)), mask));
            e.Step();
        }
        Step();  // warm-up: anything created lazily once
        var before = Torch.LiveTensors;
        Step();
        Step();
        Assert.Equal(before, Torch.LiveTensors);
    }

    [Fact]
    public void Gradients_depend_on_the_context_so_the_recomputation_must_receive_it()
    {
        // Guard against a vacuous test: without the mask (plain causal, positions 0…T−1) the same batch gives other gradients.
        using var scope = Torch.NewScope();
        var c = Config("llama-gqa");
        using var w = Weights(c);
        var (ids, mask) = Batch(c);
        using var e = Engine(new TransformerLayers(w), 3, true);
        e.Backward(Loss(e.Forward(ids, TransformerLayers.Context(mask)), mask));
        var withMask = e.LocalGradient(1).Clone();
        e.Step();
        using var e2 = Engine(new TransformerLayers(w), 3, true);
        e2.Backward(Loss(e2.Forward(ids), mask));
        Assert.False(withMask.AllClose(e2.LocalGradient(1), 1e-3, 1e-6));
    }

    [Fact]
    public void Saved_16bit_model_loads_as_an_HF_directory_with_the_engines_logits()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var c = Config("gpt2");
        var (ids, mask) = Batch(c);
        var layers = new TransformerLayers(c);
        using var e = Engine(layers, 3, true);
        e.Backward(Loss(e.Forward(ids, TransformerLayers.Context(mask)), mask));
        e.Step();   // move off the initialisation

        e.Save16BitModel(dir.Path, new HfModelWriter(c));
        using var loaded = HfModelDirectory.Load(dir.Path);
        Assert.Equal(c, loaded.Config);
        Assert.Null(loaded.TryGet("lm_head.weight"));          // tied: saved as HF saves it
        using var gathered = layers.GatherWeights(e);
        foreach (var (name, t) in gathered.Tensors) Assert.True(loaded[name].Equal(t), $"{name} differs after save/load");
        using (Torch.NoGrad())
            Close(e.Forward(ids, TransformerLayers.Context(mask)), Transformer.Forward(loaded, ids, attentionMask: mask), 1e-6, "logits of the loaded model");
    }

    private sealed class Sharing(string name, string[] shared) : ILayer
    {
        public string Name => name;
        public IReadOnlyList<ParamSpec> Parameters { get; } = [new("w", [2])];
        public IReadOnlyList<string> SharedParameters => shared;
        public Tensor Forward(IReadOnlyList<Tensor> parameters, Tensor input, LayerContext? context) => input * parameters[0].Sum();
        public Tensor[] Initialize(Generator generator) => [Torch.Ones([2])];
    }

    private sealed class Model(params ILayer[] layers) : ILayeredModel
    {
        public IReadOnlyList<ILayer> Layers => layers;
    }

    [Fact]
    public void A_shared_parameter_must_name_another_layers_parameter()
    {
        var unknown = Assert.Throws<ArgumentException>(() => Engine(new Model(new Sharing("a", []), new Sharing("b", ["a.x"])), 0, true));
        Assert.Contains("layer b shares parameter 'a.x', which no layer declares", unknown.Message);
        var self = Assert.Throws<ArgumentException>(() => Engine(new Model(new Sharing("a", ["a.w"])), 0, true));
        Assert.Contains("shares its own parameter", self.Message);
    }
}
