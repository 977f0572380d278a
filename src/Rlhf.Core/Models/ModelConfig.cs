namespace Rlhf.Core.Models;

/// <summary>The decoder-only architectures Rlhf implements (Hugging Face <c>model_type</c> in brackets).</summary>
public enum ModelFamily
{
    /// <summary>Llama 1–3 (<c>llama</c>): RMSNorm, rotary, SwiGLU, grouped-query attention.</summary>
    Llama,
    /// <summary>Qwen2 (<c>qwen2</c>): Llama with q/k/v biases.</summary>
    Qwen2,
    /// <summary>GPT-NeoX / Pythia (<c>gpt_neox</c>): LayerNorm, partial rotary, parallel residual, fused per-head qkv.</summary>
    GptNeox,
    /// <summary>GPT-2 (<c>gpt2</c>): learned positions, LayerNorm, gelu_new, Conv1D weights stored [in, out].</summary>
    Gpt2,
}

/// <summary>Which head sits on the final hidden states.</summary>
public enum ModelHead
{
    /// <summary>A language-model head <c>[V, D]</c> (HF <c>*ForCausalLM</c>).</summary>
    LanguageModel,
    /// <summary>A scalar score head <c>score.weight [1, D]</c> (HF <c>*ForSequenceClassification</c> with one label): reward and value models.</summary>
    Score,
}

/// <summary>
/// The architecture of a decoder-only model: the fields of a Hugging Face <c>config.json</c>, with HF's
/// defaults. One record for all families; fields a family does not use are ignored by it. Build one with
/// the family constructors (<see cref="Llama"/>, <see cref="Qwen2"/>, <see cref="GptNeox"/>, <see cref="Gpt2"/>)
/// and <c>with</c> expressions; Shell's <c>HfConfig</c> reads and writes the JSON.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Architecture family (HF <c>model_type</c>).</summary>
    public ModelFamily Family { get; init; }
    /// <summary>Head on top of the final hidden states.</summary>
    public ModelHead Head { get; init; } = ModelHead.LanguageModel;
    /// <summary>Vocabulary size V.</summary>
    public long VocabSize { get; init; }
    /// <summary>Model width D (<c>hidden_size</c>, GPT-2 <c>n_embd</c>).</summary>
    public long HiddenSize { get; init; }
    /// <summary>MLP width (<c>intermediate_size</c>, GPT-2 <c>n_inner</c>, default 4·D there).</summary>
    public long IntermediateSize { get; init; }
    /// <summary>Number of transformer blocks (<c>num_hidden_layers</c>, GPT-2 <c>n_layer</c>).</summary>
    public int NumHiddenLayers { get; init; }
    /// <summary>Query heads H (<c>num_attention_heads</c>, GPT-2 <c>n_head</c>).</summary>
    public int NumAttentionHeads { get; init; }
    /// <summary>Key/value heads for grouped-query attention; null means H (HF default).</summary>
    public int? NumKeyValueHeadsOverride { get; init; }
    /// <summary>Per-head width; null means D / H (HF default).</summary>
    public long? HeadDimOverride { get; init; }
    /// <summary>Longest position the model supports (<c>max_position_embeddings</c>, GPT-2 <c>n_positions</c>: also the size of its position table).</summary>
    public long MaxPositionEmbeddings { get; init; }
    /// <summary>RMSNorm epsilon (llama/qwen2, HF default 1e-6).</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>LayerNorm epsilon (gpt_neox <c>layer_norm_eps</c>, gpt2 <c>layer_norm_epsilon</c>; 1e-5).</summary>
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>Rotary base θ (<c>rope_theta</c>; gpt_neox <c>rotary_emb_base</c>); 10000.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>Optional rotary frequency scaling (HF <c>rope_type</c> linear, dynamic, yarn or llama3); null is <c>"default"</c>.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Fraction of each head's dims that are rotated (HF <c>partial_rotary_factor</c>, gpt_neox <c>rotary_pct</c>: 0.25 for Pythia; 1 elsewhere).</summary>
    public double RotaryPct { get; init; } = 1.0;
    /// <summary>gpt_neox: x + attn(ln1 x) + mlp(ln2 x) when true, sequential residuals when false.</summary>
    public bool UseParallelResidual { get; init; } = true;
    /// <summary>Whether the LM head reuses the token embedding (no <c>lm_head.weight</c> in the checkpoint).</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Biases on q/k/v/o projections (llama <c>attention_bias</c>; always on for qwen2 q/k/v, gpt_neox and gpt2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Biases on the MLP projections (llama <c>mlp_bias</c>; always on for gpt_neox and gpt2).</summary>
    public bool MlpBias { get; init; }
    /// <summary>MLP activation (<c>hidden_act</c> / <c>activation_function</c>): silu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu.</summary>
    public string HiddenAct { get; init; } = "silu";
    /// <summary>Beginning-of-sequence id, if any.</summary>
    public long? BosTokenId { get; init; }
    /// <summary>End-of-sequence id, if any.</summary>
    public long? EosTokenId { get; init; }
    /// <summary>Padding id, if any.</summary>
    public long? PadTokenId { get; init; }
    /// <summary>HF <c>torch_dtype</c> as written in config.json (e.g. "float32", "bfloat16"), if any.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>Key/value heads (H when not grouped).</summary>
    public int NumKeyValueHeads => NumKeyValueHeadsOverride ?? NumAttentionHeads;
    /// <summary>Per-head width hd.</summary>
    public long HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;
    /// <summary>Rotated dims per head: hd for llama/qwen2, int(hd · rotary_pct) for gpt_neox, 0 for gpt2.</summary>
    public long RotaryDim => Recipe.RotaryDim(this);
    /// <summary>HF <c>model_type</c> string of the family.</summary>
    public string ModelType => ModelTypeOf(Family);
    /// <summary>The family's recipe: names, weights, block structure and config.json keys.</summary>
    public ModelRecipe Recipe => ModelRecipes.Of(Family);

    /// <summary>HF <c>model_type</c> string of a family.</summary>
    public static string ModelTypeOf(ModelFamily family) => ModelRecipes.Of(family).ModelType;

    /// <summary>A Llama config (HF <c>LlamaConfig</c> defaults: silu, rms_norm_eps 1e-6, θ 10000, untied, no biases).</summary>
    public static ModelConfig Llama(long vocabSize, long hiddenSize, long intermediateSize, int layers, int heads, int? kvHeads = null, long maxPositions = 2048) => new()
    {
        Family = ModelFamily.Llama, VocabSize = vocabSize, HiddenSize = hiddenSize, IntermediateSize = intermediateSize,
        NumHiddenLayers = layers, NumAttentionHeads = heads, NumKeyValueHeadsOverride = kvHeads, MaxPositionEmbeddings = maxPositions,
        HiddenAct = "silu", BosTokenId = 1, EosTokenId = 2,
    };

    /// <summary>A Qwen2 config (HF <c>Qwen2Config</c> defaults: as Llama, q/k/v biases, max positions 32768).</summary>
    public static ModelConfig Qwen2(long vocabSize, long hiddenSize, long intermediateSize, int layers, int heads, int? kvHeads = null, long maxPositions = 32768) => new()
    {
        Family = ModelFamily.Qwen2, VocabSize = vocabSize, HiddenSize = hiddenSize, IntermediateSize = intermediateSize,
        NumHiddenLayers = layers, NumAttentionHeads = heads, NumKeyValueHeadsOverride = kvHeads, MaxPositionEmbeddings = maxPositions,
        HiddenAct = "silu", AttentionBias = true,
    };

    /// <summary>A GPT-NeoX (Pythia) config (HF <c>GPTNeoXConfig</c> defaults: gelu, rotary_pct 0.25, parallel residual, untied).</summary>
    public static ModelConfig GptNeox(long vocabSize, long hiddenSize, long intermediateSize, int layers, int heads, long maxPositions = 2048) => new()
    {
        Family = ModelFamily.GptNeox, VocabSize = vocabSize, HiddenSize = hiddenSize, IntermediateSize = intermediateSize,
        NumHiddenLayers = layers, NumAttentionHeads = heads, MaxPositionEmbeddings = maxPositions,
        HiddenAct = "gelu", RotaryPct = 0.25, UseParallelResidual = true, AttentionBias = true, MlpBias = true, BosTokenId = 0, EosTokenId = 2,
    };

    /// <summary>A GPT-2 config (HF <c>GPT2Config</c> defaults: gelu_new, n_inner 4·D, tied embeddings, ids 50256 when V is 50257).</summary>
    public static ModelConfig Gpt2(long vocabSize, long hiddenSize, int layers, int heads, long positions = 1024, long? intermediateSize = null) => new()
    {
        Family = ModelFamily.Gpt2, VocabSize = vocabSize, HiddenSize = hiddenSize, IntermediateSize = intermediateSize ?? 4 * hiddenSize,
        NumHiddenLayers = layers, NumAttentionHeads = heads, MaxPositionEmbeddings = positions, HiddenAct = "gelu_new",
        TieWordEmbeddings = true, AttentionBias = true, MlpBias = true, RotaryPct = 0,
        BosTokenId = vocabSize > 50256 ? 50256 : null, EosTokenId = vocabSize > 50256 ? 50256 : null,
    };

    /// <summary>Every inconsistency in this config (empty when valid), so callers can report all at once.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (VocabSize <= 0) p.Add($"vocab_size must be positive (got {VocabSize})");
        if (HiddenSize <= 0) p.Add($"hidden_size must be positive (got {HiddenSize})");
        if (IntermediateSize <= 0) p.Add($"intermediate_size must be positive (got {IntermediateSize})");
        if (NumHiddenLayers < 0) p.Add($"num_hidden_layers must be non-negative (got {NumHiddenLayers})");
        if (NumAttentionHeads <= 0) p.Add($"num_attention_heads must be positive (got {NumAttentionHeads})");
        else
        {
            if (HeadDimOverride is null && HiddenSize % NumAttentionHeads != 0)
                p.Add($"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
            if (NumKeyValueHeads <= 0 || NumAttentionHeads % NumKeyValueHeads != 0)
                p.Add($"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {NumKeyValueHeads}");
            if (RotaryDim % 2 != 0) p.Add($"rotary dims per head must be even (got {RotaryDim})");
        }
        p.AddRange(Recipe.Problems(this));
        p.AddRange(RopeProblems());
        if (!Activations.IsKnown(HiddenAct)) p.Add($"unsupported hidden_act '{HiddenAct}' (known: {string.Join(", ", Activations.Known)})");
        return p;
    }

    private IEnumerable<string> RopeProblems()
    {
        if (RopeScaling is not { } scaling || NumAttentionHeads <= 0 || RotaryDim == 0) yield break;     // gpt2's recipe reports its own
        if (!(scaling.ScalingFactor > 0)) yield return $"rope scaling factor must be positive (got {scaling.ScalingFactor})";
        switch (scaling)
        {
            case Llama3RopeScaling s when s.HighFreqFactor <= s.LowFreqFactor:
                yield return $"llama3 rope scaling high_freq_factor {s.HighFreqFactor} must exceed low_freq_factor {s.LowFreqFactor}";
                break;
            case Llama3RopeScaling { OriginalMaxPositionEmbeddings: <= 0 } or YarnRopeScaling { OriginalMaxPositionEmbeddings: <= 0 }:
                yield return $"{scaling.RopeType} rope scaling needs original_max_position_embeddings > 0";
                break;
            case DynamicRopeScaling when RotaryDim <= 2:
                yield return $"dynamic rope scaling needs more than 2 rotary dims per head (got {RotaryDim})";
                break;
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem when the config is inconsistent.</summary>
    public ModelConfig Validated()
    {
        var p = Problems();
        if (p.Count > 0) throw new ArgumentException($"invalid {ModelType} config:\n  " + string.Join("\n  ", p));
        return this;
    }
}
