using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// A plain-loop, one-sequence reference implementation of every family, written from the Hugging Face modelling
/// code with doubles and nested loops only (no tensor ops), so the tensor implementation is checked against
/// something that shares none of its code.
/// </summary>
internal sealed class ReferenceModel
{
    private readonly ModelWeights w;
    private readonly ModelConfig c;

    public ReferenceModel(ModelWeights weights) { w = weights; c = weights.Config; }

    private double[] P(string name) => w[name].To(ScalarType.Float64).ToArray<double>();
    private double[]? Opt(string name) => w.TryGet(name) is null ? null : P(name);

    /// <summary>y[o] = Σ_i W[o, i] x[i] + b[o] with W [out, in] (nn.Linear).</summary>
    private static double[] Linear(double[] x, double[] wt, double[]? b, int outDim)
    {
        var inDim = x.Length;
        var y = new double[outDim];
        for (var o = 0; o < outDim; o++)
        {
            var s = b?[o] ?? 0;
            for (var i = 0; i < inDim; i++) s += wt[o * inDim + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /// <summary>y[o] = Σ_i x[i] W[i, o] + b[o] with W [in, out] (GPT-2 Conv1D).</summary>
    private static double[] Conv1D(double[] x, double[] wt, double[] b, int outDim)
    {
        var y = new double[outDim];
        for (var o = 0; o < outDim; o++)
        {
            var s = b[o];
            for (var i = 0; i < x.Length; i++) s += x[i] * wt[i * outDim + o];
            y[o] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, double[] g, double eps)
    {
        var ms = x.Sum(v => v * v) / x.Length;
        var r = 1 / Math.Sqrt(ms + eps);
        return x.Select((v, i) => v * r * g[i]).ToArray();
    }

    private static double[] LayerNorm(double[] x, double[] g, double[] b, double eps)
    {
        var mean = x.Average();
        var var = x.Sum(v => (v - mean) * (v - mean)) / x.Length;
        var r = 1 / Math.Sqrt(var + eps);
        return x.Select((v, i) => (v - mean) * r * g[i] + b[i]).ToArray();
    }

    internal static double Erf(double x)
    {
        if (Math.Abs(x) > 6) return Math.Sign(x);
        double sum = 0, term = x;       // Σ (-1)^n x^(2n+1) / (n! (2n+1))
        for (var n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
            if (Math.Abs(term) < 1e-17) break;
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    private double Act(double x) => c.HiddenAct switch
    {
        "silu" => x / (1 + Math.Exp(-x)),
        "gelu" => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        "gelu_new" => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        "relu" => Math.Max(0, x),
        _ => throw new NotSupportedException(c.HiddenAct),
    };

    /// <summary>
    /// Inverse frequencies and the cos/sin factor written straight from the formulas of transformers'
    /// <c>modeling_rope_utils.py</c> and the papers, in doubles: θ^(−2j/r), then linear (÷ factor), dynamic NTK
    /// (θ·(f·L/max − (f − 1))^(r/(r−2)) for a call of length L past max), YaRN (θ^(−2j/r)·(1 − γ_j + γ_j/f) with the
    /// ramp γ over correction dims, and the mscale factor) or Llama 3 (by wavelength band).
    /// </summary>
    internal static (double[] Inv, double Factor) InvFreq(long r, double theta, RopeScaling? s, long maxPositions = 0, long length = 0)
    {
        if (s is DynamicRopeScaling dyn && length > maxPositions)
            theta *= Math.Pow(dyn.Factor * length / maxPositions - (dyn.Factor - 1), r / (r - 2.0));
        var inv = new double[r / 2];
        for (var j = 0; j < r / 2; j++) inv[j] = 1 / Math.Pow(theta, 2.0 * j / r);
        switch (s)
        {
            case LinearRopeScaling lin:
                return (inv.Select(f => f / lin.Factor).ToArray(), 1);
            case YarnRopeScaling y:
            {
                // The dim whose wavelength fits `turns` times into the original context: 2π·θ^(d/r)·turns = original.
                double Dim(double turns) => r * Math.Log(y.OriginalMaxPositionEmbeddings / (2 * Math.PI * turns)) / (2 * Math.Log(theta));
                var lo = y.Truncate ? Math.Floor(Dim(y.BetaFast)) : Dim(y.BetaFast);
                var hi = y.Truncate ? Math.Ceiling(Dim(y.BetaSlow)) : Dim(y.BetaSlow);
                lo = Math.Max(lo, 0);
                hi = Math.Min(hi, r - 1);
                if (lo == hi) hi += 0.001;
                var scaled = inv.Select((f, j) =>
                {
                    var gamma = Math.Min(1, Math.Max(0, (j - lo) / (hi - lo)));
                    return f * (1 - gamma + gamma / y.Factor);
                }).ToArray();
                double M(double m) => y.Factor <= 1 ? 1 : 0.1 * m * Math.Log(y.Factor) + 1;
                var factor = y.AttentionFactor ?? (y.Mscale is { } a && a != 0 && y.MscaleAllDim is { } b && b != 0 ? M(a) / M(b) : M(1));
                return (scaled, factor);
            }
            case Llama3RopeScaling l3:
                for (var j = 0; j < inv.Length; j++)
                {
                    var wl = 2 * Math.PI / inv[j];
                    var lowWl = l3.OriginalMaxPositionEmbeddings / l3.LowFreqFactor;
                    var highWl = l3.OriginalMaxPositionEmbeddings / l3.HighFreqFactor;
                    var scaled = wl > lowWl ? inv[j] / l3.Factor : inv[j];
                    var smooth = (l3.OriginalMaxPositionEmbeddings / wl - l3.LowFreqFactor) / (l3.HighFreqFactor - l3.LowFreqFactor);
                    var smoothed = (1 - smooth) * scaled / l3.Factor + smooth * scaled;
                    var medium = !(wl < highWl) && !(wl > lowWl);
                    inv[j] = medium ? smoothed : scaled;
                }
                return (inv, 1);
            default:
                return (inv, 1);
        }
    }

    /// <summary>Rotates dims [0, r) of one head vector in place: pairs (i, i + r/2) by angle pos·inv[i], scaled by <paramref name="factor"/>.</summary>
    private static void Rope(double[] v, int offset, long r, double[] inv, double factor, long pos)
    {
        var half = (int)(r / 2);
        for (var i = 0; i < half; i++)
        {
            var a = v[offset + i]; var b = v[offset + i + half];
            var ang = pos * inv[i];
            v[offset + i] = factor * (a * Math.Cos(ang) - b * Math.Sin(ang));
            v[offset + i + half] = factor * (b * Math.Cos(ang) + a * Math.Sin(ang));
        }
    }

    /// <summary>Final-normed hidden states [T][D] of one unpadded sequence at positions 0…T−1.</summary>
    public double[][] Hidden(long[] ids)
    {
        int T = ids.Length, D = (int)c.HiddenSize, H = c.NumAttentionHeads, KV = c.NumKeyValueHeads, hd = (int)c.HeadDim, I = (int)c.IntermediateSize;
        var embName = WeightNames.Embedding(c);
        var emb = P(embName);
        var x = new double[T][];
        for (var t = 0; t < T; t++) x[t] = emb.Skip((int)ids[t] * D).Take(D).ToArray();
        if (c.Family == ModelFamily.Gpt2)
        {
            var wpe = P("transformer.wpe.weight");
            for (var t = 0; t < T; t++) for (var d = 0; d < D; d++) x[t][d] += wpe[t * D + d];
        }
        var (inv, ropeFactor) = InvFreq(c.RotaryDim, c.RopeTheta, c.RopeScaling, c.MaxPositionEmbeddings, T);
        for (var layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            var p = WeightNames.Layer(c, layer);
            // ---- normalised attention input
            var n1 = new double[T][];
            for (var t = 0; t < T; t++)
                n1[t] = c.Family switch
                {
                    ModelFamily.Llama or ModelFamily.Qwen2 => RmsNorm(x[t], P(p + "input_layernorm.weight"), c.RmsNormEps),
                    ModelFamily.GptNeox => LayerNorm(x[t], P(p + "input_layernorm.weight"), P(p + "input_layernorm.bias"), c.LayerNormEps),
                    _ => LayerNorm(x[t], P(p + "ln_1.weight"), P(p + "ln_1.bias"), c.LayerNormEps),
                };
            // ---- q, k, v per token, laid out [head][hd] in flat arrays: q [H·hd], k/v [KV·hd]
            var q = new double[T][]; var k = new double[T][]; var v = new double[T][];
            for (var t = 0; t < T; t++)
            {
                switch (c.Family)
                {
                    case ModelFamily.Llama or ModelFamily.Qwen2:
                        q[t] = Linear(n1[t], P(p + "self_attn.q_proj.weight"), Opt(p + "self_attn.q_proj.bias"), H * hd);
                        k[t] = Linear(n1[t], P(p + "self_attn.k_proj.weight"), Opt(p + "self_attn.k_proj.bias"), KV * hd);
                        v[t] = Linear(n1[t], P(p + "self_attn.v_proj.weight"), Opt(p + "self_attn.v_proj.bias"), KV * hd);
                        break;
                    case ModelFamily.GptNeox:
                    {
                        var f = Linear(n1[t], P(p + "attention.query_key_value.weight"), Opt(p + "attention.query_key_value.bias"), 3 * D);
                        q[t] = new double[D]; k[t] = new double[D]; v[t] = new double[D];
                        for (var h = 0; h < H; h++)        // fused per head: [q_h | k_h | v_h]
                            for (var i = 0; i < hd; i++)
                            {
                                q[t][h * hd + i] = f[h * 3 * hd + i];
                                k[t][h * hd + i] = f[h * 3 * hd + hd + i];
                                v[t][h * hd + i] = f[h * 3 * hd + 2 * hd + i];
                            }
                        break;
                    }
                    default:
                    {
                        var f = Conv1D(n1[t], P(p + "attn.c_attn.weight"), P(p + "attn.c_attn.bias"), 3 * D);
                        q[t] = f[..D]; k[t] = f[D..(2 * D)]; v[t] = f[(2 * D)..];
                        break;
                    }
                }
                if (c.RotaryDim > 0)
                {
                    for (var h = 0; h < H; h++) Rope(q[t], h * hd, c.RotaryDim, inv, ropeFactor, t);
                    for (var h = 0; h < KV; h++) Rope(k[t], h * hd, c.RotaryDim, inv, ropeFactor, t);
                }
            }
            // ---- causal attention, query head h reads key/value head h / (H/KV)
            var attnOut = new double[T][];
            for (var t = 0; t < T; t++)
            {
                attnOut[t] = new double[H * hd];
                for (var h = 0; h < H; h++)
                {
                    var kh = h / (H / KV);
                    var scores = new double[t + 1];
                    for (var s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (var i = 0; i < hd; i++) dot += q[t][h * hd + i] * k[s][kh * hd + i];
                        scores[s] = dot / Math.Sqrt(hd);
                    }
                    var max = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - max)).ToArray();
                    var sum = e.Sum();
                    for (var s = 0; s <= t; s++)
                        for (var i = 0; i < hd; i++) attnOut[t][h * hd + i] += e[s] / sum * v[s][kh * hd + i];
                }
            }
            var attn = new double[T][];
            for (var t = 0; t < T; t++)
                attn[t] = c.Family switch
                {
                    ModelFamily.Llama or ModelFamily.Qwen2 => Linear(attnOut[t], P(p + "self_attn.o_proj.weight"), Opt(p + "self_attn.o_proj.bias"), D),
                    ModelFamily.GptNeox => Linear(attnOut[t], P(p + "attention.dense.weight"), Opt(p + "attention.dense.bias"), D),
                    _ => Conv1D(attnOut[t], P(p + "attn.c_proj.weight"), P(p + "attn.c_proj.bias"), D),
                };
            // ---- residuals and MLP
            for (var t = 0; t < T; t++)
            {
                var parallel = c.Family == ModelFamily.GptNeox && c.UseParallelResidual;
                var afterAttn = x[t].Select((z, d) => z + attn[t][d]).ToArray();
                var mlpIn = parallel ? x[t] : afterAttn;
                var n2 = c.Family switch
                {
                    ModelFamily.Llama or ModelFamily.Qwen2 => RmsNorm(mlpIn, P(p + "post_attention_layernorm.weight"), c.RmsNormEps),
                    ModelFamily.GptNeox => LayerNorm(mlpIn, P(p + "post_attention_layernorm.weight"), P(p + "post_attention_layernorm.bias"), c.LayerNormEps),
                    _ => LayerNorm(mlpIn, P(p + "ln_2.weight"), P(p + "ln_2.bias"), c.LayerNormEps),
                };
                double[] m;
                switch (c.Family)
                {
                    case ModelFamily.Llama or ModelFamily.Qwen2:
                    {
                        var g = Linear(n2, P(p + "mlp.gate_proj.weight"), Opt(p + "mlp.gate_proj.bias"), I);
                        var u = Linear(n2, P(p + "mlp.up_proj.weight"), Opt(p + "mlp.up_proj.bias"), I);
                        m = Linear(g.Select((z, i) => Act(z) * u[i]).ToArray(), P(p + "mlp.down_proj.weight"), Opt(p + "mlp.down_proj.bias"), D);
                        break;
                    }
                    case ModelFamily.GptNeox:
                        m = Linear(Linear(n2, P(p + "mlp.dense_h_to_4h.weight"), P(p + "mlp.dense_h_to_4h.bias"), I).Select(Act).ToArray(),
                            P(p + "mlp.dense_4h_to_h.weight"), P(p + "mlp.dense_4h_to_h.bias"), D);
                        break;
                    default:
                        m = Conv1D(Conv1D(n2, P(p + "mlp.c_fc.weight"), P(p + "mlp.c_fc.bias"), I).Select(Act).ToArray(),
                            P(p + "mlp.c_proj.weight"), P(p + "mlp.c_proj.bias"), D);
                        break;
                }
                x[t] = afterAttn.Select((z, d) => z + m[d]).ToArray();
            }
        }
        return x.Select(row => c.Family switch
        {
            ModelFamily.Llama or ModelFamily.Qwen2 => RmsNorm(row, P("model.norm.weight"), c.RmsNormEps),
            ModelFamily.GptNeox => LayerNorm(row, P("gpt_neox.final_layer_norm.weight"), P("gpt_neox.final_layer_norm.bias"), c.LayerNormEps),
            _ => LayerNorm(row, P("transformer.ln_f.weight"), P("transformer.ln_f.bias"), c.LayerNormEps),
        }).ToArray();
    }

    /// <summary>Logits [T][V] of one unpadded sequence.</summary>
    public double[][] Logits(long[] ids)
    {
        var head = c.TieWordEmbeddings ? P(WeightNames.Embedding(c)) : P(WeightNames.LmHead(c));
        return Hidden(ids).Select(h => Linear(h, head, null, (int)c.VocabSize)).ToArray();
    }
}
