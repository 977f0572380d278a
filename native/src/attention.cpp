// Fused paged attention for decoding on the CPU (vLLM's paged attention, in spirit): keys and values are read straight
// from the KV cache's rows through each sequence's row table, with no gather into a padded batch and no per-sequence
// BLAS call. Inference only (no autograd); float32.
#include "common.h"
#include <ATen/Parallel.h>
#include <limits>

namespace {

// One query row against one sequence's keys/values: scores = scale · q·kᵀ (blocked positions at float's lowest, as
// masked_fill(lowest) does before softmax), softmax over the positions, out = Σ p·v.
inline __attribute__((always_inline)) void attend_row(const float* q, const float* k_rows, const float* v_rows,
                                                      const int64_t* rows, const bool* blocked, int64_t ctx, int64_t hd,
                                                      float scale, float* scores, float* out) {
  const float lowest = std::numeric_limits<float>::lowest();
  float mx = lowest;
  for (int64_t c = 0; c < ctx; ++c) {
    float s = lowest;
    if (!blocked[c]) {
      const float* k = k_rows + rows[c] * hd;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t d = 0; d < hd; ++d) acc += q[d] * k[d];
      s = acc * scale;
    }
    scores[c] = s;
    if (s > mx) mx = s;
  }
  float sum = 0.f;
  for (int64_t c = 0; c < ctx; ++c) {
    const float e = std::exp(scores[c] - mx);
    scores[c] = e;
    sum += e;
  }
  const float inv = 1.f / sum;
  for (int64_t d = 0; d < hd; ++d) out[d] = 0.f;
  for (int64_t c = 0; c < ctx; ++c) {
    const float p = scores[c] * inv;
    if (p == 0.f) continue;  // a blocked position (or one whose weight underflows): adds nothing
    const float* v = v_rows + rows[c] * hd;
#pragma omp simd
    for (int64_t d = 0; d < hd; ++d) out[d] += p * v[d];
  }
}

struct Args {
  const float* q; const float* k; const float* v; const int64_t* rows; const bool* blocked; float* out;
  int64_t kv, m, qlen, ctx, hd; float scale;
};

inline __attribute__((always_inline)) void attend_range(const Args& a, int64_t begin, int64_t end) {
  std::vector<float> scores(static_cast<size_t>(a.ctx));
  for (int64_t i = begin; i < end; ++i) {  // i = b·KV + j
    const int64_t b = i / a.kv;
    for (int64_t r = 0; r < a.m; ++r)
      attend_row(a.q + (i * a.m + r) * a.hd, a.k, a.v, a.rows + i * a.ctx, a.blocked + (b * a.qlen + r % a.qlen) * a.ctx,
                 a.ctx, a.hd, a.scale, scores.data(), a.out + (i * a.m + r) * a.hd);
  }
}

__attribute__((target("avx2,fma"))) void attend_range_avx2(const Args& a, int64_t begin, int64_t end) { attend_range(a, begin, end); }
void attend_range_generic(const Args& a, int64_t begin, int64_t end) { attend_range(a, begin, end); }

bool has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

}  // namespace

RT_API rt_tensor rt_paged_decode_attention(rt_tensor q, rt_tensor k_rows, rt_tensor v_rows, rt_tensor rows, rt_tensor blocked, double scale) {
  RT_GUARD(nullptr,
    const at::Tensor &Q = *q, &K = *k_rows, &V = *v_rows, &R = *rows, &M = *blocked;
    TORCH_CHECK(Q.dim() == 4, "paged decode attention: q must be [B, KV, M, hd], got ", Q.sizes());
    const int64_t B = Q.size(0), KV = Q.size(1), Mq = Q.size(2), hd = Q.size(3);
    TORCH_CHECK(K.dim() == 2 && K.size(1) == hd && V.sizes() == K.sizes(), "paged decode attention: k_rows and v_rows must be [R, ", hd, "], got ", K.sizes(), " and ", V.sizes());
    TORCH_CHECK(R.dim() == 3 && R.size(0) == B && R.size(1) == KV, "paged decode attention: rows must be [", B, ", ", KV, ", C], got ", R.sizes());
    const int64_t C = R.size(2);
    TORCH_CHECK(M.dim() == 3 && M.size(0) == B && M.size(2) == C && M.size(1) > 0 && Mq % M.size(1) == 0,
                "paged decode attention: blocked must be [", B, ", Q, ", C, "] with Q dividing ", Mq, ", got ", M.sizes());
    for (const at::Tensor* t : {&Q, &K, &V, &R, &M}) {
      TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "paged decode attention: every input must be a contiguous CPU tensor");
      TORCH_CHECK(!t->requires_grad(), "paged decode attention has no backward: inputs must not require grad");
    }
    TORCH_CHECK(Q.scalar_type() == at::kFloat && K.scalar_type() == at::kFloat && V.scalar_type() == at::kFloat, "paged decode attention: q, k_rows and v_rows must be float32");
    TORCH_CHECK(R.scalar_type() == at::kLong && M.scalar_type() == at::kBool, "paged decode attention: rows must be int64 and blocked bool");
    TORCH_CHECK(C > 0, "paged decode attention: no key positions");
    const int64_t nrows = K.size(0);
    if (R.numel() > 0) {
      const auto lo = R.min().item<int64_t>(), hi = R.max().item<int64_t>();
      TORCH_CHECK(lo >= 0 && hi < nrows, "paged decode attention: a row index is outside the cache's ", nrows, " rows (", lo, "..", hi, ")");
    }
    at::Tensor out = at::empty({B, KV, Mq, hd}, Q.options());
    Args a{Q.data_ptr<float>(), K.data_ptr<float>(), V.data_ptr<float>(), R.data_ptr<int64_t>(), M.data_ptr<bool>(),
           out.data_ptr<float>(), KV, Mq, M.size(1), C, hd, static_cast<float>(scale)};
    const bool avx2 = has_avx2_fma();
    at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
      if (avx2) attend_range_avx2(a, begin, end); else attend_range_generic(a, begin, end);
    });
    return rt::wrap(std::move(out));
  )
}
