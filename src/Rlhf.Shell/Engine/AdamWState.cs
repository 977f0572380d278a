using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>AdamW's hyperparameters (torch.optim.AdamW; DeepSpeed's <c>optimizer.params</c>).</summary>
/// <param name="Lr">Base learning rate (the schedule may replace it per step).</param>
/// <param name="Beta1">β1.</param>
/// <param name="Beta2">β2.</param>
/// <param name="Eps">ε.</param>
/// <param name="WeightDecay">Decoupled weight decay.</param>
public readonly record struct AdamW(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay);

/// <summary>
/// The optimizer state of the elements a rank owns: the master copy (fp32, or a view of the working parameters when
/// they already are the masters) and Adam's two moments, on the optimizer device (the CPU with
/// <c>offload_optimizer</c>). Frozen engines have none.
/// </summary>
internal sealed class AdamWState : IDisposable
{
    private readonly PartitionedState state;

    /// <summary>Creates the masters from the owned working parameters and zero moments.</summary>
    public AdamWState(PartitionedState state, Device device)
    {
        this.state = state;
        Device = device;
        var owned = state.OwnedParameters();
        var masterDtype = state.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        IsSeparate = state.Dtype != masterDtype || device != state.Device;
        Master = (IsSeparate ? owned.To(masterDtype).To(device).Clone() : owned).DetachFromScope();
        if (IsSeparate) owned.Dispose();
        ExpAvg = Torch.Zeros([state.Layout.OwnedLength], masterDtype, device).DetachFromScope();
        ExpAvgSq = Torch.Zeros([state.Layout.OwnedLength], masterDtype, device).DetachFromScope();
    }

    /// <summary>Where the state lives.</summary>
    public Device Device { get; }
    /// <summary>Owned master weights [owned].</summary>
    public Tensor Master { get; }
    /// <summary>Adam's first moment [owned].</summary>
    public Tensor ExpAvg { get; }
    /// <summary>Adam's second moment [owned].</summary>
    public Tensor ExpAvgSq { get; }
    /// <summary>True when the masters are a copy (bf16 parameters, or offloaded), false when they are the working parameters.</summary>
    public bool IsSeparate { get; }

    /// <summary>Bytes of optimizer state: separate masters plus both moments.</summary>
    public long Bytes => (IsSeparate ? Master.NumBytes : 0) + ExpAvg.NumBytes + ExpAvgSq.NumBytes;

    /// <summary>The owned gradients [owned] in the masters' dtype and on their device.</summary>
    public Tensor Cast(Tensor ownedGrads) =>
        ownedGrads.Dtype == Master.Dtype && ownedGrads.Device == Device ? ownedGrads : ownedGrads.To(Master.Dtype).To(Device);

    /// <summary>One AdamW step (number <paramref name="step"/>, from 1) of the masters, then the write-back into the working parameters.</summary>
    public void Step(Tensor grads, double lr, double beta1, double beta2, AdamW hp, long step)
    {
        Optim.AdamWStep([Master], [grads], [ExpAvg], [ExpAvgSq], lr, beta1, beta2, hp.Eps, hp.WeightDecay, step);
        if (IsSeparate) state.OwnedParameters().Copy_(Master);
    }

    /// <summary>Replaces the owned elements from full per-parameter tensors (masters and moments, layout order).</summary>
    public void Load(IEnumerable<OwnedPiece> pieces, IReadOnlyList<Tensor> masters, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v)
    {
        using var scope = Torch.NewScope();
        foreach (var piece in pieces)
        {
            Master.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(masters[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
            ExpAvg.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(m[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
            ExpAvgSq.Narrow(0, piece.OwnedOffset, piece.Length).Copy_(v[piece.Param].Reshape(-1).Narrow(0, piece.ParamOffset, piece.Length));
        }
    }

    /// <summary>Releases the buffers (a master that is a view releases only its handle).</summary>
    public void Dispose()
    {
        Master.Dispose();
        ExpAvg.Dispose();
        ExpAvgSq.Dispose();
    }
}
