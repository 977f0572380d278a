using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The layer-wise backward: per-layer activation checkpointing as in torch.utils.checkpoint and DeepSpeed's
/// ZeRO-3 (deepspeed/runtime/zero/stage3.py, v0.16) — each remembered forward is replayed layer by layer in
/// reverse with the same context, its parameters materialised again (gathered again at stage 3), and each layer's
/// parameter gradients are handed to the partitioned state as soon as they exist.
/// </summary>
internal sealed partial class LayerRunner
{
    /// <summary>
    /// After the caller's backward reached the outputs: recompute each checkpointed forward layer by layer in reverse
    /// (or read the leaves' gradients of a full-graph forward) and accumulate each layer's gradients.
    /// </summary>
    public void Backward()
    {
        for (var f = pending.Count - 1; f >= 0; f--)
        {
            var rec = pending[f];
            try
            {
                if (rec.Leaves is not null)
                {
                    for (var i = model.Layers.Count - 1; i >= 0; i--)
                    {
                        using var scope = Torch.NewScope();
                        Accumulate(i, rec.Leaves[i].Select(p => p.Grad).ToArray());
                    }
                    continue;
                }
                var g = rec.Output!.Grad?.DetachFromScope();
                if (g is null) continue; // this output did not reach the loss
                for (var i = model.Layers.Count - 1; i >= 0; i--)
                {
                    Tensor? gNext = null;
                    using (var scope = Torch.NewScope())
                    using (Torch.GradEnabled(true))
                    {
                        var (ps, gathered) = Materialize(i, leaves: true);
                        var x = rec.Inputs![i];
                        var needInputGrad = i > 0 && x.Dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64;
                        var xr = needInputGrad ? x.Detach().RequiresGrad_(true) : x;
                        var y = model.Layers[i].Forward(ps, xr, rec.Context);
                        y.Backward(g);
                        if (needInputGrad) gNext = xr.Grad?.DetachFromScope();
                        Accumulate(i, ps.Select(p => p.Grad).ToArray());
                        state.Released(gathered);
                    }
                    g.Dispose();
                    if (gNext is null) break;
                    g = gNext;
                }
                g?.Dispose();
            }
            finally { rec.Dispose(); }
        }
        pending.Clear();
    }

    /// <summary>Hands layer <paramref name="i"/>'s gradients (own parameters, then shared ones, as <see cref="Materialize"/> ordered them) to the state.</summary>
    private void Accumulate(int i, Tensor?[] grads)
    {
        using var noGrad = Torch.NoGrad();
        var own = model.Layers[i].Parameters.Count;
        var shared = layerShared[i].Select((j, k) => (j, grads[own + k])).ToArray();
        state.AccumulateLayer(layerFirstParam[i], grads.Take(own).ToArray(), shared);
    }
}
