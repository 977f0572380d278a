using Rlhf.Shell.Engine;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Engine.Worker;

using Torch = Rlhf.Torch.Torch;

/// <summary>A float64 MLP for the reference scenario: in(5) → 7 (tanh, bias) → 3 logits (bias); 66 elements (padding at every stage).</summary>
internal sealed class Mlp64 : ILayeredModel
{
    public IReadOnlyList<ILayer> Layers { get; } =
    [
        new TestLayer("hidden", [new("weight", [7, 5]), new("bias", [7])], (p, x) => Functional.Linear(x, p[0], p[1]).Tanh(), 0.5),
        new TestLayer("out", [new("weight", [3, 7]), new("bias", [3])], (p, x) => Functional.Linear(x, p[0], p[1]), 0.5),
    ];
}

internal static partial class Scenarios
{
    private const double RefClip = 0.05;
    private const int RefSteps = 3, RefMicro = 3, RefGas = 2;

    /// <summary>
    /// The engine's learning rate of optimizer steps 1–3 under WarmupLR (min 0.01, max 0.05, 3 linear warm-up steps), worked
    /// out by hand from DeepSpeed v0.16's lr_schedules.py: step 1 runs with warmup_min_lr (set at construction), step k ≥ 2
    /// with iteration k − 2: min + (max − min) · (k − 2) / 3.
    /// </summary>
    private static readonly double[] RefLearningRates = [0.01, 0.01, 0.01 + 0.04 / 3];

    /// <summary>
    /// For every stage in <c>runs</c> (s0…s3): 3 optimizer steps of a float64 engine (2 micro-batches each, clipping at
    /// 0.05, WarmupLR) against plain autograd over the whole global batch plus a hand-written global-norm clip (DeepSpeed:
    /// clip = max(1, (norm + 1e-6) / max_norm), grad /= clip) and a hand-written AdamW step (torch.optim.AdamW). Every
    /// rank computes the reference itself; rank 0 writes the largest difference, how far the weights moved, and the norms.
    /// </summary>
    private static int Reference(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var results = new Dictionary<string, object>();
        foreach (var run in kv["runs"].Split(','))
        {
            using var scope = Torch.NewScope();
            var stage = run[1] - '0';
            var settings = EngineSettings(stage, RefMicro, RefGas, ws, clip: RefClip, lr: 0.05, persistence: stage == 3 ? 8 : 0, reduceBucket: 20,
                extra: "scheduler: {type: WarmupLR, params: {warmup_min_lr: 0.01, warmup_max_lr: 0.05, warmup_num_steps: 3, warmup_type: linear}}");
            using var e = new ZeroEngine(new Mlp64(), settings, pg, seed: 3, gradientCheckpointing: !run.Contains("-nogc"), device: null, trainable: true, parameterDtype: ScalarType.Float64);
            var wd = DeepSpeedConfig.AdamW(settings).WeightDecay;
            var global = RefMicro * RefGas * ws;
            using var g = new Generator(99);
            var x = Torch.Randn([RefSteps * global, 5], g, ScalarType.Float64);
            var y = Torch.Randint(0, 3, [RefSteps * global], g);

            var names = e.ParameterNames;
            var initial = e.GatherFullWeights(ScalarType.Float64);
            var shapes = initial.Select(kvp => kvp.Value.Shape).ToArray();
            var w = initial.Select(kvp => kvp.Value.Reshape(-1).ToArray<double>()).ToArray();
            var start = w.Select(a => (double[])a.Clone()).ToArray();
            var m = w.Select(a => new double[a.Length]).ToArray();
            var v = w.Select(a => new double[a.Length]).ToArray();
            var norms = new List<double>();
            double maxNormDiff = 0;

            for (var step = 0; step < RefSteps; step++)
            {
                // engine: micro-batch k of rank r is rows [(step·global) + (k·ws + r)·micro, +micro)
                for (var k = 0; k < RefGas; k++)
                {
                    using var s = Torch.NewScope();
                    var rows = step * global + (k * ws + e.Rank) * RefMicro;
                    var loss = Functional.CrossEntropy(e.Forward(x.Narrow(0, rows, RefMicro)), y.Narrow(0, rows, RefMicro));
                    e.Backward(loss);
                    e.Step();
                }

                // reference: plain autograd of the mean over the whole global batch's micro-batches
                double[][] grads;
                using (var s = Torch.NewScope())
                {
                    var leaves = w.Select((a, j) => Torch.From(a, shapes[j]).RequiresGrad_(true)).ToArray();
                    Tensor? total = null;
                    for (var mbi = 0; mbi < RefGas * ws; mbi++)
                    {
                        var rows = step * global + mbi * RefMicro;
                        var xb = x.Narrow(0, rows, RefMicro);
                        var h = Functional.Linear(xb, leaves[0], leaves[1]).Tanh();
                        var logits = Functional.Linear(h, leaves[2], leaves[3]);
                        var l = Functional.CrossEntropy(logits, y.Narrow(0, rows, RefMicro)) * (1.0 / (RefGas * ws));
                        total = total is null ? l : total + l;
                    }
                    total!.Backward();
                    grads = leaves.Select(t => t.Grad!.Reshape(-1).ToArray<double>()).ToArray();
                }
                var norm = Math.Sqrt(grads.Sum(a => a.Sum(x => x * x)));
                norms.Add(norm);
                maxNormDiff = Math.Max(maxNormDiff, Math.Abs(norm - e.LastGradNorm) / norm);
                var clip = Math.Max(1.0, (norm + 1e-6) / RefClip);
                var lr = RefLearningRates[step];
                const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
                var t = step + 1;
                for (var j = 0; j < w.Length; j++)
                    for (var i = 0; i < w[j].Length; i++)
                    {
                        var gi = clip > 1 ? grads[j][i] / clip : grads[j][i];
                        w[j][i] *= 1 - lr * wd;
                        m[j][i] = b1 * m[j][i] + (1 - b1) * gi;
                        v[j][i] = b2 * v[j][i] + (1 - b2) * gi * gi;
                        var mHat = m[j][i] / (1 - Math.Pow(b1, t));
                        var vHat = v[j][i] / (1 - Math.Pow(b2, t));
                        w[j][i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
                    }
                Expect(Math.Abs(e.LastLearningRate - lr) <= 1e-15, $"{run}: engine lr {e.LastLearningRate} at step {t}, hand-computed {lr}");
            }

            var final = e.GatherFullWeights(ScalarType.Float64).Select(kvp => kvp.Value.Reshape(-1).ToArray<double>()).ToArray();
            double maxDiff = 0, moved = 0;
            for (var j = 0; j < w.Length; j++)
                for (var i = 0; i < w[j].Length; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(final[j][i] - w[j][i]));
                    moved = Math.Max(moved, Math.Abs(final[j][i] - start[j][i]));
                }
            Console.WriteLine($"{run}: max |engine − reference| = {maxDiff:E2}, weights moved up to {moved:E2}, norms [{string.Join(", ", norms.Select(n => n.ToString("G4")))}]");
            results[run] = new { max_diff = maxDiff, moved, norms, max_norm_rel_diff = maxNormDiff, clip = RefClip, parameters = names.Count };
        }
        WriteResult(pg, kv, results);
        Console.WriteLine($"OK reference rank {pg?.Rank ?? 0}");
        return 0;
    }
}
