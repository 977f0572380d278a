using System.Text;
using N = Rlhf.Torch.Native.Native;
using TH = Rlhf.Torch.Native.TensorHandle;

namespace Rlhf.Torch;

public sealed partial class Tensor
{
    internal static TH Opt(Tensor? t) => t?.H ?? TH.Null;

    // ---- arithmetic (broadcasting) ----

    /// <summary>this + alpha·other.</summary>
    public Tensor Add(Tensor other, double alpha = 1) => Wrap(N.rt_add(H, other.H, alpha));
    /// <summary>this − alpha·other.</summary>
    public Tensor Sub(Tensor other, double alpha = 1) => Wrap(N.rt_sub(H, other.H, alpha));
    /// <summary>Elementwise product.</summary>
    public Tensor Mul(Tensor other) => Wrap(N.rt_mul(H, other.H));
    /// <summary>Elementwise true division.</summary>
    public Tensor Div(Tensor other) => Wrap(N.rt_div(H, other.H));
    /// <summary>Division with a rounding mode: "trunc" or "floor".</summary>
    public unsafe Tensor Div(Tensor other, string roundingMode)
    {
        var b = Encoding.UTF8.GetBytes(roundingMode + "\0");
        fixed (byte* p = b) return Wrap(N.rt_div_mode(H, other.H, p));
    }
    /// <summary>Division by a scalar with a rounding mode: "trunc" or "floor".</summary>
    public unsafe Tensor Div(double s, string roundingMode)
    {
        var b = Encoding.UTF8.GetBytes(roundingMode + "\0");
        fixed (byte* p = b) return Wrap(N.rt_div_scalar_mode(H, s, p));
    }
    /// <summary>Floor division by a scalar (integer block index from a position, say).</summary>
    public Tensor FloorDivide(double s) => Div(s, "floor");
    /// <summary>this + s.</summary>
    public Tensor Add(double s) => Wrap(N.rt_add_scalar(H, s));
    /// <summary>this · s.</summary>
    public Tensor Mul(double s) => Wrap(N.rt_mul_scalar(H, s));
    /// <summary>this / s.</summary>
    public Tensor Div(double s) => Wrap(N.rt_div_scalar(H, s));
    /// <summary>this^e.</summary>
    public Tensor Pow(double e) => Wrap(N.rt_pow_scalar(H, e));
    /// <summary>this^e elementwise.</summary>
    public Tensor Pow(Tensor e) => Wrap(N.rt_pow(H, e.H));
    /// <summary>Python-style remainder (sign of the divisor).</summary>
    public Tensor Remainder(double s) => Wrap(N.rt_remainder_scalar(H, s));
    /// <summary>Python-style remainder (sign of the divisor).</summary>
    public Tensor Remainder(Tensor other) => Wrap(N.rt_remainder(H, other.H));
    /// <summary>Elementwise minimum.</summary>
    public Tensor Minimum(Tensor other) => Wrap(N.rt_minimum(H, other.H));
    /// <summary>Elementwise maximum.</summary>
    public Tensor Maximum(Tensor other) => Wrap(N.rt_maximum(H, other.H));
    /// <summary>Clamps into [min, max]; a null bound is open.</summary>
    public Tensor Clamp(double? min = null, double? max = null) =>
        Wrap(N.rt_clamp(H, min ?? 0, max ?? 0, min.HasValue ? 1 : 0, max.HasValue ? 1 : 0));
    /// <summary>Clamps elementwise between tensors; a null bound is open.</summary>
    public Tensor Clamp(Tensor? min, Tensor? max) => Wrap(N.rt_clamp_t(H, Opt(min), Opt(max)));

    /// <summary>Elementwise sum.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => a.Add(b);
    /// <summary>Elementwise difference.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => a.Sub(b);
    /// <summary>Elementwise product.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => a.Mul(b);
    /// <summary>Elementwise quotient.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => a.Div(b);
    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(Tensor a, double s) => a.Add(s);
    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(double s, Tensor a) => a.Add(s);
    /// <summary>Subtracts a scalar.</summary>
    public static Tensor operator -(Tensor a, double s) => a.Add(-s);
    /// <summary>s − a.</summary>
    public static Tensor operator -(double s, Tensor a) => Wrap(N.rt_rsub_scalar(a.H, s));
    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(Tensor a, double s) => a.Mul(s);
    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(double s, Tensor a) => a.Mul(s);
    /// <summary>Divides by a scalar.</summary>
    public static Tensor operator /(Tensor a, double s) => a.Div(s);
    /// <summary>s / a (as torch's <c>__rdiv__</c>: reciprocal, then scale out of place — scaling the
    /// reciprocal in place would break its backward, which reads its own output).</summary>
    public static Tensor operator /(double s, Tensor a)
    {
        using var r = a.Reciprocal();
        return r.Mul(s);
    }
    /// <summary>Negation.</summary>
    public static Tensor operator -(Tensor a) => a.Neg();

    // ---- in place (return this) ----

    /// <summary>this += alpha·other.</summary>
    public Tensor Add_(Tensor other, double alpha = 1) { Check(N.rt_add_(H, other.H, alpha)); return this; }
    /// <summary>this −= alpha·other.</summary>
    public Tensor Sub_(Tensor other, double alpha = 1) { Check(N.rt_sub_(H, other.H, alpha)); return this; }
    /// <summary>this *= other.</summary>
    public Tensor Mul_(Tensor other) { Check(N.rt_mul_(H, other.H)); return this; }
    /// <summary>this /= other.</summary>
    public Tensor Div_(Tensor other) { Check(N.rt_div_(H, other.H)); return this; }
    /// <summary>this += s.</summary>
    public Tensor Add_(double s) { Check(N.rt_add_scalar_(H, s)); return this; }
    /// <summary>this *= s.</summary>
    public Tensor Mul_(double s) { Check(N.rt_mul_scalar_(H, s)); return this; }
    /// <summary>this /= s.</summary>
    public Tensor Div_(double s) { Check(N.rt_div_scalar_(H, s)); return this; }
    /// <summary>this = this^e.</summary>
    public Tensor Pow_(double e) { Check(N.rt_pow_scalar_(H, e)); return this; }
    /// <summary>this += v·a·b.</summary>
    public Tensor Addcmul_(Tensor a, Tensor b, double v = 1) { Check(N.rt_addcmul_(H, a.H, b.H, v)); return this; }
    /// <summary>this += v·a/b.</summary>
    public Tensor Addcdiv_(Tensor a, Tensor b, double v = 1) { Check(N.rt_addcdiv_(H, a.H, b.H, v)); return this; }
    /// <summary>this += w·(end − this).</summary>
    public Tensor Lerp_(Tensor end, double w) { Check(N.rt_lerp_(H, end.H, w)); return this; }
    /// <summary>Clamps in place.</summary>
    public Tensor Clamp_(double? min = null, double? max = null)
    {
        Check(N.rt_clamp_(H, min ?? 0, max ?? 0, min.HasValue ? 1 : 0, max.HasValue ? 1 : 0));
        return this;
    }
    /// <summary>Fills with a value.</summary>
    public Tensor Fill_(double v) { Check(N.rt_fill_(H, v)); return this; }
    /// <summary>Fills with zeros.</summary>
    public Tensor Zero_() { Check(N.rt_zero_(H)); return this; }
    /// <summary>Copies <paramref name="src"/> into this (broadcasting, converting dtype and device).</summary>
    public Tensor Copy_(Tensor src, bool nonBlocking = false) { Check(N.rt_copy_(H, src.H, nonBlocking ? 1 : 0)); return this; }
    /// <summary>Replaces this tensor's data with <paramref name="src"/>'s (autograd-invisible), like <c>p.data = src</c>.</summary>
    public Tensor SetData(Tensor src) { Check(N.rt_set_data(H, src.H)); return this; }
    /// <summary>Negates in place.</summary>
    public Tensor Neg_() { Check(N.rt_neg_(H)); return this; }
    /// <summary>Exponentiates in place.</summary>
    public Tensor Exp_() { Check(N.rt_exp_(H)); return this; }
    /// <summary>Square root in place.</summary>
    public Tensor Sqrt_() { Check(N.rt_sqrt_(H)); return this; }
    /// <summary>ReLU in place.</summary>
    public Tensor Relu_() { Check(N.rt_relu_(H)); return this; }

    // ---- unary ----

    /// <summary>−x.</summary>
    public Tensor Neg() => Wrap(N.rt_neg(H));
    /// <summary>eˣ.</summary>
    public Tensor Exp() => Wrap(N.rt_exp(H));
    /// <summary>eˣ − 1, accurate near 0.</summary>
    public Tensor Expm1() => Wrap(N.rt_expm1(H));
    /// <summary>Natural log.</summary>
    public Tensor Log() => Wrap(N.rt_log(H));
    /// <summary>log(1 + x), accurate near 0.</summary>
    public Tensor Log1p() => Wrap(N.rt_log1p(H));
    /// <summary>Base-2 log.</summary>
    public Tensor Log2() => Wrap(N.rt_log2(H));
    /// <summary>√x.</summary>
    public Tensor Sqrt() => Wrap(N.rt_sqrt(H));
    /// <summary>1/√x.</summary>
    public Tensor Rsqrt() => Wrap(N.rt_rsqrt(H));
    /// <summary>|x|.</summary>
    public Tensor Abs() => Wrap(N.rt_abs(H));
    /// <summary>sign(x) ∈ {−1, 0, 1}.</summary>
    public Tensor Sign() => Wrap(N.rt_sign(H));
    /// <summary>x².</summary>
    public Tensor Square() => Wrap(N.rt_square(H));
    /// <summary>1/x.</summary>
    public Tensor Reciprocal() => Wrap(N.rt_reciprocal(H));
    /// <summary>sin x.</summary>
    public Tensor Sin() => Wrap(N.rt_sin(H));
    /// <summary>cos x.</summary>
    public Tensor Cos() => Wrap(N.rt_cos(H));
    /// <summary>tanh x.</summary>
    public Tensor Tanh() => Wrap(N.rt_tanh(H));
    /// <summary>erf x.</summary>
    public Tensor Erf() => Wrap(N.rt_erf(H));
    /// <summary>σ(x) = 1/(1+e⁻ˣ).</summary>
    public Tensor Sigmoid() => Wrap(N.rt_sigmoid(H));
    /// <summary>log σ(x), computed stably.</summary>
    public Tensor LogSigmoid() => Wrap(N.rt_logsigmoid(H));
    /// <summary>max(x, 0).</summary>
    public Tensor Relu() => Wrap(N.rt_relu(H));
    /// <summary>x·σ(x).</summary>
    public Tensor Silu() => Wrap(N.rt_silu(H));
    /// <summary>GELU: exact (erf) or the tanh approximation (GPT-2's gelu_new).</summary>
    public Tensor Gelu(bool tanhApproximation = false) => Wrap(N.rt_gelu(H, tanhApproximation ? 1 : 0));
    /// <summary>log(1 + e^(βx))/β, linear above the threshold.</summary>
    public Tensor Softplus(double beta = 1, double threshold = 20) => Wrap(N.rt_softplus(H, beta, threshold));
    /// <summary>⌊x⌋.</summary>
    public Tensor Floor() => Wrap(N.rt_floor(H));
    /// <summary>⌈x⌉.</summary>
    public Tensor Ceil() => Wrap(N.rt_ceil(H));
    /// <summary>Rounds half to even.</summary>
    public Tensor Round() => Wrap(N.rt_round(H));
    /// <summary>NaN test.</summary>
    public Tensor IsNan() => Wrap(N.rt_isnan(H));
    /// <summary>±∞ test.</summary>
    public Tensor IsInf() => Wrap(N.rt_isinf(H));
    /// <summary>Finite test.</summary>
    public Tensor IsFinite() => Wrap(N.rt_isfinite(H));
    /// <summary>Logical not.</summary>
    public Tensor LogicalNot() => Wrap(N.rt_logical_not(H));
    /// <summary>A copy with its own storage (autograd records it).</summary>
    public Tensor Clone() => Wrap(N.rt_clone(H));
    /// <summary>The same data, cut from the autograd graph.</summary>
    public Tensor Detach() => Wrap(N.rt_detach(H));

    // ---- linear algebra ----

    /// <summary>Matrix product with numpy broadcasting (<c>torch.matmul</c>).</summary>
    public Tensor Matmul(Tensor other) => Wrap(N.rt_matmul(H, other.H));
    /// <summary>2-D matrix product.</summary>
    public Tensor Mm(Tensor other) => Wrap(N.rt_mm(H, other.H));
    /// <summary>Batched matrix product [B, n, m] × [B, m, p].</summary>
    public Tensor Bmm(Tensor other) => Wrap(N.rt_bmm(H, other.H));
    /// <summary>Outer product of two vectors.</summary>
    public Tensor Outer(Tensor other) => Wrap(N.rt_outer(H, other.H));

    // ---- comparison and logic ----

    /// <summary>Elementwise ==.</summary>
    public Tensor Eq(Tensor o) => Wrap(N.rt_eq(H, o.H));
    /// <summary>Elementwise !=.</summary>
    public Tensor Ne(Tensor o) => Wrap(N.rt_ne(H, o.H));
    /// <summary>Elementwise &lt;.</summary>
    public Tensor Lt(Tensor o) => Wrap(N.rt_lt(H, o.H));
    /// <summary>Elementwise &lt;=.</summary>
    public Tensor Le(Tensor o) => Wrap(N.rt_le(H, o.H));
    /// <summary>Elementwise &gt;.</summary>
    public Tensor Gt(Tensor o) => Wrap(N.rt_gt(H, o.H));
    /// <summary>Elementwise &gt;=.</summary>
    public Tensor Ge(Tensor o) => Wrap(N.rt_ge(H, o.H));
    /// <summary>Elementwise == s.</summary>
    public Tensor Eq(double s) => Wrap(N.rt_eq_scalar(H, s));
    /// <summary>Elementwise != s.</summary>
    public Tensor Ne(double s) => Wrap(N.rt_ne_scalar(H, s));
    /// <summary>Elementwise &lt; s.</summary>
    public Tensor Lt(double s) => Wrap(N.rt_lt_scalar(H, s));
    /// <summary>Elementwise &lt;= s.</summary>
    public Tensor Le(double s) => Wrap(N.rt_le_scalar(H, s));
    /// <summary>Elementwise &gt; s.</summary>
    public Tensor Gt(double s) => Wrap(N.rt_gt_scalar(H, s));
    /// <summary>Elementwise &gt;= s.</summary>
    public Tensor Ge(double s) => Wrap(N.rt_ge_scalar(H, s));
    /// <summary>Logical and.</summary>
    public Tensor LogicalAnd(Tensor o) => Wrap(N.rt_logical_and(H, o.H));
    /// <summary>Logical or.</summary>
    public Tensor LogicalOr(Tensor o) => Wrap(N.rt_logical_or(H, o.H));
    /// <summary>Logical xor.</summary>
    public Tensor LogicalXor(Tensor o) => Wrap(N.rt_logical_xor(H, o.H));
    /// <summary>True when shapes and every element are equal.</summary>
    public bool Equal(Tensor o)
    {
        var r = N.rt_equal(H, o.H);
        if (r < 0) ThrowLastError();
        return r == 1;
    }
    /// <summary>|a − b| ≤ atol + rtol·|b| everywhere.</summary>
    public bool AllClose(Tensor o, double rtol = 1e-5, double atol = 1e-8)
    {
        var r = N.rt_allclose(H, o.H, rtol, atol);
        if (r < 0) ThrowLastError();
        return r == 1;
    }

    // ---- conversion ----

    /// <summary>Converts the element type.</summary>
    public Tensor To(ScalarType dtype) => Wrap(N.rt_to_dtype(H, (int)dtype));
    /// <summary>Moves to a device.</summary>
    public Tensor To(Device device, bool nonBlocking = false) =>
        Wrap(N.rt_to_device(H, (int)device.Type, device.NativeIndex, nonBlocking ? 1 : 0));
    /// <summary>Moves to the CPU.</summary>
    public Tensor Cpu() => To(Device.Cpu);
    /// <summary>Moves to CUDA device <paramref name="index"/>.</summary>
    public Tensor Cuda(int index = 0) => To(Device.Cuda(index));
    /// <summary>Converts to float32.</summary>
    public Tensor Float() => To(ScalarType.Float32);
    /// <summary>Converts to float64.</summary>
    public Tensor Double() => To(ScalarType.Float64);
    /// <summary>Converts to int64.</summary>
    public Tensor Long() => To(ScalarType.Int64);
    /// <summary>Converts to int32.</summary>
    public Tensor Int() => To(ScalarType.Int32);
    /// <summary>Converts to bool.</summary>
    public Tensor Bool() => To(ScalarType.Bool);
    /// <summary>Converts to bfloat16.</summary>
    public Tensor BFloat16() => To(ScalarType.BFloat16);
    /// <summary>Converts to float16.</summary>
    public Tensor Half() => To(ScalarType.Float16);
    /// <summary>A page-locked copy (CUDA builds); the tensor itself on CPU-only builds.</summary>
    public Tensor PinMemory() => Wrap(N.rt_pin_memory(H));
}
