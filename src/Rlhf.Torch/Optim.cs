using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary>Optimizer kernels over lists of tensors, implemented in the shim (one native call per step).</summary>
public static class Optim
{
    /// <summary>
    /// One AdamW step (decoupled weight decay, bias correction; <c>torch.optim.AdamW</c>) in place over
    /// params[i] with grads[i] and moments expAvg[i], expAvgSq[i]. <paramref name="step"/> is 1-based.
    /// A null grad skips its parameter.
    /// </summary>
    public static unsafe void AdamWStep(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor?> grads, IReadOnlyList<Tensor> expAvg, IReadOnlyList<Tensor> expAvgSq,
        double lr, double beta1, double beta2, double eps, double weightDecay, long step)
    {
        var n = parameters.Count;
        if (grads.Count != n || expAvg.Count != n || expAvgSq.Count != n)
            throw new ArgumentException($"AdamW lists differ in length: params {n}, grads {grads.Count}, exp_avg {expAvg.Count}, exp_avg_sq {expAvgSq.Count}");
        var p = Tensor.Handles(parameters);
        var g = Tensor.Handles(grads);
        var m = Tensor.Handles(expAvg);
        var v = Tensor.Handles(expAvgSq);
        // The shim skips undefined grads but needs a non-null pointer per slot; give it a placeholder of its own.
        fixed (nint* pp = p)
        fixed (nint* pg = g)
        fixed (nint* pm = m)
        fixed (nint* pv = v)
        {
            for (var i = 0; i < n; i++)
                if (pg[i] == 0) throw new ArgumentException($"AdamW: grad {i} is null; pass only parameters that have gradients");
            Tensor.Check(N.rt_adamw_step(pp, pg, pm, pv, n, lr, beta1, beta2, eps, weightDecay, step));
        }
        GC.KeepAlive(parameters);
        GC.KeepAlive(grads);
        GC.KeepAlive(expAvg);
        GC.KeepAlive(expAvgSq);
    }

    /// <summary>Σ of squares of every element of every tensor (nulls skipped), accumulated in double.</summary>
    public static unsafe double SumOfSquares(IReadOnlyList<Tensor?> tensors)
    {
        var h = Tensor.Handles(tensors);
        double r;
        fixed (nint* p = h) Tensor.Check(N.rt_sum_squares(p, h.Length, &r));
        GC.KeepAlive(tensors);
        return r;
    }

    /// <summary>Multiplies every tensor in place by <paramref name="factor"/>.</summary>
    public static unsafe void Scale_(IReadOnlyList<Tensor?> tensors, double factor)
    {
        var h = Tensor.Handles(tensors);
        fixed (nint* p = h) Tensor.Check(N.rt_scale_(p, h.Length, factor));
        GC.KeepAlive(tensors);
    }

    /// <summary>Clips the global L2 norm to <paramref name="maxNorm"/> in place; returns the norm before clipping.</summary>
    public static unsafe double ClipGradNorm_(IReadOnlyList<Tensor?> tensors, double maxNorm)
    {
        var h = Tensor.Handles(tensors);
        double r;
        fixed (nint* p = h) Tensor.Check(N.rt_clip_grad_norm_(p, h.Length, maxNorm, &r));
        GC.KeepAlive(tensors);
        return r;
    }
}

/// <summary>AdamW over a fixed list of parameters, owning its moment buffers (<c>torch.optim.AdamW</c>).</summary>
public sealed class AdamW : IDisposable
{
    private readonly Tensor[] parameters;
    private readonly Tensor[] expAvg;
    private readonly Tensor[] expAvgSq;
    private readonly long[] steps;

    /// <summary>Learning rate (schedules set it before each step).</summary>
    public double LearningRate { get; set; }
    /// <summary>β₁, β₂.</summary>
    public (double Beta1, double Beta2) Betas { get; }
    /// <summary>ε added to the denominator.</summary>
    public double Eps { get; }
    /// <summary>Decoupled weight decay.</summary>
    public double WeightDecay { get; }
    /// <summary>Calls to <see cref="Step"/>. Bias correction uses each parameter's own count of updates, as torch does.</summary>
    public long StepCount { get; private set; }

    /// <summary>AdamW with torch's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01).</summary>
    public AdamW(IReadOnlyList<Tensor> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        this.parameters = parameters.ToArray();
        LearningRate = lr;
        Betas = (beta1, beta2);
        Eps = eps;
        WeightDecay = weightDecay;
        expAvg = new Tensor[this.parameters.Length];
        expAvgSq = new Tensor[this.parameters.Length];
        steps = new long[this.parameters.Length];
        for (var i = 0; i < this.parameters.Length; i++)
        {
            expAvg[i] = Torch.ZerosLike(this.parameters[i]).DetachFromScope();
            expAvgSq[i] = Torch.ZerosLike(this.parameters[i]).DetachFromScope();
        }
    }

    /// <summary>The first moments, one per parameter.</summary>
    public IReadOnlyList<Tensor> ExpAvg => expAvg;
    /// <summary>The second moments, one per parameter.</summary>
    public IReadOnlyList<Tensor> ExpAvgSq => expAvgSq;

    /// <summary>Updates every parameter that has a gradient; each one's step count (torch's <c>state['step']</c>)
    /// advances only when it is updated, so a parameter that joins late is bias-corrected from its first update.</summary>
    public void Step()
    {
        using var scope = Torch.NewScope();
        // One native call per distinct step count (normally a single group).
        var groups = new SortedDictionary<long, (List<Tensor> P, List<Tensor?> G, List<Tensor> M, List<Tensor> V)>();
        for (var i = 0; i < parameters.Length; i++)
        {
            var g = parameters[i].Grad;
            if (g is null) continue;
            var step = ++steps[i];
            if (!groups.TryGetValue(step, out var grp)) groups[step] = grp = (new(), new(), new(), new());
            grp.P.Add(parameters[i]);
            grp.G.Add(g);
            grp.M.Add(expAvg[i]);
            grp.V.Add(expAvgSq[i]);
        }
        StepCount++;
        foreach (var (step, grp) in groups)
            Optim.AdamWStep(grp.P, grp.G, grp.M, grp.V, LearningRate, Betas.Beta1, Betas.Beta2, Eps, WeightDecay, step);
    }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.ZeroGrad();
    }

    /// <summary>Frees the moment buffers.</summary>
    public void Dispose()
    {
        foreach (var t in expAvg) t.Dispose();
        foreach (var t in expAvgSq) t.Dispose();
    }
}
