using System.Diagnostics;
using System.Text.Json;
using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Bench;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Engine suite: step time, per-rank model-state memory and the communication share of the step for
/// ZeRO stages 0–3 at world size 2 (two processes over loopback Gloo, launched by Rlhf's own launcher)
/// on a ~20M-parameter residual MLP.
/// Run: <c>dotnet run -c Release --project bench/Rlhf.Bench -- engine [steps=5] [bf16=0] [threads=1]</c>.
/// </summary>
public static class EngineBench
{
    private sealed class Block(string name, int d, int ff) : ILayer
    {
        public string Name => name;
        public IReadOnlyList<ParamSpec> Parameters { get; } =
            [new("ln.weight", [d]), new("ln.bias", [d]), new("up.weight", [ff, d]), new("up.bias", [ff]), new("down.weight", [d, ff]), new("down.bias", [d])];

        // x + W_down · gelu(W_up · LN(x))   [B, d] → [B, d]
        public Tensor Forward(IReadOnlyList<Tensor> p, Tensor x, LayerContext? context)
        {
            var h = Functional.LayerNorm(x.To(p[0].Dtype), [x.Size(-1)], p[0], p[1], 1e-5);
            return x.To(p[0].Dtype) + Functional.Linear(Functional.Linear(h, p[2], p[3]).Gelu(true), p[4], p[5]);
        }

        public Tensor[] Initialize(Generator g) =>
        [
            Torch.Ones([d]), Torch.Zeros([d]),
            Torch.Randn([ff, d], g) * (1.0 / Math.Sqrt(d)), Torch.Zeros([ff]),
            Torch.Randn([d, ff], g) * (1.0 / Math.Sqrt(ff)), Torch.Zeros([d]),
        ];
    }

    private sealed class Head(int d, int classes) : ILayer
    {
        public string Name => "head";
        public IReadOnlyList<ParamSpec> Parameters { get; } = [new("weight", [classes, d])];
        public Tensor Forward(IReadOnlyList<Tensor> p, Tensor x, LayerContext? context) => Functional.Linear(x, p[0]);
        public Tensor[] Initialize(Generator g) => [Torch.Randn([classes, d], g) * 0.02];
    }

    private sealed class Model(int d, int ff, int blocks, int classes) : ILayeredModel
    {
        public IReadOnlyList<ILayer> Layers { get; } =
            Enumerable.Range(0, blocks).Select(i => (ILayer)new Block($"blocks.{i}", d, ff)).Append(new Head(d, classes)).ToList();
    }

    private const int D = 1024, Ff = 2048, Blocks = 5, Classes = 16, Micro = 16;

    /// <summary>The per-stage rows (rank 0's JSON) of the last <see cref="Run"/>.</summary>
    public static IReadOnlyList<JsonElement> LastRows { get; private set; } = [];

    /// <summary>Launches two ranks of <see cref="Worker"/> per stage and prints the table.</summary>
    public static int Run(string[] args)
    {
        var kv = args.Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        var steps = kv.GetValueOrDefault("steps", "5");
        var bf16 = kv.GetValueOrDefault("bf16", "0");
        var threads = kv.GetValueOrDefault("threads", "1");
        var dll = typeof(EngineBench).Assembly.Location;
        var rows = new List<JsonElement>();
        Environment.SetEnvironmentVariable("RLHF_NUM_THREADS", threads);
        foreach (var stage in new[] { 0, 1, 2, 3 })
        {
            var outFile = Path.Combine(Path.GetTempPath(), $"rlhf-bench-engine-{Guid.NewGuid():N}.json");
            var port = FreePort();
            var spec = new LaunchSpec(2, 1, 0, "127.0.0.1", port, ["dotnet", dll, "engine-worker", $"stage={stage}", $"steps={steps}", $"bf16={bf16}", $"out={outFile}"]);
            var code = new Launcher(spec, TextWriter.Null, Console.Error).Run();
            if (code != 0) { Console.Error.WriteLine($"stage {stage}: workers failed with {code}"); return code; }
            rows.Add(JsonDocument.Parse(File.ReadAllText(outFile)).RootElement.Clone());
            File.Delete(outFile);
        }
        LastRows = rows;
        var first = rows[0];
        Console.WriteLine($"Engine: world size 2 (Gloo, loopback), {first.GetProperty("params").GetInt64() / 1e6:F1}M parameters, micro-batch {Micro} x [{D}], " +
                          $"{(bf16 == "1" ? "bf16" : "fp32")}, {threads} intra-op thread(s) per rank, {steps} timed steps after 1 warm-up");
        Console.WriteLine("| stage | step (ms) | comm share | params MB | grads MB | optim MB | model states MB/rank | stage-3 peak gathered MB |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            double Mb(string k) => r.GetProperty(k).GetInt64() / 1048576.0;
            Console.WriteLine($"| {r.GetProperty("stage").GetInt32()} | {r.GetProperty("step_ms").GetDouble():F0} | {r.GetProperty("comm_share").GetDouble():P0} | " +
                              $"{Mb("parameters"):F1} | {Mb("gradients"):F1} | {Mb("optimizer"):F1} | {Mb("model_states"):F1} | {Mb("peak_gathered"):F1} |");
        }
        return 0;
    }

    /// <summary>One rank: builds the engine, trains 1 + steps steps, rank 0 writes timings and memory.</summary>
    public static int Worker(string[] args)
    {
        var kv = args.Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        var stage = int.Parse(kv["stage"]);
        var steps = int.Parse(kv["steps"]);
        var env = DistributedEnvironment.FromProcess();
        using var pg = env.InitProcessGroup(TimeSpan.FromMinutes(5));
        var settings = DeepSpeedConfig.Parse($$"""
            train_micro_batch_size_per_gpu: {{Micro}}
            gradient_accumulation_steps: 1
            gradient_clipping: 1.0
            bf16: {enabled: {{(kv.GetValueOrDefault("bf16") == "1" ? "true" : "false")}}}
            optimizer: {type: AdamW, params: {lr: 1.0e-4, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0.01} }
            zero_optimization: {stage: {{stage}}, stage3_param_persistence_threshold: 10000, reduce_bucket_size: 50000000}
            """, worldSize: pg.Size);
        var model = new Model(D, Ff, Blocks, Classes);
        using var engine = new ZeroEngine(model, settings, pg, seed: 42, gradientCheckpointing: true);
        using var g = new Generator(7 + (ulong)env.Rank);
        var x = Torch.Randn([Micro, D], g).DetachFromScope();
        var y = Torch.Randint(0, Classes, [Micro], g).DetachFromScope();

        void OneStep()
        {
            using var scope = Torch.NewScope();
            var loss = Functional.CrossEntropy(engine.Forward(x).Float(), y);
            engine.Backward(loss);
            engine.Step();
        }

        OneStep(); // warm-up
        engine.ResetPeakMemory();
        pg.Barrier().Wait();
        var comm0 = engine.CommSeconds;
        var sw = Stopwatch.StartNew();
        for (var s = 0; s < steps; s++) OneStep();
        pg.Barrier().Wait();
        var elapsed = sw.Elapsed.TotalSeconds;
        var comm = engine.CommSeconds - comm0;
        var m = engine.Memory;
        if (env.Rank == 0)
            File.WriteAllText(kv["out"], JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["stage"] = stage,
                ["params"] = engine.Layout.Total,
                ["step_ms"] = elapsed / steps * 1000,
                ["comm_share"] = comm / elapsed,
                ["parameters"] = m.ParameterBytes,
                ["gradients"] = m.GradientBytes,
                ["optimizer"] = m.OptimizerBytes,
                ["model_states"] = m.ModelStateBytes,
                ["peak_gathered"] = m.PeakGatheredParameterBytes,
            }));
        return 0;
    }

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }
}

/// <summary>The <c>engine</c> suite: ZeRO stages 0–3 at world size 2.</summary>
public sealed class EngineSuite : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "engine";
    /// <inheritdoc />
    public string Description => "ZeRO stages 0-3 at world size 2: step time, comm share, per-rank memory";
    /// <inheritdoc />
    public int Run(string[] args) => EngineBench.Run(args);
}

/// <summary>One rank of the engine suite (started by <see cref="EngineSuite"/>, not by hand).</summary>
public sealed class EngineWorkerSuite : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "engine-worker";
    /// <inheritdoc />
    public string Description => "(internal) one rank of the engine suite";
    /// <inheritdoc />
    public int Run(string[] args) => EngineBench.Worker(args);
}
