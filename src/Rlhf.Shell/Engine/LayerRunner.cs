using Rlhf.Torch;

namespace Rlhf.Shell.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Runs an <see cref="ILayeredModel"/> layer by layer over a <see cref="PartitionedState"/>: each layer receives its
/// own parameters, then the ones it shares with other layers (tied weights), as the state materialises them (views at
/// stages 0–2, gathered per layer at stage 3). The forward half is here; the backward half, which recomputes
/// checkpointed layers and hands their gradients to the state, is in LayerwiseBackward.cs.
/// </summary>
internal sealed partial class LayerRunner : IDisposable
{
    private readonly ILayeredModel model;
    private readonly PartitionedState state;
    private readonly bool checkpointing;
    private readonly int[] layerFirstParam;     // global index of each layer's first parameter
    private readonly int[][] layerShared;       // global indices of the parameters each layer reads from other layers
    private readonly List<PendingForward> pending = [];

    public LayerRunner(ILayeredModel model, PartitionedState state, int[] layerFirstParam, int[][] layerShared, bool checkpointing)
    {
        this.model = model;
        this.state = state;
        this.layerFirstParam = layerFirstParam;
        this.layerShared = layerShared;
        this.checkpointing = checkpointing;
    }

    /// <summary>True while forwards wait for their backward.</summary>
    public bool HasPending => pending.Count > 0;

    /// <summary>
    /// Lays out <paramref name="model"/>'s parameters (own ones per layer, in order) and resolves every layer's shared
    /// parameter names to global indices; throws for duplicate, unknown or self-shared names.
    /// </summary>
    public static (List<(string Name, long[] Shape)> Specs, int[] First, int[][] Shared) Plan(ILayeredModel model)
    {
        var specs = new List<(string Name, long[] Shape)>();
        var first = new int[model.Layers.Count];
        foreach (var (layer, i) in model.Layers.Select((l, i) => (l, i)))
        {
            first[i] = specs.Count;
            foreach (var p in layer.Parameters) specs.Add((layer.QualifiedName(p), p.Shape));
        }
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var j = 0; j < specs.Count; j++)
            if (!index.TryAdd(specs[j].Name, j)) throw new ArgumentException($"parameter name '{specs[j].Name}' is declared twice", nameof(model));
        var shared = model.Layers.Select((layer, i) => layer.SharedParameters.Select(name =>
        {
            if (!index.TryGetValue(name, out var j)) throw new ArgumentException($"layer {layer.Name} shares parameter '{name}', which no layer declares", nameof(model));
            if (j >= first[i] && j < first[i] + layer.Parameters.Count) throw new ArgumentException($"layer {layer.Name} shares its own parameter '{name}'", nameof(model));
            return j;
        }).ToArray()).ToArray();
        foreach (var (s, i) in shared.Select((s, i) => (s, i)))
            if (s.Distinct().Count() != s.Length) throw new ArgumentException($"layer {model.Layers[i].Name} lists a shared parameter twice", nameof(model));
        return (specs, first, shared);
    }

    /// <summary>
    /// The parameters of layer <paramref name="i"/> (its own, then the shared ones) for its forward; with
    /// <paramref name="leaves"/> each is a new autograd leaf sharing the storage. Returns the bytes gathered.
    /// </summary>
    private (Tensor[] Params, long Gathered) Materialize(int i, bool leaves)
    {
        var own = model.Layers[i].Parameters.Count;
        var r = new Tensor[own + layerShared[i].Length];
        long gathered = 0;
        for (var k = 0; k < r.Length; k++)
        {
            var t = state.Parameter(k < own ? layerFirstParam[i] + k : layerShared[i][k - own], out var g);
            gathered += g;
            r[k] = leaves ? t.Detach().RequiresGrad_(true) : t;
        }
        return (r, gathered);
    }

    /// <summary>What a training forward left for its backward.</summary>
    private sealed class PendingForward : IDisposable
    {
        public Tensor[]? Inputs;      // checkpointed: each layer's input (owned handles)
        public Tensor? Output;        // checkpointed: the leaf whose grad starts the recomputation
        public Tensor[][]? Leaves;    // not checkpointed: each layer's parameter leaves
        public LayerContext? Context; // checkpointed: the runner's handles on the forward's context, reused by the recomputation

        public void Dispose()
        {
            Context?.Release();
            if (Inputs is not null) foreach (var t in Inputs) t?.Dispose();
            Output?.Dispose();
            if (Leaves is not null) foreach (var l in Leaves) foreach (var t in l) t.Dispose();
        }
    }

    /// <summary>
    /// Runs the model on <paramref name="input"/>. With <paramref name="training"/> the call is remembered for the
    /// backward: checkpointed, only each layer's input and the context are kept; otherwise the whole graph is.
    /// </summary>
    public Tensor Forward(Tensor input, LayerContext? context, bool training)
    {
        if (training && !checkpointing) return ForwardWithGraph(input, context);
        var rec = training ? new PendingForward { Inputs = new Tensor[model.Layers.Count], Context = context?.Retain() } : null;
        var x = input;
        using (Torch.NoGrad())
            for (var i = 0; i < model.Layers.Count; i++)
            {
                if (rec is not null) rec.Inputs![i] = (i == 0 ? x.Detach() : x).DetachFromScope();
                Tensor y;
                using (var scope = Torch.NewScope())
                {
                    var (ps, gathered) = Materialize(i, leaves: false);
                    y = model.Layers[i].Forward(ps, x, context).MoveToOuter();
                    state.Released(gathered);
                }
                if (rec is null && i > 0) x.Dispose();
                x = y;
            }
        if (rec is null) return x;
        rec.Output = x.Detach().RequiresGrad_(true).DetachFromScope();
        pending.Add(rec);
        return rec.Output.View(rec.Output.Shape); // a view: the caller's scope may dispose it, the leaf stays ours
    }

    private Tensor ForwardWithGraph(Tensor input, LayerContext? context)
    {
        var rec = new PendingForward { Leaves = new Tensor[model.Layers.Count][] };
        var x = input;
        for (var i = 0; i < model.Layers.Count; i++)
        {
            var (ps, _) = Materialize(i, leaves: true);
            foreach (var p in ps) p.DetachFromScope();
            rec.Leaves[i] = ps;
            x = model.Layers[i].Forward(ps, x, context);
        }
        pending.Add(rec);
        return x;
    }

    /// <summary>Forgets every remembered forward.</summary>
    public void Dispose()
    {
        foreach (var p in pending) p.Dispose();
        pending.Clear();
    }
}
