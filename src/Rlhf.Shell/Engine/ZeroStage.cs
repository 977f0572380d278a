namespace Rlhf.Shell.Engine;

/// <summary>ZeRO stage: what is partitioned across data-parallel ranks (DeepSpeed <c>zero_optimization.stage</c>).</summary>
public enum ZeroStage
{
    /// <summary>Everything replicated; gradients all-reduced.</summary>
    Disabled = 0,
    /// <summary>Optimizer state (fp32 masters, Adam moments) partitioned.</summary>
    OptimizerStates = 1,
    /// <summary>… plus gradients.</summary>
    Gradients = 2,
    /// <summary>… plus parameters (gathered per layer just before use).</summary>
    Parameters = 3,
}
