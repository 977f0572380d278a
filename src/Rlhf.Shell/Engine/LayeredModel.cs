using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

/// <summary>One named parameter of a layer and its shape.</summary>
public sealed record ParamSpec(string Name, long[] Shape)
{
    /// <summary>Number of elements.</summary>
    public long NumEl => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// What every layer of one forward sees besides its parameters and input: for transformers the token
/// positions [B, T] (int64) and the attention — a padding mask [B, T] (1 = real token) turned into
/// <see cref="CausalAttention"/>, or an explicit <see cref="IAttention"/>. The engine hands the same context to
/// every layer of a <see cref="ZeroEngine.Forward"/> call and again, unchanged, to the recomputation of each
/// layer in backward (activation checkpointing, ZeRO-3), so an explicit <see cref="Attention"/> must be
/// stateless (no KV cache). Models that need nothing per step (MLPs) ignore it.
/// </summary>
/// <param name="Positions">Positions [B, T] (int64), or null for the model's default (from the mask, else 0…T−1).</param>
/// <param name="AttentionMask">Padding mask [B, T] (1 = real, 0 = padding; int64, int32 or bool), or null for none.</param>
/// <param name="Attention">Attention to use instead of <see cref="CausalAttention"/> over <paramref name="AttentionMask"/>.</param>
public sealed record LayerContext(Tensor? Positions = null, Tensor? AttentionMask = null, IAttention? Attention = null)
{
    /// <summary>The attention layers use: <see cref="Attention"/>, or causal attention over <see cref="AttentionMask"/>.</summary>
    public IAttention EffectiveAttention => Attention ?? new CausalAttention(AttentionMask);

    /// <summary>
    /// A copy holding the engine's own handles on the same tensors (no data copied), so the caller's scope may
    /// dispose its handles before backward; <see cref="Release"/> disposes them.
    /// </summary>
    internal LayerContext Retain() => new(Positions?.Detach().DetachFromScope(), AttentionMask?.Detach().DetachFromScope(), Attention);

    /// <summary>Disposes the handles a <see cref="Retain"/> made.</summary>
    internal void Release()
    {
        Positions?.Dispose();
        AttentionMask?.Dispose();
    }
}

/// <summary>
/// One layer of a model the engine can run layer by layer: its parameters, a pure forward of
/// (parameters, input, per-step context) → output, and an initialiser. The engine hands the forward
/// gathered parameters (ZeRO-3) or views of its flat buffers, and recomputes it in backward (activation
/// checkpointing) with the same context, so <see cref="Forward"/> must be a function of its arguments only.
/// </summary>
public interface ILayer
{
    /// <summary>The layer's name (for messages); by default its parameters are named <c>{Name}.{param}</c> (see <see cref="QualifiedName"/>).</summary>
    string Name { get; }

    /// <summary>The layer's own parameters, in the order <see cref="Forward"/> receives them.</summary>
    IReadOnlyList<ParamSpec> Parameters { get; }

    /// <summary>
    /// Fully-qualified names of parameters owned by <em>other</em> layers that this layer also reads (tied weights:
    /// an LM head reading the token embedding). <see cref="Forward"/> receives them after its own parameters, in
    /// this order; their gradients from every reader are summed. Default: none.
    /// </summary>
    IReadOnlyList<string> SharedParameters => [];

    /// <summary>The name the engine, checkpoints and <see cref="ZeroEngine.GatherFullWeights"/> give <paramref name="parameter"/>: <c>{Name}.{param}</c> by default.</summary>
    string QualifiedName(ParamSpec parameter) => $"{Name}.{parameter.Name}";

    /// <summary>
    /// Output of the layer for <paramref name="input"/> given its <paramref name="parameters"/> (own parameters in spec
    /// order, then <see cref="SharedParameters"/>) and the forward's <paramref name="context"/> (null when the caller gave none).
    /// </summary>
    Tensor Forward(IReadOnlyList<Tensor> parameters, Tensor input, LayerContext? context);

    /// <summary>Initial values (fp32, spec order and shapes) of the layer's own parameters, drawn from <paramref name="generator"/>.</summary>
    Tensor[] Initialize(Generator generator);
}

/// <summary>An ordered stack of layers; the last one's output is what <see cref="ZeroEngine.Forward"/> returns (logits, values…), and the caller's loss head turns it into a loss.</summary>
public interface ILayeredModel
{
    /// <summary>The layers, input to output.</summary>
    IReadOnlyList<ILayer> Layers { get; }
}
