using Rlhf.Core.Models;
using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Engine.Worker;

using Torch = Rlhf.Torch.Torch;

/// <summary>The real transformer through the engine: a tiny GQA llama trained on left-padded batches.</summary>
internal static partial class Scenarios
{
    private const int LmSamples = 20, LmT = 8, LmGlobalBatch = 4;

    /// <summary>Initial std of the matrices: larger than HF's 0.02 so attention is far from uniform and every gradient is well above fp32 noise.</summary>
    internal const double InitStd = 0.2;

    /// <summary>hidden 32, 2 layers, 4 query heads sharing 2 kv heads, vocab 64.</summary>
    internal static ModelConfig TinyLlama() => ModelConfig.Llama(64, 32, 48, 2, 4, kvHeads: 2);

    /// <summary>Ids [N, T] and a left-padding mask [N, T] (0–3 pads per row, every row has ≥ 5 real tokens).</summary>
    private static (Tensor Ids, Tensor Mask) LmDataset(ModelConfig c)
    {
        using var g = new Generator(2024);
        var ids = Torch.Randint(0, c.VocabSize, [LmSamples, LmT], g).DetachFromScope();
        var mask = new long[LmSamples * LmT];
        for (var n = 0; n < LmSamples; n++)
            for (var t = n % 4; t < LmT; t++) mask[n * LmT + t] = 1;
        return (ids, Torch.From(mask, LmSamples, LmT).DetachFromScope());
    }

    /// <summary>
    /// Next-token cross-entropy of logits [B, T, V] against ids [B, T] over real targets, averaged per sequence and then
    /// over sequences, so the mean of the ranks' losses is the loss of the whole global batch.
    /// </summary>
    private static Tensor LmLoss(Tensor logits, Tensor ids, Tensor mask)
    {
        using var scope = Torch.NewScope();
        var t = ids.Size(1);
        var lp = logits.Narrow(1, 0, t - 1).Float().LogSoftmax(-1);                           // [B, T-1, V]
        var target = ids.Narrow(1, 1, t - 1);                                                   // [B, T-1]
        var m = mask.Narrow(1, 1, t - 1).Float() * mask.Narrow(1, 0, t - 1).Float();           // both tokens real
        var nll = -lp.Gather(2, target.Unsqueeze(2)).Squeeze(2);                                // [B, T-1]
        return ((nll * m).Sum(1, false) / m.Sum(1, false)).Mean().MoveToOuter();
    }

    /// <summary>
    /// <c>runs=s0,s3,s0-gas2</c>, <c>steps=5</c>, <c>dir=…</c>: trains each run from the same seed on the same global batches,
    /// writes its losses and gathered weights, a sharded checkpoint (<c>{dir}/{run}/ckpt</c>), an HF directory saved with
    /// <see cref="ZeroEngine.Save16BitModel"/> (<c>{dir}/{run}/hf</c>) and the engine's logits on the first batch.
    /// </summary>
    private static int TransformerRun(Dictionary<string, string> kv)
    {
        using var pg = Group(TimeSpan.FromSeconds(60));
        var ws = pg?.Size ?? 1;
        var steps = int.Parse(kv.GetValueOrDefault("steps", "5"));
        var c = TinyLlama();
        var (ids, mask) = LmDataset(c);
        var results = new Dictionary<string, object>();
        foreach (var run in kv["runs"].Split(','))
        {
            // name: s<stage>[-gas2]; the global batch is always 4 sequences
            var stage = run[1] - '0';
            var gas = run.EndsWith("-gas2", StringComparison.Ordinal) ? 2 : 1;
            var settings = EngineSettings(stage, LmGlobalBatch / ws / gas, gas, ws, clip: 1.0, lr: 1e-3, persistence: 40, reduceBucket: 1000);
            var layers = new TransformerLayers(c, initStd: InitStd);
            using var e = new ZeroEngine(layers, settings, pg, seed: 42, gradientCheckpointing: true);
            var losses = new List<double>();
            for (var s = 0; s < steps; s++)
            {
                double sum = 0;
                for (var k = 0; k < gas; k++)
                {
                    // micro-batch k of rank r: sequences [(k·ws + r)·micro, +micro) of the step's global batch
                    using var scope = Torch.NewScope();
                    var start = (s * LmGlobalBatch + (k * ws + e.Rank) * e.MicroBatchPerGpu) % LmSamples;
                    var x = ids.Narrow(0, start, e.MicroBatchPerGpu);
                    var m = mask.Narrow(0, start, e.MicroBatchPerGpu);
                    var loss = LmLoss(e.Forward(x, TransformerLayers.Context(m)), x, m);
                    sum += loss.Item();
                    e.Backward(loss);
                    e.Step();
                }
                losses.Add(e.AllReduceMean(sum / gas));
            }
            var dir = Path.Combine(kv["dir"], run);
            e.SaveCheckpoint(Path.Combine(dir, "ckpt"));
            e.Save16BitModel(Path.Combine(dir, "hf"), new Rlhf.Shell.Io.HfModelWriter(c));
            float[] logits;
            using (var scope = Torch.NewScope())
            using (Torch.NoGrad())
                logits = e.Forward(ids.Narrow(0, 0, LmGlobalBatch), TransformerLayers.Context(mask.Narrow(0, 0, LmGlobalBatch))).Reshape(-1).ToArray<float>();
            results[run] = new { losses, weights = Weights(e), logits, dir };
        }
        results["eval"] = new { ids = ids.Narrow(0, 0, LmGlobalBatch).Contiguous().ToArray<long>(), mask = mask.Narrow(0, 0, LmGlobalBatch).Contiguous().ToArray<long>(), shape = new[] { LmGlobalBatch, LmT } };
        WriteResult(pg, kv, results);
        Console.WriteLine($"OK transformer rank {pg?.Rank ?? 0}");
        return 0;
    }
}
