using System.Diagnostics;
using System.Net;
using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Bench.Suites;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The <c>gpu</c> suite, run by tools/gpu-check.sh on a lent GPU: (1) the device's matmul peak (bf16 8192³, fp32
/// 4096³); (2) parity — a llama forward and backward on the GPU against the same step on the CPU in float32 (and
/// bf16 on the GPU against float32 on the CPU); (3) training-step throughput (forward+backward, tokens/s, TFLOP/s and
/// % of the measured bf16 peak) of llama-20M and llama-400M; (4) the paged generator on the GPU in bf16 against the
/// static-batch baseline (tokens/s, identical completions); (5) a single-rank NCCL group's collectives.
/// Each part reports its own failure and the suite goes on. Args: [--device cuda:N] [--quick] [--report FILE]; `--device cpu` runs small
/// shapes only, to check the suite's code paths on a machine without a GPU.
/// The same shapes run in PyTorch eager by bench/peers/gpu_pytorch.py.
/// </summary>
public sealed class GpuBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "gpu";

    /// <inheritdoc />
    public string Description => "on a CUDA device: matmul peak, GPU-vs-CPU parity, bf16 training steps, paged generation, NCCL (one rank)";

    private readonly List<string[]> rows = [];
    private int failures;

    /// <summary>The training shapes, shared with bench/peers/gpu_pytorch.py: label, config, batch, sequence.</summary>
    public static readonly (string Label, ModelConfig Config, int Batch, int T)[] TrainCases =
    [
        ("llama-20M", ModelConfig.Llama(2048, 512, 1376, 6, 8, maxPositions: 256), 4, 256),
        ("llama-400M", ModelConfig.Llama(32000, 1024, 2816, 24, 16, maxPositions: 1024), 8, 1024),
    ];

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var device = Device.Parse(args.SkipWhile(a => a != "--device").Skip(1).FirstOrDefault("cuda:0"));
        var report = args.SkipWhile(a => a != "--report").Skip(1).FirstOrDefault();
        var quick = args.Contains("--quick");
        Console.WriteLine($"gpu: libtorch {Torch.Version}, CUDA available {Torch.CudaIsAvailable}, {Torch.CudaDeviceCount} device(s), NCCL {(Torch.HasNccl ? "yes" : "no")}; device {device}");
        if (device.Type == DeviceType.Cuda && !Torch.CudaIsAvailable)
        {
            Console.Error.WriteLine("gpu: this libtorch has no CUDA device; nothing to measure (run it on a GPU machine: tools/gpu-check.sh)");
            return 2;
        }
        var peak = Part("matmul peak", () => MatmulPeaks(device));
        Part("parity", () => Parity(device));
        Part("training steps", () => TrainingSteps(device, peak, quick));
        Part("generation", () => Generation(device, quick));
        if (device.Type == DeviceType.Cuda) Part("nccl", () => Nccl(device));

        var table = new StringWriter();
        table.WriteLine("| part | what | result |");
        table.WriteLine("|---|---|---|");
        foreach (var r in rows) table.WriteLine($"| {r[0]} | {r[1]} | {r[2]} |");
        Console.WriteLine();
        Console.Write(table);
        if (report is not null) File.WriteAllText(report, table.ToString());
        return failures == 0 ? 0 : 1;
    }

    private void Row(string part, string what, string result)
    {
        rows.Add([part, what, result]);
        Console.WriteLine($"  {part}: {what}: {result}");
    }

    private double Part(string name, Func<double> body)
    {
        Console.WriteLine($"== {name}");
        try { return body(); }
        catch (Exception e)
        {
            failures++;
            Row(name, "FAILED", $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            return double.NaN;
        }
    }

    private void Part(string name, Action body) => Part(name, () => { body(); return 0.0; });

    private static double Timed(Device device, Action step, int warmup, int iterations)
    {
        for (var i = 0; i < warmup; i++) step();
        Sync(device);
        var best = double.MaxValue;
        for (var i = 0; i < iterations; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            step();
            Sync(device);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return best;
    }

    private static void Sync(Device device)
    {
        if (device.Type == DeviceType.Cuda) Torch.CudaSynchronize(Math.Max(device.Index, 0));
    }

    /// <summary>bf16 8192³ and fp32 4096³ products; returns the bf16 peak in TFLOP/s.</summary>
    private double MatmulPeaks(Device device)
    {
        double Peak(int n, ScalarType dtype)
        {
            using var scope = Torch.NewScope();
            using var g = new Generator(0, device);
            var a = Torch.Randn([n, n], g, dtype, device);
            var b = Torch.Randn([n, n], g, dtype, device);
            var sec = Timed(device, () => a.Mm(b).Dispose(), 3, 10);
            return 2.0 * n * n * n / sec / 1e12;
        }
        var small = device.Type == DeviceType.Cpu;   // a CPU run only checks the code paths
        var (nb, nf) = small ? (512, 512) : (8192, 4096);
        var bf16 = Peak(nb, ScalarType.BFloat16);
        Row("matmul peak", $"bf16 {nb}³", $"{bf16:F1} TFLOP/s");
        var fp32 = Peak(nf, ScalarType.Float32);
        Row("matmul peak", $"fp32 {nf}³", $"{fp32:F1} TFLOP/s");
        return bf16;
    }

    /// <summary>The same llama forward/backward on the device and on the CPU: logits and gradients must agree.</summary>
    private void Parity(Device device)
    {
        var config = ModelConfig.Llama(1024, 256, 512, 4, 4, kvHeads: 2, maxPositions: 128);
        using var scope = Torch.NewScope();
        using var cpu = ModelInit.Random(config, 3);
        var ids = Torch.Randint(0, config.VocabSize, [2, 64], new Generator(5, Device.Cpu), device: Device.Cpu);
        (Tensor Logits, Dictionary<string, Tensor> Grads) Step(ModelWeights w, Tensor input)
        {
            foreach (var p in w.Tensors.Values) p.RequiresGrad_(true);
            var logits = Transformer.Forward(w, input);
            var loss = Functional.CrossEntropy(logits.Reshape(-1, config.VocabSize).To(ScalarType.Float32), input.Reshape(-1));
            loss.Backward();
            var grads = w.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Grad!.To(Device.Cpu).To(ScalarType.Float32));
            return (logits.Detach().To(Device.Cpu).To(ScalarType.Float32), grads);
        }
        var (refLogits, refGrads) = Step(cpu, ids);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var w = cpu.Map((_, t) => t.Detach().To(dtype).To(device));
            var (logits, grads) = Step(w, ids.To(device));
            var logitDiff = logits.Sub(refLogits).Abs().Max().Item<float>();
            var worstGrad = grads.Max(kv => kv.Value.Sub(refGrads[kv.Key]).Norm().Item<float>() / Math.Max(refGrads[kv.Key].Norm().Item<float>(), 1e-12f));
            // float32: the same math in another order (cuBLAS vs OpenBLAS); bf16: 8 mantissa bits through 4 layers.
            var (logitTol, gradTol) = dtype == ScalarType.Float32 ? (1e-3, 1e-3) : (0.15, 0.1);
            var ok = logitDiff <= logitTol && worstGrad <= gradTol;
            if (!ok) failures++;
            Row("parity", $"llama-3M {dtype} on {device} vs float32 on cpu",
                $"{(ok ? "ok" : "MISMATCH")}: max abs Δ logit {logitDiff:E1} (≤ {logitTol:G2}), worst gradient ‖Δ‖/‖g‖ {worstGrad:E1} (≤ {gradTol:G2})");
        }
    }

    /// <summary>Forward+backward steps of the training shapes in bf16 (and float32 for the small one).</summary>
    private void TrainingSteps(Device device, double peakTflops, bool quick)
    {
        foreach (var (label, config, batch, t) in TrainCases)
        {
            if (device.Type == DeviceType.Cpu && label != "llama-20M") continue;   // a CPU run only checks the code paths
            foreach (var dtype in label == "llama-20M" ? new[] { ScalarType.Float32, ScalarType.BFloat16 } : new[] { ScalarType.BFloat16 })
            {
                using var cpuInit = ModelInit.Random(config, 0);
                using var w = cpuInit.Map((_, x) => x.To(dtype).To(device));
                foreach (var p in w.Tensors.Values) p.RequiresGrad_(true);
                using var g = new Generator(1, device);
                void Step()
                {
                    using var scope = Torch.NewScope();
                    var ids = Torch.Randint(0, config.VocabSize, [batch, t], g, device: device);
                    var logits = Transformer.Forward(w, ids);
                    Functional.CrossEntropy(logits.Reshape(-1, config.VocabSize).To(ScalarType.Float32), ids.Reshape(-1)).Backward();
                    foreach (var p in w.Tensors.Values) p.ZeroGrad();
                }
                var sec = Timed(device, Step, 2, quick ? 3 : 8);
                var n = w.ParameterCount - w[WeightNames.Embedding(config)].NumEl;
                var tokens = (double)batch * t;
                var flops = 3 * (2.0 * n + 4.0 * config.NumHiddenLayers * t * config.HiddenSize) * tokens;
                var tflops = flops / sec / 1e12;
                Row("train step", $"{label} ({w.ParameterCount / 1e6:F0}M) fwd+bwd {dtype}, batch {batch} × {t}",
                    $"{sec * 1e3:F1} ms, {tokens / sec:F0} tok/s, {tflops:F1} TFLOP/s ({100 * tflops / peakTflops:F0}% of the bf16 peak)");
            }
        }
    }

    /// <summary>The generation suite's workload on the device in bf16: paged vs static batch.</summary>
    private void Generation(Device device, bool quick)
    {
        var config = ModelConfig.Llama(8192, 384, 1024, 8, 6, kvHeads: 2, maxPositions: 1024);
        using var cpuInit = ModelInit.Random(config, 1);
        using var w = cpuInit.Map((_, x) => x.To(ScalarType.BFloat16).To(device));
        var rng = new Random(7);
        var prompts = Enumerable.Range(0, device.Type == DeviceType.Cpu ? 4 : quick ? 16 : 64)
            .Select(_ => Enumerable.Range(0, rng.Next(32, 97)).Select(_ => rng.Next(128, 8192)).ToArray()).ToArray();
        var p = new SamplingParams { N = 4, Temperature = 1.0, MaxTokens = 128, StopTokenIds = Enumerable.Range(0, 128).ToArray(), Seed = 42 };
        var settings = new GenerationSettings { KvCacheMemoryMb = 256, BlockSize = 16, MaxNumBatchedTokens = 8192, MaxNumSeqs = 256 };
        using var paged = new PagedGenerator(w, settings);
        paged.Generate(prompts.Take(4).ToArray(), p with { MaxTokens = 8 });
        var sw = Stopwatch.StartNew();
        var outs = paged.Generate(prompts, p);
        Sync(device);
        var pagedSec = sw.Elapsed.TotalSeconds;
        var pagedTokens = outs.Sum(o => o.Outputs.Sum(c => (long)c.TokenIds.Length));
        Row("generation", $"paged, llama {w.ParameterCount / 1e6:F1}M bf16, {prompts.Length} prompts × n 4, ≤ 128 new tokens",
            $"{pagedTokens / pagedSec:F0} tok/s ({pagedTokens} tokens, {pagedSec:F2} s; forward {paged.Stats.ForwardSeconds:F2} s, sample {paged.Stats.SampleSeconds:F2} s)");
        var baseline = new StaticBatchGenerator(w);
        baseline.Generate(prompts.Take(2).ToArray(), p with { MaxTokens = 4 });
        sw.Restart();
        var staticOuts = baseline.Generate(prompts, p);
        Sync(device);
        var staticSec = sw.Elapsed.TotalSeconds;
        var staticTokens = staticOuts.Sum(o => (long)o.Length);
        var same = 0;
        for (var j = 0; j < prompts.Length; j++)
            for (var i = 0; i < 4; i++)
                if (outs[j].Outputs[i].TokenIds.AsSpan().SequenceEqual(staticOuts[j * 4 + i])) same++;
        Row("generation", "static batch, same prompts and sampler streams",
            $"{staticTokens / staticSec:F0} tok/s; paged/static {pagedTokens / pagedSec / (staticTokens / staticSec):F2}×; identical completions {same}/{prompts.Length * 4}");
    }

    /// <summary>A one-rank NCCL group over a loopback TCPStore: every collective on device tensors, values checked.</summary>
    private void Nccl(Device device)
    {
        // The job's store as `rlhf launch` hosts it: our server on loopback only, this rank joining as a c10d client.
        var timeout = TimeSpan.FromSeconds(60);
        using var server = TcpStoreServer.Start([IPAddress.Loopback], 0);
        using var store = Store.Tcp("127.0.0.1", server.Port, isServer: false, numWorkers: 1, timeout);
        using var prefixed = store.WithPrefix("default_pg");
        using var pg = ProcessGroup.Nccl(prefixed, 0, 1, timeout);
        using var scope = Torch.NewScope();
        var checks = new List<string>();
        void Check(string what, Tensor actual, float[] expected)
        {
            var got = actual.To(Device.Cpu).To(ScalarType.Float32).ToArray<float>();
            if (!got.SequenceEqual(expected)) throw new InvalidOperationException($"{what}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", got)}]");
            checks.Add(what);
        }
        var a = Torch.From(new float[] { 1, 2, 3, 4 }, device: device);
        pg.AllReduce(a).Wait();
        Check("all-reduce", a, [1, 2, 3, 4]);
        var h = Torch.From(new float[] { 1, 2, 3, 4 }, device: device).To(ScalarType.BFloat16);
        pg.AllReduce(h, ReduceOp.Max).Wait();
        Check("all-reduce bf16 max", h, [1, 2, 3, 4]);
        var b = Torch.From(new float[] { 5, 6 }, device: device);
        pg.Broadcast(b).Wait();
        Check("broadcast", b, [5, 6]);
        var gathered = Torch.Zeros([4], device: device);
        pg.AllGather(a, gathered).Wait();
        Check("all-gather", gathered, [1, 2, 3, 4]);
        var scattered = Torch.Zeros([4], device: device);
        pg.ReduceScatter(a, scattered).Wait();
        Check("reduce-scatter", scattered, [1, 2, 3, 4]);
        Row("nccl", "one rank, the job store (TcpStoreServer) on 127.0.0.1, tensors on " + device, "ok: " + string.Join(", ", checks));
    }
}
