using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Shell.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// PPO's value model (TRL v0.11 PPOv2 <c>value_model</c>): a transformer with a scalar score head, started from the
/// <c>critic</c> role's directory, else the reward model's (TRL's examples build it from the reward model checkpoint), else the
/// policy's initial weights with a fresh score head; trained in its own <see cref="ZeroEngine"/> under the same DeepSpeed
/// settings as the policy. TRL's <c>PolicyAndValueWrapper</c> backpropagates <c>pg + vf_coef · vf</c> once through both
/// models: here one backward over the two engines (<see cref="ZeroEngine.Backward(Tensor, ZeroEngine[])"/>) and a step of
/// each. Unlike TRL's single optimizer, each engine clips its own gradient norm.
/// </summary>
public sealed class Critic : IDisposable
{
    private Critic(ZeroEngine engine, TransformerLayers layers, string source)
    {
        Engine = engine;
        Layers = layers;
        Source = source;
    }

    /// <summary>The trained value model's engine.</summary>
    public ZeroEngine Engine { get; }

    /// <summary>Its layered model (score head).</summary>
    public TransformerLayers Layers { get; }

    /// <summary>Where it started, in words.</summary>
    public string Source { get; }

    /// <summary>Where the configured critic starts, in words (for <c>--dry-run</c>).</summary>
    public static string Describe(RlhfConfig c) =>
        RoleModels.Path(c, ModelRole.Critic) is { } dir ? $"critic.model_args {dir} with its score head"
        : RoleModels.Path(c, ModelRole.Reward) is { } rm ? $"the reward model {rm} (TRL PPOv2), score head kept"
        : "the policy's initial weights with a fresh score head (no reward model named)";

    /// <summary>
    /// The critic of a PPO run: from a directory (<see cref="RoleModels.CriticSource"/>), else from <paramref name="policyInitial"/>
    /// (the policy's weights before training; the caller still owns them) with a fresh score head drawn from <paramref name="seed"/>.
    /// </summary>
    public static Critic Create(RlhfConfig c, ModelWeights policyInitial, ulong seed, Device device, ProcessGroup? group)
    {
        var describe = Describe(c);
        var (engine, layers) = RoleModels.CriticSource(c) is not null
            ? RoleModels.Engine(RoleModels.Settings(c, ModelRole.Critic), ModelHead.Score, c.Engine, seed, device, frozen: false, gradientCheckpointing: false, group)
            : RoleModels.FromWeights(policyInitial, ModelHead.Score, c.Engine, seed, device, frozen: false, gradientCheckpointing: false, group);
        return new Critic(engine, layers, describe);
    }

    /// <summary>
    /// The value head's outputs for the response positions (TRL PPOv2: <c>full_value[:, context_length − 1 : −1]</c>), with the
    /// same attention mask and positions as the policy's forward. With gradients enabled the call is remembered for the engines'
    /// shared backward. promptIds [B, ctx], responses [B, T] → float [B, T] (in the caller's scope).
    /// </summary>
    public Tensor Values(Tensor promptIds, Tensor responses, long pad)
    {
        using var scope = Torch.NewScope();
        var queryResponses = Torch.Cat([promptIds, responses], 1);                           // [B, ctx + T]
        var perToken = Engine.Forward(queryResponses, TransformerLayers.Context(queryResponses.Ne(pad)));   // [B, ctx + T]
        var ctx = promptIds.Size(1);
        return perToken.Slice(1, ctx - 1, ctx - 1 + responses.Size(1)).MoveToOuter();      // [B, T]
    }

    /// <summary>Saves the value model as a Hugging Face directory (<c>…ForSequenceClassification</c>, one label) at <paramref name="dir"/> (a collective).</summary>
    public void Save(string dir)
    {
        using var weights = Layers.GatherWeights(Engine);
        if (Engine.Rank == 0) HfModelDirectory.Save(dir, weights);
    }

    /// <summary>Frees the engine.</summary>
    public void Dispose() => Engine.Dispose();
}
