// Fused paged attention for decoding on the CPU (vLLM's paged attention, in spirit): keys and values are read straight
// from the KV cache's rows through each sequence's row table, with no gather into a padded batch and no per-sequence
// BLAS call. Inference only (no autograd); float32.
#include "common.h"
#include <ATen/Parallel.h>
#include <limits>
#include "simd.h"
#include "blas.h"

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
    const bool avx2 = rt::has_avx2_fma();
    at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
      if (avx2) attend_range_avx2(a, begin, end); else attend_range_generic(a, begin, end);
    });
    return rt::wrap(std::move(out));
  )
}

// ---------------------------------------------------------------------------------------------------------------------
// Fused causal self-attention for training on the CPU, forward and backward: the eager sequence
// (q·kᵀ, ·scale, masked_fill(lowest), softmax, ·v) run per (batch, head) on one thread each, in row blocks that stop at
// the diagonal: a row block of queries [i0, i1) only multiplies keys [0, i1), so about half of the scores, softmax and
// both products above the diagonal are never computed (eager code computes the full T×T and masks it). The probabilities
// are saved for backward as eager softmax saves its output, packed by row block (nothing above a block's diagonal).
// A query with no allowed key (left padding) gets eager's uniform row over all T keys, and no gradient to q or k.
//
// The inner loops work on raw pointers: each block's products are single BLAS calls (sgemm, with the score scale folded
// into alpha and accumulations into beta) and its masking, softmax and softmax backward are loops over the block's rows.
// A block made of ATen calls (narrow, mm_out, mul_, masked_fill_, _softmax_out, …: about 15 per block, thousands per
// step) spent more time in dispatch than in arithmetic at these sizes.


namespace {

constexpr int64_t kCausalRowBlock = 32;

// e[c] = exp(s[c] − mx) for c < n, returning Σ e.
__attribute__((target("avx2,fma"))) float exp_sum_avx2(float* s, int64_t n, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 e = rt::exp8(_mm256_sub_ps(_mm256_loadu_ps(s + c), m));
    _mm256_storeu_ps(s + c, e);
    acc = _mm256_add_ps(acc, e);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; c < n; ++c) { s[c] = std::exp(s[c] - mx); sum += s[c]; }
  return sum;
}

float exp_sum_generic(float* s, int64_t n, float mx) {
  float sum = 0.f;
  for (int64_t c = 0; c < n; ++c) { s[c] = std::exp(s[c] - mx); sum += s[c]; }
  return sum;
}

// One query row's scores s[0, width) (already scaled) → probabilities in place: keys [0, n) are causal-visible, of
// which `allowed` (null: all) says which are real; every other entry becomes 0, as eager masked_fill(lowest) + softmax
// gives. The caller guarantees at least one visible allowed key.
void softmax_row(float* s, int64_t n, int64_t width, const bool* allowed, bool avx2) {
  float mx = std::numeric_limits<float>::lowest();
  if (allowed == nullptr) {
    for (int64_t c = 0; c < n; ++c) mx = std::max(mx, s[c]);
  } else {
    for (int64_t c = 0; c < n; ++c) if (allowed[c]) mx = std::max(mx, s[c]);
  }
  float sum = avx2 ? exp_sum_avx2(s, n, mx) : exp_sum_generic(s, n, mx);
  if (allowed != nullptr) {
    for (int64_t c = 0; c < n; ++c)
      if (!allowed[c]) s[c] = 0.f;
    sum = 0.f;                                                  // re-summed exactly over the allowed keys
    for (int64_t c = 0; c < n; ++c) sum += s[c];
  }
  const float inv = 1.f / sum;
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) s[c] *= inv;
  for (int64_t c = n; c < width; ++c) s[c] = 0.f;
}

struct CausalShapes {
  int64_t B, H, T, hd;
};

// The first allowed key of each batch row (T when none): query r has no allowed key iff r < first[b].
std::vector<int64_t> first_allowed(const at::Tensor& allowed, int64_t B, int64_t T) {
  std::vector<int64_t> first(static_cast<size_t>(B), 0);
  if (!allowed.defined()) return first;
  const bool* a = allowed.data_ptr<bool>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t c = 0;
    while (c < T && !a[b * T + c]) ++c;
    first[static_cast<size_t>(b)] = c;
  }
  return first;
}

// The probabilities are kept packed: row block j ([i0, i1) × [0, i1)) contiguous at offset Σ_{j'<j} r_j'·i1_j'.
std::vector<int64_t> block_offsets(int64_t T) {
  std::vector<int64_t> off;
  int64_t at = 0;
  for (int64_t i0 = 0; i0 < T; i0 += kCausalRowBlock) {
    off.push_back(at);
    const int64_t i1 = std::min(T, i0 + kCausalRowBlock);
    at += (i1 - i0) * i1;
  }
  off.push_back(at);
  return off;
}

class CausalAttentionFn : public torch::autograd::Function<CausalAttentionFn> {
 public:
  // allowed travels as an optional (not a tensor input): autograd's apply rejects an undefined tensor argument.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const c10::optional<at::Tensor>& allowed_opt, double scale) {
    const at::Tensor allowed = allowed_opt.has_value() ? *allowed_opt : at::Tensor();
    const at::Tensor Q = q.contiguous(), K = k.contiguous(), V = v.contiguous();
    const CausalShapes s{Q.size(0), Q.size(1), Q.size(2), Q.size(3)};
    const auto first = first_allowed(allowed, s.B, s.T);
    const auto off = block_offsets(s.T);
    at::Tensor probs = at::empty({s.B * s.H, off.back()}, Q.options());
    at::Tensor out = at::empty({s.B, s.H, s.T, s.hd}, Q.options());
    const float *q0 = Q.data_ptr<float>(), *k0 = K.data_ptr<float>(), *v0 = V.data_ptr<float>();
    const bool* a0 = allowed.defined() ? allowed.data_ptr<bool>() : nullptr;
    float *p0 = probs.data_ptr<float>(), *o0 = out.data_ptr<float>();
    const int64_t T = s.T, hd = s.hd, plen = off.back();
    const float fscale = static_cast<float>(scale);
    const bool avx2 = rt::has_avx2_fma();
    at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / s.H;
        const float *Qb = q0 + bh * T * hd, *Kb = k0 + bh * T * hd, *Vb = v0 + bh * T * hd;
        float *Pb = p0 + bh * plen, *Ob = o0 + bh * T * hd;
        const bool* ab = a0 ? a0 + b * T : nullptr;
        const int64_t none = std::min(first[static_cast<size_t>(b)], T);
        for (int64_t j = 0, i0 = 0; i0 < T; ++j, i0 += kCausalRowBlock) {
          const int64_t i1 = std::min(T, i0 + kCausalRowBlock), r = i1 - i0;
          float* P = Pb + off[static_cast<size_t>(j)];
          rt::gemm_rm(false, true, r, i1, hd, fscale, Qb + i0 * hd, hd, Kb, hd, 0.f, P, i1);       // S = scale · Q·Kᵀ
          for (int64_t rr = 0; rr < r; ++rr) {
            float* row = P + rr * i1;
            if (i0 + rr < none) std::fill(row, row + i1, 0.f);                                  // no key: handled below
            else softmax_row(row, i0 + rr + 1, i1, ab, avx2);
          }
          rt::gemm_rm(false, false, r, hd, i1, 1.f, P, i1, Vb, hd, 0.f, Ob + i0 * hd, hd);          // O = P·V
        }
        if (none > 0) {                                                                         // uniform rows: mean of V
          std::vector<float> mean(static_cast<size_t>(hd), 0.f);
          for (int64_t c = 0; c < T; ++c)
            for (int64_t d = 0; d < hd; ++d) mean[static_cast<size_t>(d)] += Vb[c * hd + d];
          for (int64_t d = 0; d < hd; ++d) mean[static_cast<size_t>(d)] /= static_cast<float>(T);
          for (int64_t i = 0; i < none; ++i) std::copy(mean.begin(), mean.end(), Ob + i * hd);
        }
      }
    });
    ctx->save_for_backward({Q, K, V, probs});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["first"] = c10::List<int64_t>(first);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &Q = saved[0], &K = saved[1], &V = saved[2], &probs = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto first = ctx->saved_data["first"].toIntVector();
    const CausalShapes s{Q.size(0), Q.size(1), Q.size(2), Q.size(3)};
    const auto off = block_offsets(s.T);
    const at::Tensor dO = grads[0].contiguous();
    at::Tensor dQ = at::empty_like(Q), dK = at::zeros_like(K), dV = at::zeros_like(V);
    const float *q0 = Q.data_ptr<float>(), *k0 = K.data_ptr<float>(), *v0 = V.data_ptr<float>(), *p0 = probs.data_ptr<float>(), *g0 = dO.data_ptr<float>();
    float *dq0 = dQ.data_ptr<float>(), *dk0 = dK.data_ptr<float>(), *dv0 = dV.data_ptr<float>();
    const int64_t T = s.T, hd = s.hd, plen = off.back();
    const float fscale = static_cast<float>(scale);
    at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(static_cast<size_t>(kCausalRowBlock * T));
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / s.H, base = bh * T * hd;
        const float *Qb = q0 + base, *Kb = k0 + base, *Vb = v0 + base, *Pb = p0 + bh * plen, *dOb = g0 + base;
        float *dQb = dq0 + base, *dKb = dk0 + base, *dVb = dv0 + base;
        for (int64_t j = 0, i0 = 0; i0 < T; ++j, i0 += kCausalRowBlock) {
          const int64_t i1 = std::min(T, i0 + kCausalRowBlock), r = i1 - i0;
          const float* P = Pb + off[static_cast<size_t>(j)];
          const float* dOr = dOb + i0 * hd;
          rt::gemm_rm(true, false, i1, hd, r, 1.f, P, i1, dOr, hd, 1.f, dVb, hd);                   // dV += Pᵀ·dO
          float* dS = scratch.data();
          rt::gemm_rm(false, true, r, i1, hd, 1.f, dOr, hd, Vb, hd, 0.f, dS, i1);                   // dP = dO·Vᵀ
          for (int64_t rr = 0; rr < r; ++rr) {                                                  // dS = P ⊙ (dP − Σ dP ⊙ P)
            const float* p = P + rr * i1;
            float* g = dS + rr * i1;
            float dot = 0.f;
#pragma omp simd reduction(+ : dot)
            for (int64_t c = 0; c < i1; ++c) dot += g[c] * p[c];
#pragma omp simd
            for (int64_t c = 0; c < i1; ++c) g[c] = p[c] * (g[c] - dot);
          }
          rt::gemm_rm(false, false, r, hd, i1, fscale, dS, i1, Kb, hd, 0.f, dQb + i0 * hd, hd);     // dQ = scale · dS·K
          rt::gemm_rm(true, false, i1, hd, r, fscale, dS, i1, Qb + i0 * hd, hd, 1.f, dKb, hd);      // dK += scale · dSᵀ·Q
        }
        const int64_t none = std::min<int64_t>(first[static_cast<size_t>(b)], T);
        if (none > 0) {                                                                         // uniform rows: dV += Σ dO / T
          std::vector<float> sum(static_cast<size_t>(hd), 0.f);
          for (int64_t i = 0; i < none; ++i)
            for (int64_t d = 0; d < hd; ++d) sum[static_cast<size_t>(d)] += dOb[i * hd + d];
          const float inv = 1.f / static_cast<float>(T);
          for (int64_t c = 0; c < T; ++c)
            for (int64_t d = 0; d < hd; ++d) dVb[c * hd + d] += sum[static_cast<size_t>(d)] * inv;
        }
      }
    });
    return {dQ, dK, dV, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

RT_API rt_tensor rt_causal_attention(rt_tensor q, rt_tensor k, rt_tensor v, rt_tensor key_allowed, double scale) {
  RT_GUARD(nullptr,
    const at::Tensor &Q = *q, &K = *k, &V = *v;
    TORCH_CHECK(Q.dim() == 4 && K.sizes() == Q.sizes() && V.sizes() == Q.sizes(),
                "causal attention: q, k and v must all be [B, H, T, hd] (repeat grouped key/value heads first), got ", Q.sizes(), ", ", K.sizes(), ", ", V.sizes());
    TORCH_CHECK(Q.device().is_cpu() && K.device().is_cpu() && V.device().is_cpu(), "causal attention: CPU tensors only");
    TORCH_CHECK(Q.scalar_type() == at::kFloat && K.scalar_type() == at::kFloat && V.scalar_type() == at::kFloat, "causal attention: q, k and v must be float32");
    TORCH_CHECK(Q.size(2) > 0 && Q.size(3) > 0, "causal attention: empty sequence or head");
    c10::optional<at::Tensor> allowed;
    if (key_allowed != nullptr) {
      const at::Tensor& A = *key_allowed;
      TORCH_CHECK(A.dim() == 2 && A.size(0) == Q.size(0) && A.size(1) == Q.size(2), "causal attention: key_allowed must be [", Q.size(0), ", ", Q.size(2), "], got ", A.sizes());
      TORCH_CHECK(A.device().is_cpu(), "causal attention: key_allowed must be a CPU tensor");
      allowed = A.to(at::kBool).contiguous();
    }
    return rt::wrap(CausalAttentionFn::apply(Q, K, V, allowed, scale));
  )
}
