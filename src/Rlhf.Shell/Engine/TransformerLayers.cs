using Rlhf.Core.Models;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// A decoder-only transformer of any family (llama, qwen2, gpt_neox, gpt2) as layers the <see cref="ZeroEngine"/>
/// runs one by one, computed by Rlhf.Core's pure per-layer functions:
/// <list type="number">
/// <item>layer 0, <c>embeddings</c>: ids [B, T] (int64) → hidden [B, T, D] (<see cref="Transformer.Embed"/>: the token
/// embedding, plus gpt2's learned position table <c>transformer.wpe.weight</c>);</item>
/// <item>layers 1…L, <c>layers.{i}</c>: hidden [B, T, D] → [B, T, D] (<see cref="Transformer.Block"/> i);</item>
/// <item>the last, <c>head</c>: hidden [B, T, D] → final norm, then logits [B, T, V] (<see cref="Transformer.LmHead"/>) for a
/// language model, or per-token scores [B, T] (<see cref="ScoreHead.PerToken"/>) for a <see cref="ModelHead.Score"/>
/// (reward/value) model — gather a reward model's score at <see cref="ScoreHead.LastTokenIndex"/>.</item>
/// </list>
/// Positions and attention come from the forward's <see cref="LayerContext"/> (build one with <see cref="Context"/>);
/// without one, positions are 0…T−1 and attention is plain causal, as in <see cref="Transformer.Forward"/>.
/// Parameters carry their Hugging Face names exactly (<c>model.layers.0.self_attn.q_proj.weight</c>, …), so
/// <see cref="ZeroEngine.GatherFullWeights"/>, <see cref="Checkpoint.Consolidate"/> and <see cref="ZeroEngine.Save16BitModel"/>
/// (with <see cref="Io.HfModelWriter"/>) give tensors <see cref="HfModelDirectory.Load"/> reads back.
/// <para>
/// Tied embeddings (<c>tie_word_embeddings</c>): the embedding matrix is a parameter of layer 0 only, and the head
/// reads it as a <see cref="ILayer.SharedParameters">shared parameter</see>; the engine hands it to both layers
/// (gathering it again for the head under ZeRO-3) and sums both gradients, so tied models train at every stage
/// and are saved without an <c>lm_head.weight</c>, as HF saves them.
/// </para>
/// </summary>
public sealed class TransformerLayers : ILayeredModel
{
    /// <summary>
    /// Layers for <paramref name="config"/>, initialised as <see cref="ModelInit.Random"/> does (matrices ~ Normal(0,
    /// <paramref name="initStd"/>), norm scales 1, biases 0, in <see cref="ModelWeights.ExpectedShapes"/> order) from the
    /// engine's generator: an engine with seed s starts from exactly <c>ModelInit.Random(config, s, Float32, initStd)</c>.
    /// </summary>
    public TransformerLayers(ModelConfig config, double initStd = 0.02) : this(config.Validated(), null, initStd) { }

    /// <summary>
    /// Layers for <paramref name="initial"/>'s config, initialised from its tensors (e.g. loaded with
    /// <see cref="HfModelDirectory.Load"/>; converted to fp32, and the engine keeps rank 0's). The engine reads them only
    /// while it is constructed; the caller still owns them.
    /// </summary>
    public TransformerLayers(ModelWeights initial) : this(initial.Validated().Config, initial, 0) { }

    private TransformerLayers(ModelConfig config, ModelWeights? initial, double initStd)
    {
        Config = config;
        var specs = ModelWeights.ExpectedShapes(config);
        var embeddingNames = new HashSet<string>(WeightNames.EmbeddingStage(config), StringComparer.Ordinal);
        var blockPrefixes = Enumerable.Range(0, config.NumHiddenLayers).Select(i => WeightNames.Layer(config, i)).ToArray();
        int BlockOf(string name) => Array.FindIndex(blockPrefixes, p => name.StartsWith(p, StringComparison.Ordinal));

        var layers = new List<ILayer>
        {
            new Layer(this, "embeddings", specs.Where(s => embeddingNames.Contains(s.Name)).ToArray(), [], initial, initStd,
                (w, x, ctx) => Transformer.Embed(w, x, PositionsOf(ctx, x))),
        };
        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            var layer = i;
            layers.Add(new Layer(this, $"layers.{i}", specs.Where(s => BlockOf(s.Name) == layer).ToArray(), [], initial, initStd,
                (w, x, ctx) => Transformer.Block(w, layer, x, PositionsOf(ctx, x), ctx?.EffectiveAttention ?? new CausalAttention())));
        }
        var tied = config.Head == ModelHead.LanguageModel && config.TieWordEmbeddings;
        layers.Add(new Layer(this, "head", specs.Where(s => !embeddingNames.Contains(s.Name) && BlockOf(s.Name) < 0).ToArray(),
            tied ? [WeightNames.Embedding(config)] : [], initial, initStd,
            (w, x, _) =>
            {
                using var scope = Torch.NewScope();
                var h = Transformer.FinalNorm(w, x);                                            // [B, T, D]
                var y = config.Head == ModelHead.Score ? ScoreHead.PerToken(w, h) : Transformer.LmHead(w, h);
                return y.MoveToOuter();                                                         // [B, T] or [B, T, V]
            }));
        Layers = layers;
    }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }

    /// <inheritdoc />
    public IReadOnlyList<ILayer> Layers { get; }

    /// <summary>
    /// The context of a padded batch, as <see cref="Transformer.Forward"/> defaults it: positions
    /// <see cref="Transformer.PositionsFromMask"/> of <paramref name="attentionMask"/> [B, T] (unless
    /// <paramref name="positions"/> [B, T] are given) and causal attention over the mask.
    /// </summary>
    public static LayerContext Context(Tensor? attentionMask, Tensor? positions = null) =>
        new(positions ?? (attentionMask is null ? null : Transformer.PositionsFromMask(attentionMask)), attentionMask);

    /// <summary>The engine's full weights as a <see cref="ModelWeights"/> of this config (a collective: every rank calls it; the caller disposes it).</summary>
    public ModelWeights GatherWeights(ZeroEngine engine, ScalarType @as = ScalarType.Float32)
    {
        var w = engine.GatherFullWeights(@as);
        foreach (var kv in w) kv.Value.DetachFromScope();
        return new ModelWeights(Config, w).Validated();
    }

    /// <summary>
    /// A held version of the engine's live weights as a <see cref="ModelWeights"/> of this config, for a generator
    /// (<see cref="ZeroEngine.AcquireWeights"/>): its tensors are the lease's views, valid until the lease is disposed.
    /// </summary>
    public ModelWeights LiveWeights(WeightsLease lease) => new(Config, lease.Weights);

    /// <summary>Positions [B, T] of the context, else from its mask, else 0…T−1, for an input [B, T] or [B, T, D].</summary>
    private static Tensor PositionsOf(LayerContext? ctx, Tensor input)
    {
        if (ctx?.Positions is { } p) return p;
        if (ctx?.AttentionMask is { } m) return Transformer.PositionsFromMask(m);
        return Torch.Arange(input.Size(1), device: input.Device).Unsqueeze(0).Expand(input.Size(0), input.Size(1));
    }

    /// <summary>One engine layer: its own HF-named weights, the shared ones it reads, and a Core function over a view of them.</summary>
    private sealed class Layer(
        TransformerLayers model, string name, WeightSpec[] specs, string[] shared, ModelWeights? initial, double initStd,
        Func<ModelWeights, Tensor, LayerContext?, Tensor> forward) : ILayer
    {
        public string Name => name;
        public IReadOnlyList<ParamSpec> Parameters { get; } = specs.Select(s => new ParamSpec(s.Name, s.Shape)).ToArray();
        public IReadOnlyList<string> SharedParameters => shared;
        public string QualifiedName(ParamSpec parameter) => parameter.Name;

        public Tensor Forward(IReadOnlyList<Tensor> parameters, Tensor input, LayerContext? context)
        {
            var names = specs.Select(s => s.Name).Concat(shared).ToArray();
            if (parameters.Count != names.Length) throw new ArgumentException($"layer {name} takes {names.Length} parameters, got {parameters.Count}", nameof(parameters));
            var view = new ModelWeights(model.Config, names.Select((n, k) => KeyValuePair.Create(n, parameters[k])));
            return forward(view, input, context);
        }

        public Tensor[] Initialize(Generator generator) => specs.Select(s =>
            initial is not null ? initial[s.Name].To(ScalarType.Float32).Contiguous().Clone()
            : s.Init switch
            {
                WeightInit.Normal => Torch.Randn(s.Shape, generator, ScalarType.Float32) * initStd,
                WeightInit.Ones => Torch.Ones(s.Shape),
                _ => Torch.Zeros(s.Shape),
            }).ToArray();
    }
}
