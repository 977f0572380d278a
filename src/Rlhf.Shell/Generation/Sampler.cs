using Rlhf.Torch;

namespace Rlhf.Shell.Generation;

using Torch = Rlhf.Torch.Torch;

/// <summary>One row to sample: its parameters, its random stream and where it is in that stream.</summary>
/// <param name="Params">The request's sampling parameters.</param>
/// <param name="Seed">The completion's stream seed (request seed + completion index).</param>
/// <param name="Step">Index of the token being sampled within the completion (0 for the first new token); selects the draw.</param>
/// <param name="MaskStopTokens">True while fewer than min_tokens exist: stop tokens get probability 0.</param>
public readonly record struct SampleRow(SamplingParams Params, ulong Seed, int Step, bool MaskStopTokens);

/// <summary>Sampled tokens with their log-probabilities, one entry per row.</summary>
/// <param name="Tokens">Sampled token ids.</param>
/// <param name="Logprobs"><c>log_softmax(logits / (temperature + 1e-7))</c> at the token: what the trainer recomputes.</param>
/// <param name="ProcessedLogprobs">Log-probability under the distribution sampled from (after the filters and min-tokens masking).</param>
public sealed record SamplerOutput(int[] Tokens, float[] Logprobs, float[] ProcessedLogprobs);

/// <summary>
/// The sampler (vLLM order): temperature, then top-k, then top-p (sorted cumulative probability; the top token
/// always kept), then min-p; temperature below 1e-5 is greedy. Every row draws one uniform number from its own
/// stream (<see cref="SampleStream"/>: seed = request seed + completion index, indexed by token position), and
/// picks the token by inverting the cumulative distribution, so a row's result depends only on its own logits,
/// parameters, seed and position — never on the other rows of the batch, nor on preemption and recompute.
/// </summary>
public static class Sampler
{
    /// <summary>The offset added to the temperature in the trainer's logprobs: Core's <see cref="Rlhf.Core.Rollouts.Logprobs.TemperatureEpsilon"/>, so both sides compute the same thing.</summary>
    public const double TrainerTemperatureEps = Rlhf.Core.Rollouts.Logprobs.TemperatureEpsilon;

    /// <summary>
    /// Processed logits [R, V] (float32): min-tokens masking, temperature (1 for greedy rows), top-k, top-p, min-p;
    /// removed tokens are −∞. <c>log_softmax</c> of the result is the distribution each row samples from.
    /// </summary>
    public static Tensor ProcessLogits(Tensor logits, IReadOnlyList<SampleRow> rows)
    {
        using var scope = Torch.NewScope();
        if (logits.Dim != 2 || logits.Size(0) != rows.Count)
            throw new ArgumentException($"logits must be [{rows.Count}, V]; got [{string.Join(", ", logits.Shape)}]", nameof(logits));
        int r = rows.Count;
        long v = logits.Size(1);
        var dev = logits.Device;                                                                          // per-row values go where the logits are
        var x = logits.To(ScalarType.Float32).Clone();                                                    // [R, V]

        // min_tokens: stop tokens impossible until enough tokens exist.
        List<long>? maskRows = null, maskCols = null;
        for (var i = 0; i < r; i++)
        {
            if (!rows[i].MaskStopTokens || rows[i].Params.StopTokenIds is not { Count: > 0 } stops) continue;
            maskRows ??= new(); maskCols ??= new();
            foreach (var t in stops) { maskRows.Add(i); maskCols.Add(t); }
        }
        if (maskRows is not null)
            x.IndexPut_([Torch.From<long>(maskRows.ToArray(), null, dev), Torch.From<long>(maskCols!.ToArray(), null, dev)], Torch.Scalar(double.NegativeInfinity, device: dev));

        var temps = new float[r];
        var topK = new long[r];
        var topP = new float[r];
        var minP = new float[r];
        bool anyTemp = false, anyTopK = false, anyTopP = false, anyMinP = false;
        for (var i = 0; i < r; i++)
        {
            var p = rows[i].Params;
            temps[i] = p.IsGreedy ? 1f : (float)p.Temperature;
            topK[i] = p.TopK <= 0 || p.TopK >= v ? v : p.TopK;
            topP[i] = (float)p.TopP;
            minP[i] = (float)p.MinP;
            anyTemp |= temps[i] != 1f;
            anyTopK |= topK[i] < v;
            anyTopP |= p.TopP < 1.0;
            anyMinP |= p.MinP > 0;
        }
        if (anyTemp) x.Div_(Torch.From<float>(temps, [r, 1], dev));                                                     // [R, V]

        if (anyTopK || anyTopP)
        {
            var (sorted, idx) = x.Sort(-1, descending: false);                                            // ascending [R, V]
            if (anyTopK)
            {
                // Threshold = the k-th largest value, at ascending index V − k; ties with it survive (vLLM).
                var kth = sorted.Gather(1, (v - Torch.From<long>(topK, [r, 1], dev)).Long());                          // [R, 1]
                sorted.MaskedFill_(sorted.Lt(kth), double.NegativeInfinity);
            }
            if (anyTopP)
            {
                var cum = sorted.Softmax(-1).Cumsum(-1);                                                  // [R, V]
                var drop = cum.Le(1 - Torch.From<float>(topP, [r, 1], dev));                                            // [R, V]
                drop.Narrow(1, v - 1, 1).Fill_(0);                                                        // the top token always stays
                sorted.MaskedFill_(drop, double.NegativeInfinity);
            }
            x = sorted.Scatter(1, idx, sorted);                                                           // back to vocabulary order
        }
        if (anyMinP)
        {
            var probs = x.Softmax(-1);                                                                    // [R, V]
            var top = probs.Max(-1, keepDim: true).Values;                                                // [R, 1]
            x.MaskedFill_(probs.Lt(top * Torch.From<float>(minP, [r, 1], dev)), double.NegativeInfinity);
        }
        return x.MoveToOuter();
    }

    /// <summary>
    /// Samples one token per row of <paramref name="logits"/> [R, V] and returns it with its trainer-side and
    /// processed log-probabilities.
    /// </summary>
    public static SamplerOutput Sample(Tensor logits, IReadOnlyList<SampleRow> rows)
    {
        using var scope = Torch.NewScope();
        int r = rows.Count;
        long v = logits.Size(1);
        var dev = logits.Device;
        var processed = ProcessLogits(logits, rows);                                                      // [R, V]
        var logp = processed.LogSoftmax(-1);                                                              // [R, V]

        var u = new double[r];
        var greedy = new bool[r];
        bool anyGreedy = false, anyRandom = false;
        for (var i = 0; i < r; i++)
        {
            greedy[i] = rows[i].Params.IsGreedy;
            anyGreedy |= greedy[i];
            anyRandom |= !greedy[i];
            u[i] = SampleStream.Uniform(rows[i].Seed, rows[i].Step);
        }

        Tensor tokens;
        Tensor? sampled = null, argmax = null;
        if (anyRandom)
        {
            // Inverse CDF in float64: token j with cdf[j-1] ≤ u·total < cdf[j] (removed tokens have zero width).
            var cdf = logp.To(ScalarType.Float64).Exp_().Cumsum(-1);                                      // [R, V]
            var target = Torch.From<double>(u, [r, 1], dev) * cdf.Narrow(1, v - 1, 1);                                   // [R, 1]
            sampled = cdf.Le(target).Sum(1, dtype: ScalarType.Int64).Clamp(0, v - 1).Long();                    // [R]
        }
        if (anyGreedy) argmax = processed.Argmax(-1);                                                     // [R]
        if (sampled is not null && argmax is not null)
            tokens = Torch.Where(Torch.From<bool>(greedy, [r], dev), argmax, sampled);
        else tokens = sampled ?? argmax!;

        var idx = tokens.View(r, 1);
        var processedLp = logp.Gather(1, idx).View(r);                                                    // [R]

        // Trainer-side logprobs: raw logits (no filters, no min-tokens mask) / (T + 1e-7).
        var trainerT = new float[r];
        for (var i = 0; i < r; i++) trainerT[i] = (float)(rows[i].Params.Temperature + TrainerTemperatureEps);
        var trainerLp = logits.To(ScalarType.Float32).Div(Torch.From<float>(trainerT, [r, 1], dev)).LogSoftmax(-1).Gather(1, idx).View(r);

        var tokenIds = tokens.ToArray<long>();
        var ids = new int[r];
        for (var i = 0; i < r; i++) ids[i] = (int)tokenIds[i];
        return new SamplerOutput(ids, trainerLp.ToArray<float>(), processedLp.ToArray<float>());
    }
}

/// <summary>
/// The per-completion random stream: draw <c>k</c> of stream <c>seed</c> is a SplitMix64 hash of (seed, k) mapped to
/// [0, 1) with 53 bits. Counter-based, so a draw depends on nothing but its seed and token position: batch
/// composition, preemption and recompute cannot shift it, and no native generator is needed per row.
/// </summary>
public static class SampleStream
{
    /// <summary>Uniform double in [0, 1) for draw <paramref name="step"/> of stream <paramref name="seed"/>.</summary>
    public static double Uniform(ulong seed, long step)
    {
        var z = Mix(Mix(seed) + (ulong)step * 0xD1B54A32D192ED03UL);
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>The SplitMix64 finaliser.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
