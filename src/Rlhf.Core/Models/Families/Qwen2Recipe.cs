using System.Text.Json.Nodes;

namespace Rlhf.Core.Models;

/// <summary>
/// Qwen2 (transformers <c>modeling_qwen2.py</c>): Llama's structure and names with q/k/v biases always on and none
/// on o_proj or the MLP; <c>Qwen2Config</c> defaults (vocabulary 151936, context 32768). Sliding-window layers
/// (<c>use_sliding_window</c>) are not implemented and refused.
/// </summary>
public sealed class Qwen2Recipe : LlamaRecipe
{
    /// <inheritdoc />
    public override ModelFamily Family => ModelFamily.Qwen2;
    /// <inheritdoc />
    public override string ModelType => "qwen2";
    /// <inheritdoc />
    public override string ArchitectureStem => "Qwen2";
    /// <inheritdoc />
    protected override bool QkvBias(ModelConfig c) => true;
    /// <inheritdoc />
    protected override bool OutputBias(ModelConfig c) => false;
    /// <inheritdoc />
    protected override long DefaultVocabSize => 151936;
    /// <inheritdoc />
    protected override long DefaultIntermediateSize => 22016;
    /// <inheritdoc />
    protected override long DefaultMaxPositionEmbeddings => 32768;
    /// <inheritdoc />
    protected override int? DefaultKeyValueHeads => 32;                 // Qwen2Config: num_key_value_heads = 32 unless given (None → heads)

    /// <inheritdoc />
    protected override ModelConfig ReadBiases(HfConfigReader r, ModelConfig c)
    {
        // Qwen2Attention hard-codes q/k/v biases and none on o_proj or the MLP: a config saying otherwise is refused.
        Fixed(r, "attention_bias", true, "always has q/k/v biases");
        Fixed(r, "mlp_bias", false, "has no MLP biases");
        // Qwen2Config: sliding_window applies only with use_sliding_window, to layers ≥ max_window_layers (or as layer_types says).
        if (r.Get("use_sliding_window", false) && r.Has("sliding_window") && r.Get("max_window_layers", 28) < c.NumHiddenLayers)
            r.Problems.Add($"'use_sliding_window': true with 'sliding_window' {r.Node("sliding_window")!.ToJsonString()} from layer "
                           + $"{r.Get("max_window_layers", 28)} ('max_window_layers'): sliding-window attention is not implemented");
        if (r.Node("layer_types") is JsonArray types && types.Any(t => t?.ToString() != "full_attention"))
            r.Problems.Add($"'layer_types' {types.ToJsonString()}: only full_attention layers are implemented");
        return c with { AttentionBias = true, MlpBias = false };
    }

    /// <inheritdoc />
    protected override void WriteBiases(ModelConfig c, JsonObject o) { }
}
