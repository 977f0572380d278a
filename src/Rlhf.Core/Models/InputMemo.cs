using Rlhf.Torch;

namespace Rlhf.Core.Models;

/// <summary>
/// A one-entry memo of tensors derived from one input tensor of a forward (rotary tables from the positions, the causal
/// mask from the padding mask): every layer of a forward, and consecutive forwards over equal inputs, reuse the entry
/// instead of rebuilding it, as HF's eager code builds its rotary tables and mask once per forward
/// (transformers <c>LlamaModel.forward</c>: <c>position_embeddings = self.rotary_emb(...)</c> before the layer loop).
/// An entry matches when the settings key is equal and the input is equal: by contents for a CPU input (a host copy of
/// [B, T] indices, no device sync needed), by object for a device input (a CUDA copy would synchronise every layer).
/// Keep one instance per thread (<c>[ThreadStatic]</c>): the values are shared by the memo's callers, who must not
/// dispose them; the memo disposes an entry when a different input replaces it (autograd keeps its own references).
/// </summary>
/// <typeparam name="TKey">The settings the values depend on besides the input (dtype, device, frequencies, …).</typeparam>
internal sealed class InputMemo<TKey> where TKey : IEquatable<TKey>
{
    private TKey? key;
    private Tensor? input;               // the input object the entry was built from (device inputs match by identity)
    private long[]? shape;
    private ScalarType dtype;
    private byte[]? contents;            // CPU inputs: their bytes
    private Tensor[] values = [];

    /// <summary>The values for (<paramref name="settings"/>, <paramref name="source"/>), built by <paramref name="build"/> on a miss.</summary>
    public Tensor[] GetOrBuild(TKey settings, Tensor? source, Func<Tensor[]> build)
    {
        if (Matches(settings, source)) return values;
        var built = build();
        foreach (var t in built) t.DetachFromScope();
        foreach (var t in values) t.Dispose();
        key = settings;
        input = source;
        shape = source?.Shape;
        dtype = source?.Dtype ?? default;
        contents = source is not null && source.Device == Device.Cpu ? source.ToBytes() : null;
        values = built;
        return values;
    }

    /// <summary>Frees the entry (a thread that ran forwards calls this before it ends, or its entry outlives it).</summary>
    public void Clear()
    {
        foreach (var t in values) t.Dispose();
        values = [];
        key = default;
        input = null;
        contents = null;
    }

    private bool Matches(TKey settings, Tensor? source)
    {
        if (values.Length == 0 || key is null || !key.Equals(settings) || values.Any(v => v.IsDisposed)) return false;
        if (source is null || input is null) return source is null && input is null;
        if (source.Dtype != dtype || !source.Shape.AsSpan().SequenceEqual(shape)) return false;
        if (source.Device != Device.Cpu) return ReferenceEquals(source, input) && !source.IsDisposed;
        return contents is not null && source.ToBytes().AsSpan().SequenceEqual(contents);
    }
}
