// Fused element-wise layers for training and generation on the CPU, forward and backward: RMSNorm, rotary position
// embedding and SwiGLU's silu(gate) · up. Eager code runs each as a chain of whole-tensor ops (RMSNorm: square, mean, add, rsqrt, mul, mul — and
// about a dozen more in backward; rotary: two narrows, neg, cat, two muls, add — likewise), each a pass over memory and
// a tensor for autograd to keep. Here each is one pass per row, and backward one more. Float32 and float64.
//
// Determinism: every result is a function of the inputs alone, not of the thread count. Rows are independent; the one
// reduction across rows (RMSNorm's weight gradient) sums fixed chunks of rows, then the chunks in order.
#include "common.h"
#include <ATen/Parallel.h>
#include "simd.h"

namespace {

constexpr int64_t kRowChunk = 64;   // rows per task, and per partial sum of the norm weight's gradient

// Work is split across threads only in pieces of about this many elements (ATen's own grain): a parallel region costs
// tens of microseconds to wake, more than a small model's whole norm or rotary takes on one thread.
constexpr int64_t kElementGrain = 1 << 15;

// How many units of `unit_elements` elements make one piece of parallel work (at least one).
inline int64_t grain_units(int64_t unit_elements) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, unit_elements)); }

// ---- RMSNorm: y = w · (x · r), r = 1/√(mean(x²) + eps), per row of the last dim (HF Llama's order of rounding). ----

template <typename T>
void rms_forward(const T* x, const T* w, T* y, T* inv, int64_t rows, int64_t D, double eps) {
  at::parallel_for(0, (rows + kRowChunk - 1) / kRowChunk, grain_units(kRowChunk * D), [&](int64_t c0, int64_t c1) {
    for (int64_t row = c0 * kRowChunk; row < std::min(rows, c1 * kRowChunk); ++row) {
      const T* xr = x + row * D;
      T* yr = y + row * D;
      T ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
      const T r = T(1) / std::sqrt(ss / static_cast<T>(D) + static_cast<T>(eps));
      inv[row] = r;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = w[d] * (xr[d] * r);
    }
  });
}

// dx = r · (g − n · mean(g ⊙ n)) with g = dy ⊙ w and n = x · r; dw = Σ_rows dy ⊙ n.
template <typename T>
void rms_backward(const T* x, const T* w, const T* inv, const T* dy, T* dx, T* dw, int64_t rows, int64_t D, bool need_dx, bool need_dw) {
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<T> partial(need_dw ? static_cast<size_t>(chunks * D) : 0, T(0));
  at::parallel_for(0, chunks, grain_units(kRowChunk * D), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* part = need_dw ? partial.data() + c * D : nullptr;
      for (int64_t row = c * kRowChunk; row < std::min(rows, (c + 1) * kRowChunk); ++row) {
        const T* xr = x + row * D;
        const T* dyr = dy + row * D;
        const T r = inv[row];
        if (need_dw) {
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) part[d] += dyr[d] * (xr[d] * r);
        }
        if (need_dx) {
          T dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < D; ++d) dot += (dyr[d] * w[d]) * (xr[d] * r);
          const T m = dot / static_cast<T>(D);
          T* dxr = dx + row * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) dxr[d] = r * (dyr[d] * w[d] - (xr[d] * r) * m);
        }
      }
    }
  });
  if (!need_dw) return;
  for (int64_t d = 0; d < D; ++d) dw[d] = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const T* part = partial.data() + c * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) dw[d] += part[d];
  }
}

class RmsNormFn : public torch::autograd::Function<RmsNormFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, double eps) {
    const at::Tensor X = x.contiguous(), W = w.contiguous();
    const int64_t D = X.size(-1), rows = D == 0 ? 0 : X.numel() / D;
    at::Tensor y = at::empty_like(X, at::MemoryFormat::Contiguous);
    at::Tensor inv = at::empty({rows}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rt_rms_norm", [&] {
      rms_forward<scalar_t>(X.data_ptr<scalar_t>(), W.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), inv.data_ptr<scalar_t>(), rows, D, eps);
    });
    ctx->save_for_backward({X, W, inv});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &X = saved[0], &W = saved[1], &inv = saved[2];
    const at::Tensor dY = grads[0].contiguous();
    const bool need_dx = ctx->needs_input_grad(0), need_dw = ctx->needs_input_grad(1);
    const int64_t D = X.size(-1), rows = D == 0 ? 0 : X.numel() / D;
    at::Tensor dX = need_dx ? at::empty_like(X) : at::Tensor();
    at::Tensor dW = need_dw ? at::empty_like(W) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rt_rms_norm_backward", [&] {
      rms_backward<scalar_t>(X.data_ptr<scalar_t>(), W.data_ptr<scalar_t>(), inv.data_ptr<scalar_t>(), dY.data_ptr<scalar_t>(),
                             need_dx ? dX.data_ptr<scalar_t>() : nullptr, need_dw ? dW.data_ptr<scalar_t>() : nullptr, rows, D, need_dx, need_dw);
    });
    return {dX, dW, at::Tensor()};
  }
};

// ---- Rotary: y = x ⊙ cos + rotate_half(x) ⊙ sin over the whole head, rotate_half([a, b]) = [−b, a]. ----
// x [B, H, T, hd] with unit stride in hd (any other strides: q and k arrive as transposed views of the projections);
// cos, sin [B|1, 1, T, hd]. y is contiguous [B, H, T, hd], the layout attention reads.

struct RotaryShape {
  int64_t B, H, T, hd, sb, sh, st;   // x's sizes, and its strides in B, H, T
  int64_t tb;                        // the tables' batch stride (0 when they broadcast over the batch)
};

template <typename T>
void rotary_forward(const T* x, const T* cos, const T* sin, T* y, const RotaryShape& s) {
  const int64_t half = s.hd / 2, rows = s.B * s.H * s.T;
  at::parallel_for(0, rows, grain_units(s.hd), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i % s.T, h = (i / s.T) % s.H, b = i / (s.T * s.H);
      const T* xr = x + b * s.sb + h * s.sh + t * s.st;
      const T* c = cos + b * s.tb + t * s.hd;
      const T* sn = sin + b * s.tb + t * s.hd;
      T* yr = y + i * s.hd;
#pragma omp simd
      for (int64_t d = 0; d < half; ++d) yr[d] = xr[d] * c[d] + (-xr[d + half]) * sn[d];
#pragma omp simd
      for (int64_t d = half; d < s.hd; ++d) yr[d] = xr[d] * c[d] + xr[d - half] * sn[d];
    }
  });
}

// dx_j = dy_j · cos_j + (j < half ? dy_{j+half} · sin_{j+half} : −dy_{j−half} · sin_{j−half}); dy contiguous, dx contiguous.
template <typename T>
void rotary_backward(const T* dy, const T* cos, const T* sin, T* dx, const RotaryShape& s) {
  const int64_t half = s.hd / 2, rows = s.B * s.H * s.T;
  at::parallel_for(0, rows, grain_units(s.hd), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i % s.T, b = i / (s.T * s.H);
      const T* g = dy + i * s.hd;
      const T* c = cos + b * s.tb + t * s.hd;
      const T* sn = sin + b * s.tb + t * s.hd;
      T* o = dx + i * s.hd;
#pragma omp simd
      for (int64_t d = 0; d < half; ++d) o[d] = g[d] * c[d] + g[d + half] * sn[d + half];
#pragma omp simd
      for (int64_t d = half; d < s.hd; ++d) o[d] = g[d] * c[d] + (-(g[d - half] * sn[d - half]));
    }
  });
}

RotaryShape rotary_shape(const at::Tensor& x, const at::Tensor& tables) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2),
          tables.size(0) == 1 ? 0 : tables.stride(0)};
}

class RotaryFn : public torch::autograd::Function<RotaryFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    const at::Tensor X = x.stride(3) == 1 ? x : x.contiguous();
    const at::Tensor C = cos.contiguous(), S = sin.contiguous();
    const RotaryShape s = rotary_shape(X, C);
    at::Tensor y = at::empty({s.B, s.H, s.T, s.hd}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rt_rotary", [&] {
      rotary_forward<scalar_t>(X.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(), S.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), s);
    });
    ctx->save_for_backward({C, S});
    ctx->saved_data["heads"] = s.H;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &C = saved[0], &S = saved[1];
    const at::Tensor dY = grads[0].contiguous();
    const RotaryShape s = rotary_shape(dY, C);
    at::Tensor dX = at::empty_like(dY);
    AT_DISPATCH_FLOATING_TYPES(dY.scalar_type(), "rt_rotary_backward", [&] {
      rotary_backward<scalar_t>(dY.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(), S.data_ptr<scalar_t>(), dX.data_ptr<scalar_t>(), s);
    });
    return {dX, at::Tensor(), at::Tensor()};
  }
};

// ---- SwiGLU: y = silu(g) · u, silu(g) = g / (1 + exp(−g)) as ATen computes it. ----
// Backward with s = σ(g): du = dy · silu(g), dg = (dy · u) · s · (1 + g · (1 − s)) (ATen's silu_backward of dy · u).

template <typename T>
inline void silu_mul_range(const T* g, const T* u, T* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) y[i] = (g[i] / (T(1) + std::exp(-g[i]))) * u[i];
}

template <typename T>
inline void silu_mul_backward_range(const T* g, const T* u, const T* dy, T* dg, T* du, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const T denom = T(1) + std::exp(-g[i]), s = T(1) / denom;
    if (du) du[i] = dy[i] * (g[i] / denom);
    if (dg) dg[i] = (dy[i] * u[i]) * s * (T(1) + g[i] * (T(1) - s));
  }
}

__attribute__((target("avx2,fma"))) void silu_mul_avx2(const float* g, const float* u, float* y, int64_t begin, int64_t end) {
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, rt::exp8(_mm256_sub_ps(zero, x))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
  }
  silu_mul_range(g, u, y, i, end);
}

__attribute__((target("avx2,fma"))) void silu_mul_backward_avx2(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t begin, int64_t end) {
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i), d = _mm256_loadu_ps(dy + i);
    const __m256 denom = _mm256_add_ps(one, rt::exp8(_mm256_sub_ps(zero, x)));
    if (du) _mm256_storeu_ps(du + i, _mm256_mul_ps(d, _mm256_div_ps(x, denom)));
    if (dg) {
      const __m256 s = _mm256_div_ps(one, denom);
      const __m256 t = _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, s)));
      _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(u + i)), s), t));
    }
  }
  silu_mul_backward_range(g, u, dy, dg, du, i, end);
}

// One chunk: float32 on an AVX2 CPU takes the vector loops, anything else the scalar ones.
template <typename T>
void silu_mul_chunk(const T* g, const T* u, T* y, int64_t begin, int64_t end, bool) { silu_mul_range(g, u, y, begin, end); }
void silu_mul_chunk(const float* g, const float* u, float* y, int64_t begin, int64_t end, bool avx2) {
  if (avx2) silu_mul_avx2(g, u, y, begin, end); else silu_mul_range(g, u, y, begin, end);
}
template <typename T>
void silu_mul_backward_chunk(const T* g, const T* u, const T* dy, T* dg, T* du, int64_t begin, int64_t end, bool) {
  silu_mul_backward_range(g, u, dy, dg, du, begin, end);
}
void silu_mul_backward_chunk(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t begin, int64_t end, bool avx2) {
  if (avx2) silu_mul_backward_avx2(g, u, dy, dg, du, begin, end); else silu_mul_backward_range(g, u, dy, dg, du, begin, end);
}

class SiluMulFn : public torch::autograd::Function<SiluMulFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    const at::Tensor G = gate.contiguous(), U = up.contiguous();
    at::Tensor y = at::empty_like(G, at::MemoryFormat::Contiguous);
    const int64_t n = G.numel();
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "rt_silu_mul", [&] {
      const scalar_t *g = G.data_ptr<scalar_t>(), *u = U.data_ptr<scalar_t>();
      scalar_t* o = y.data_ptr<scalar_t>();
      const bool avx2 = std::is_same<scalar_t, float>::value && rt::has_avx2_fma();
      at::parallel_for(0, n, kElementGrain, [&](int64_t begin, int64_t end) {
        silu_mul_chunk(g, u, o, begin, end, avx2);
      });
    });
    ctx->save_for_backward({G, U});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &G = saved[0], &U = saved[1];
    const at::Tensor dY = grads[0].contiguous();
    const bool need_dg = ctx->needs_input_grad(0), need_du = ctx->needs_input_grad(1);
    at::Tensor dG = need_dg ? at::empty_like(G) : at::Tensor(), dU = need_du ? at::empty_like(U) : at::Tensor();
    const int64_t n = G.numel();
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "rt_silu_mul_backward", [&] {
      const scalar_t *g = G.data_ptr<scalar_t>(), *u = U.data_ptr<scalar_t>(), *dy = dY.data_ptr<scalar_t>();
      scalar_t* dg = need_dg ? dG.data_ptr<scalar_t>() : nullptr;
      scalar_t* du = need_du ? dU.data_ptr<scalar_t>() : nullptr;
      const bool avx2 = std::is_same<scalar_t, float>::value && rt::has_avx2_fma();
      at::parallel_for(0, n, kElementGrain, [&](int64_t begin, int64_t end) {
        silu_mul_backward_chunk(g, u, dy, dg, du, begin, end, avx2);
      });
    });
    return {dG, dU};
  }
};

void check_floating_cpu(const at::Tensor& t, const char* what, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), what, ": ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, what, ": ", name, " must be float32 or float64, got ", t.scalar_type());
}

}  // namespace

RT_API rt_tensor rt_rms_norm(rt_tensor x, rt_tensor weight, double eps) {
  RT_GUARD(nullptr,
    const at::Tensor &X = *x, &W = *weight;
    check_floating_cpu(X, "rms norm", "x");
    check_floating_cpu(W, "rms norm", "weight");
    TORCH_CHECK(X.dim() >= 1 && W.dim() == 1 && W.size(0) == X.size(-1), "rms norm: weight must be [", X.dim() >= 1 ? X.size(-1) : 0, "] (x's last dim), got ", W.sizes());
    TORCH_CHECK(W.scalar_type() == X.scalar_type(), "rms norm: weight (", W.scalar_type(), ") and x (", X.scalar_type(), ") must have one dtype");
    TORCH_CHECK(eps >= 0 && std::isfinite(eps), "rms norm: eps must be finite and ≥ 0, got ", eps);
    return rt::wrap(RmsNormFn::apply(X, W, eps));
  )
}

RT_API rt_tensor rt_rotary(rt_tensor x, rt_tensor cos, rt_tensor sin) {
  RT_GUARD(nullptr,
    const at::Tensor &X = *x, &C = *cos, &S = *sin;
    check_floating_cpu(X, "rotary", "x");
    check_floating_cpu(C, "rotary", "cos");
    check_floating_cpu(S, "rotary", "sin");
    TORCH_CHECK(X.dim() == 4 && X.size(3) % 2 == 0, "rotary: x must be [B, H, T, hd] with an even hd, got ", X.sizes());
    TORCH_CHECK(C.sizes() == S.sizes() && C.dim() == 4 && (C.size(0) == 1 || C.size(0) == X.size(0)) && C.size(1) == 1 &&
                C.size(2) == X.size(2) && C.size(3) == X.size(3),
                "rotary: cos and sin must both be [B|1, 1, T, hd] = [", X.size(0), "|1, 1, ", X.size(2), ", ", X.size(3), "], got ", C.sizes(), " and ", S.sizes());
    TORCH_CHECK(C.scalar_type() == X.scalar_type() && S.scalar_type() == X.scalar_type(), "rotary: x, cos and sin must have one dtype");
    TORCH_CHECK(!C.requires_grad() && !S.requires_grad(), "rotary: the cos/sin tables must not require grad (the kernel gives them none)");
    return rt::wrap(RotaryFn::apply(X, C, S));
  )
}

RT_API rt_tensor rt_silu_mul(rt_tensor gate, rt_tensor up) {
  RT_GUARD(nullptr,
    const at::Tensor &G = *gate, &U = *up;
    check_floating_cpu(G, "silu mul", "gate");
    check_floating_cpu(U, "silu mul", "up");
    TORCH_CHECK(G.sizes() == U.sizes(), "silu mul: gate and up must have one shape, got ", G.sizes(), " and ", U.sizes());
    TORCH_CHECK(G.scalar_type() == U.scalar_type(), "silu mul: gate (", G.scalar_type(), ") and up (", U.scalar_type(), ") must have one dtype");
    return rt::wrap(SiluMulFn::apply(G, U));
  )
}
