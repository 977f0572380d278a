using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>MLP activations by their Hugging Face names (<c>transformers.activations.ACT2FN</c>).</summary>
public static class Activations
{
    /// <summary>The names <see cref="Apply"/> accepts.</summary>
    public static readonly IReadOnlyList<string> Known = ["silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu"];

    /// <summary>True when <paramref name="name"/> is a supported activation.</summary>
    public static bool IsKnown(string name) => Known.Contains(name);

    /// <summary>
    /// Applies the named activation element-wise. gelu = x·Φ(x) (erf); gelu_new, gelu_pytorch_tanh and gelu_fast
    /// are the same tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))); silu = x·σ(x).
    /// </summary>
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "silu" or "swish" => x.Silu(),
        "gelu" => x.Gelu(),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x.Gelu(tanhApproximation: true),
        "relu" => x.Relu(),
        _ => throw new ArgumentException($"unsupported activation '{name}' (known: {string.Join(", ", Known)})", nameof(name)),
    };
}
