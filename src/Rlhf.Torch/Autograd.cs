using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary><c>torch.autograd</c>: gradients of outputs with respect to chosen inputs.</summary>
public static class Autograd
{
    /// <summary>
    /// Σ_i d outputs[i] · gradOutputs[i] / d inputs[j] for each input (<c>torch.autograd.grad</c>).
    /// An input that does not influence the outputs gives null when <paramref name="allowUnused"/>.
    /// <paramref name="retainGraph"/> defaults to <paramref name="createGraph"/>, as in torch.
    /// </summary>
    public static unsafe Tensor?[] Grad(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor>? gradOutputs = null,
        bool? retainGraph = null, bool createGraph = false, bool allowUnused = false)
    {
        if (gradOutputs is not null && gradOutputs.Count != outputs.Count)
            throw new ArgumentException($"autograd.grad: {outputs.Count} outputs but {gradOutputs.Count} gradOutputs; give one per output", nameof(gradOutputs));
        var o = Tensor.Handles(outputs);
        var i = Tensor.Handles(inputs);
        var g = gradOutputs is null ? null : Tensor.Handles(gradOutputs);
        var res = new nint[i.Length];
        fixed (nint* po = o)
        fixed (nint* pi = i)
        fixed (nint* pg = g)
        fixed (nint* pr = res)
            Tensor.Check(N.rt_autograd_grad(po, o.Length, pi, i.Length, pg, (retainGraph ?? createGraph) ? 1 : 0, createGraph ? 1 : 0, allowUnused ? 1 : 0, pr));
        GC.KeepAlive(outputs);
        GC.KeepAlive(inputs);
        GC.KeepAlive(gradOutputs);
        var r = new Tensor?[res.Length];
        for (var k = 0; k < res.Length; k++) r[k] = res[k] == 0 ? null : new Tensor(res[k]);
        return r;
    }
}
