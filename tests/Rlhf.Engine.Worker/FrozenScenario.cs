using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Engine.Worker;

using Torch = Rlhf.Torch.Torch;

internal static partial class Scenarios
{
    /// <summary>
    /// Frozen engines at every stage in <c>runs</c>: the same seed gives the trainable engine's forward exactly, with gradients
    /// enabled the output carries no graph, and the engine holds parameters only (no gradient buffers, no optimizer state);
    /// at stage 3 parameters are still gathered per layer. Rank 0 writes what it measured.
    /// </summary>
    private static int FrozenRun(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var data = Dataset();
        var results = new Dictionary<string, object>();
        foreach (var run in kv["runs"].Split(','))
        {
            using var scope = Torch.NewScope();
            var stage = run[1] - '0';
            using var trainable = Engine(TestMlp.Medium(), pg, stage, false, false, 4 / ws, 1, false, persistence: 100);
            using var frozen = ZeroEngine.Frozen(TestMlp.Medium(), trainable.Settings, pg, seed: 42);
            frozen.ResetPeakMemory();
            var x = data.X.Narrow(0, 4 * (pg?.Rank ?? 0), 4);
            float[] expected;
            using (Torch.NoGrad()) expected = trainable.Forward(x).Reshape(-1).ToArray<float>();
            var output = frozen.Forward(x); // gradients enabled: a frozen engine still records nothing
            var got = output.Reshape(-1).ToArray<float>();
            var maxDiff = expected.Zip(got, (a, b) => (double)Math.Abs(a - b)).Max();
            var backwardRefused = false;
            try { frozen.Backward(output.Sum()); }
            catch (InvalidOperationException) { backwardRefused = true; }
            var m = frozen.Memory;
            var metrics = frozen.Metrics();
            results[run] = new
            {
                max_diff = maxDiff,
                requires_grad = output.RequiresGrad,
                backward_refused = backwardRefused,
                parameters = m.ParameterBytes, gradients = m.GradientBytes, optimizer = m.OptimizerBytes,
                trainable_parameters = trainable.Memory.ParameterBytes,
                peak_gathered = m.PeakGatheredParameterBytes, persistent = m.PersistentParameterBytes,
                full_bytes = trainable.Layout.Total * 4,
                metric_keys = metrics.Keys.Order().ToArray(),
            };
        }
        WriteResult(pg, kv, results);
        Console.WriteLine($"OK frozen rank {pg?.Rank ?? 0}");
        return 0;
    }
}
