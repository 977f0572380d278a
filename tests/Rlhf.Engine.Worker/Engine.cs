using System.Text.Json;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Engine.Worker;

using Torch = Rlhf.Torch.Torch;

/// <summary>A layer of the test MLP: its specs, a pure forward, a seeded initialiser.</summary>
internal sealed class TestLayer(string name, ParamSpec[] specs, Func<IReadOnlyList<Tensor>, Tensor, Tensor> forward, double std) : ILayer
{
    public string Name => name;
    public IReadOnlyList<ParamSpec> Parameters => specs;
    public Tensor Forward(IReadOnlyList<Tensor> p, Tensor x, LayerContext? context) => forward(p, x);
    public Tensor[] Initialize(Generator g) => specs.Select(s => Torch.Randn(s.Shape, g) * std).ToArray();
}

/// <summary>
/// The test model: in(12) → h1 (tanh, with a scalar gain) → h2 (tanh) → classes (no bias). With h1 = 4,
/// h2 = 8 the first layer has 53 elements and the model 117 (odd: padding is exercised at every stage).
/// </summary>
internal sealed class TestMlp(int inDim, int h1, int h2, int classes) : ILayeredModel
{
    public IReadOnlyList<ILayer> Layers { get; } =
    [
        new TestLayer("in", [new("weight", [h1, inDim]), new("bias", [h1]), new("gain", [1])],
            (p, x) => (Functional.Linear(x.To(p[0].Dtype), p[0], p[1]) * p[2]).Tanh(), 0.5),
        new TestLayer("mid", [new("weight", [h2, h1]), new("bias", [h2])],
            (p, x) => Functional.Linear(x, p[0], p[1]).Tanh(), 0.5),
        new TestLayer("head", [new("weight", [classes, h2])],
            (p, x) => Functional.Linear(x, p[0]), 0.5),
    ];

    public static TestMlp Tiny() => new(12, 4, 8, 3);
    public static TestMlp Medium() => new(12, 61, 97, 3);
}

internal static partial class Scenarios
{
    private const int InDim = 12, Classes = 3, Samples = 96;

    private static string N(double x) => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Engine settings as a user writes them (bound and resolved by the real binder at world size <paramref name="ws"/>).</summary>
    internal static DeepSpeedSettings EngineSettings(int stage, int mb, int gas, int ws, double clip, double lr, long persistence, long reduceBucket,
        bool bf16 = false, bool offload = false, string extra = "") =>
        DeepSpeedConfig.Parse($$"""
            train_micro_batch_size_per_gpu: {{mb}}
            gradient_accumulation_steps: {{gas}}
            gradient_clipping: {{N(clip)}}
            bf16: {enabled: {{(bf16 ? "true" : "false")}}}
            optimizer: {type: AdamW, params: {lr: {{N(lr)}}, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0.01} }
            zero_optimization: {stage: {{stage}}, offload_optimizer: {device: {{(offload ? "cpu" : "none")}}}, stage3_param_persistence_threshold: {{persistence}}, reduce_bucket_size: {{reduceBucket}} }
            {{extra}}
            """, worldSize: ws);

    /// <summary>The MLP scenarios' engine: clipping 0.3, AdamW lr 0.05, WarmupDecayLR (3 warm-up of 12), several gradient buckets even for the tiny model.</summary>
    private static ZeroEngine Engine(ILayeredModel model, ProcessGroup? pg, int stage, bool bf16, bool offload, int mb, int gas, bool noGc, long persistence = 10, ulong seed = 42) =>
        new(model, EngineSettings(stage, mb, gas, pg?.Size ?? 1, clip: 0.3, lr: 0.05, persistence, reduceBucket: 50, bf16, offload,
                extra: "scheduler: {type: WarmupDecayLR, params: {warmup_min_lr: 0.0, warmup_max_lr: 0.05, warmup_num_steps: 3, total_num_steps: 12}}"),
            pg, seed, gradientCheckpointing: !noGc);

    private static (Tensor X, Tensor Y) Dataset()
    {
        using var g = new Generator(1234);
        var x = Torch.Randn([Samples, InDim], g).DetachFromScope();
        var y = Torch.Randint(0, Classes, [Samples], g).DetachFromScope();
        return (x, y);
    }

    /// <summary>The micro-batch rank r uses at micro-step k of global step s: the global batch is the same set at every world size.</summary>
    private static long SampleStart(ZeroEngine e, long step, int k) =>
        (step * e.TrainBatchSize + ((long)k * e.WorldSize + e.Rank) * e.MicroBatchPerGpu) % Samples;

    /// <summary>Trains <paramref name="steps"/> optimizer steps; returns the rank-mean loss of each.</summary>
    private static List<double> Train(ZeroEngine e, (Tensor X, Tensor Y) data, int steps)
    {
        var losses = new List<double>();
        for (var s = 0; s < steps; s++)
        {
            var step = e.GlobalSteps;
            double sum = 0;
            for (var k = 0; k < e.GradientAccumulationSteps; k++)
            {
                using var scope = Torch.NewScope();
                var start = SampleStart(e, step, k);
                var x = data.X.Narrow(0, start, e.MicroBatchPerGpu);
                var y = data.Y.Narrow(0, start, e.MicroBatchPerGpu);
                var loss = Functional.CrossEntropy(e.Forward(x).Float(), y);
                sum += loss.Item();
                e.Backward(loss);
                e.Step();
            }
            losses.Add(e.AllReduceMean(sum / e.GradientAccumulationSteps));
        }
        return losses;
    }

    /// <summary>Two engines on one shared loss (PPO's policy + value): CE of the first plus ½·MSE of the second against a target.</summary>
    private static List<double> TrainShared(ZeroEngine a, ZeroEngine b, (Tensor X, Tensor Y) data, int steps)
    {
        var losses = new List<double>();
        for (var s = 0; s < steps; s++)
        {
            var step = a.GlobalSteps;
            double sum = 0;
            for (var k = 0; k < a.GradientAccumulationSteps; k++)
            {
                using var scope = Torch.NewScope();
                var start = SampleStart(a, step, k);
                var x = data.X.Narrow(0, start, a.MicroBatchPerGpu);
                var y = data.Y.Narrow(0, start, a.MicroBatchPerGpu);
                var la = Functional.CrossEntropy(a.Forward(x).Float(), y);
                var lb = Functional.MseLoss(b.Forward(x).Float(), y.Float().Unsqueeze(1).Expand(-1, Classes));
                var loss = la + lb * 0.5;
                sum += loss.Item();
                ZeroEngine.Backward(loss, a, b);
                a.Step();
                b.Step();
            }
            losses.Add(a.AllReduceMean(sum / a.GradientAccumulationSteps));
        }
        return losses;
    }

    private static Dictionary<string, float[]> Weights(ZeroEngine e)
    {
        using var scope = Torch.NewScope();
        return e.GatherFullWeights().ToDictionary(kv => kv.Key, kv => kv.Value.Reshape(-1).ToArray<float>());
    }

    private static ProcessGroup? Group(TimeSpan timeout)
    {
        var env = DistributedEnvironment.FromProcess();
        return env.IsSingle ? null : env.InitProcessGroup(timeout);
    }

    private static void WriteResult(ProcessGroup? pg, Dictionary<string, string> kv, object result)
    {
        if ((pg?.Rank ?? 0) == 0 && kv.TryGetValue("out", out var path))
            File.WriteAllText(path, JsonSerializer.Serialize(result));
    }

    /// <summary>Equivalence runs: every configuration listed in <c>runs</c>, each from the same seed, 10 steps.</summary>
    private static int Equivalence(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var steps = int.Parse(kv.GetValueOrDefault("steps", "10"));
        var data = Dataset();
        var results = new Dictionary<string, object>();
        foreach (var run in kv["runs"].Split(','))
        {
            // name: s<stage>[-offload][-nogc][-gas2][-bf16] or shared
            var stage = run.StartsWith('s') && run.Length > 1 && char.IsDigit(run[1]) ? run[1] - '0' : 0;
            var gas = run.Contains("-gas2") ? 2 : 1;
            var mb = 4 / ws / gas;
            if (run == "shared")
            {
                using var a = Engine(TestMlp.Tiny(), pg, 3, false, false, mb, gas, false);
                using var b = Engine(TestMlp.Tiny(), pg, 1, false, false, mb, gas, false, seed: 7);
                if (ws == 1) { /* the single-process reference runs the same two models at stage 0 */ }
                var l = TrainShared(a, b, data, steps);
                results[run] = new { losses = l, weights = Weights(a), weights2 = Weights(b) };
                continue;
            }
            using var e = Engine(TestMlp.Tiny(), pg, stage, run.Contains("-bf16"), run.Contains("-offload"), mb, gas, run.Contains("-nogc"));
            var initial = Weights(e);
            var losses = Train(e, data, steps);
            results[run] = new { losses, weights = Weights(e), initial };
        }
        WriteResult(pg, kv, results);
        Console.WriteLine($"OK equivalence rank {pg?.Rank ?? 0}");
        return 0;
    }

    /// <summary>Per-rank model-state bytes of every stage in fp32 and bf16 after one step of the medium model.</summary>
    private static int Memory(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var data = Dataset();
        var results = new Dictionary<string, object>();
        var persistence = long.Parse(kv.GetValueOrDefault("persistence", "100"));
        var perRank = new List<object>();
        foreach (var bf16 in new[] { false, true })
            for (var stage = 0; stage <= 3; stage++)
            {
                using var e = Engine(TestMlp.Medium(), pg, stage, bf16, false, 2, 1, false, persistence);
                e.ResetPeakMemory();
                Train(e, data, 1);
                var m = e.Memory;
                results[$"s{stage}{(bf16 ? "-bf16" : "")}"] = new
                {
                    parameters = m.ParameterBytes, gradients = m.GradientBytes, optimizer = m.OptimizerBytes, model_states = m.ModelStateBytes,
                    persistent = m.PersistentParameterBytes, peak_gathered = m.PeakGatheredParameterBytes,
                };
            }
        // every rank reports; rank 0 writes rank-suffixed files so the test can check both
        if (kv.TryGetValue("out", out var path))
            File.WriteAllText(path + "." + (pg?.Rank ?? 0), JsonSerializer.Serialize(results));
        Console.WriteLine($"OK memory rank {pg?.Rank ?? 0}");
        return 0;
    }

    /// <summary>Checkpoint runs: <c>mode=save</c> (pre steps, save, post steps), <c>resume</c> (load, post steps), <c>crash</c> (load, one step, save that hangs before commit), <c>churn</c> (save forever, for kills at random moments).</summary>
    private static int CheckpointRun(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var data = Dataset();
        var stage = int.Parse(kv.GetValueOrDefault("stage", "3"));
        var dir = kv["dir"];
        var post = int.Parse(kv.GetValueOrDefault("post", "3"));
        using var e = Engine(TestMlp.Tiny(), pg, stage, kv.GetValueOrDefault("bf16") == "1", false, 4 / ws, 1, false);
        switch (kv["mode"])
        {
            case "save":
            {
                var pre = Train(e, data, int.Parse(kv.GetValueOrDefault("pre", "3")));
                var saved = Weights(e);
                var tag = e.SaveCheckpoint(dir);
                var losses = Train(e, data, post);
                WriteResult(pg, kv, new { tag, pre, saved, losses, weights = Weights(e), steps = e.GlobalSteps });
                break;
            }
            case "resume":
            {
                var tag = e.LoadCheckpoint(dir);
                var loadedStep = e.GlobalSteps;
                var loaded = Weights(e);
                var losses = Train(e, data, post);
                WriteResult(pg, kv, new { tag, loadedStep, loaded, losses, weights = Weights(e), steps = e.GlobalSteps });
                break;
            }
            case "crash":
            {
                e.LoadCheckpoint(dir);
                Train(e, data, 1);
                Checkpoint.BeforeCommit = r =>
                {
                    Console.WriteLine($"IN-SAVE rank {r}");
                    Console.Out.Flush();
                    Thread.Sleep(System.Threading.Timeout.Infinite);
                };
                e.SaveCheckpoint(dir);
                Console.WriteLine("UNEXPECTED: save returned");
                return 1;
            }
            case "churn":
            {
                // Saves until killed, cycling through every commit path: a new tag, the same tag again while latest names it
                // (a plain directory becomes a link), and a long-lived re-used tag (a link swapped) while latest names another.
                for (var i = 0; ; i++)
                {
                    Train(e, data, 1);
                    var tag = (i % 3) switch { 0 => $"t{i}", 1 => $"t{i - 1}", _ => "same" };
                    e.SaveCheckpoint(dir, tag);
                    Console.WriteLine($"SAVED {tag} {e.GlobalSteps}");
                    Console.Out.Flush();
                }
            }
            default:
                throw new ArgumentException($"mode {kv["mode"]}");
        }
        Console.WriteLine($"OK checkpoint {kv["mode"]} rank {pg?.Rank ?? 0}");
        return 0;
    }

    private static int RunEngine(string name, Dictionary<string, string> kv) => name switch
    {
        "equivalence" => Equivalence(kv),
        "memory" => Memory(kv),
        "checkpoint" => CheckpointRun(kv),
        "transformer" => TransformerRun(kv),
        "reference" => Reference(kv),
        "frozen" => FrozenRun(kv),
        "restart" => RestartRun(kv),
        _ => throw new ArgumentException($"unknown scenario '{name}'"),
    };
}
