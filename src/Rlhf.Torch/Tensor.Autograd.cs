using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

public sealed partial class Tensor
{
    /// <summary>Sets <see cref="RequiresGrad"/> and returns this.</summary>
    public Tensor RequiresGrad_(bool on = true) { Check(N.rt_requires_grad_(H, on ? 1 : 0)); return this; }

    /// <summary>Back-propagates from this tensor (a scalar unless <paramref name="grad"/> is given).
    /// <paramref name="retainGraph"/> defaults to <paramref name="createGraph"/>, as in torch.</summary>
    public void Backward(Tensor? grad = null, bool? retainGraph = null, bool createGraph = false) =>
        Check(N.rt_backward(H, Opt(grad), (retainGraph ?? createGraph) ? 1 : 0, createGraph ? 1 : 0));

    /// <summary>The accumulated gradient, or null when there is none. Each read returns a new handle.</summary>
    public unsafe Tensor? Grad
    {
        get
        {
            nint g;
            Check(N.rt_grad(H, &g));
            return g == 0 ? null : new Tensor(g);
        }
        set => Check(N.rt_set_grad(H, Opt(value)));
    }

    /// <summary>Clears the gradient: sets it to none (default) or zeroes it in place.</summary>
    public void ZeroGrad(bool setToNone = true) => Check(N.rt_zero_grad(H, setToNone ? 1 : 0));

    /// <summary>Keeps the gradient of a non-leaf tensor after backward.</summary>
    public Tensor RetainGrad() { Check(N.rt_retain_grad(H)); return this; }
}
