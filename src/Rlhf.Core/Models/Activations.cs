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
    /// Exact gelu 0.5·x·(1 + erf(x/√2)), composed from elementwise ops: Debian's libtorch 1.13 routes float32
    /// <c>at::gelu(x, "none")</c> through oneDNN, which fails an internal allocator assertion on this build.
    /// </summary>
    public static Tensor GeluErf(Tensor x)
    {
        using var scope = Rlhf.Torch.Torch.NewScope();
        return (x * ((x * (1 / Math.Sqrt(2))).Erf() + 1) * 0.5).MoveToOuter();
    }

    /// <summary>
    /// Applies the named activation element-wise. gelu = x·Φ(x) (erf); gelu_new, gelu_pytorch_tanh and gelu_fast
    /// are the same tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))); silu = x·σ(x).
    /// </summary>
    public static Tensor Apply(string name, Tensor x) => name switch
    {
        "silu" or "swish" => x.Silu(),
        "gelu" => GeluErf(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x.Gelu(tanhApproximation: true),
        "relu" => x.Relu(),
        _ => throw new ArgumentException($"unsupported activation '{name}' (known: {string.Join(", ", Known)})", nameof(name)),
    };
}
