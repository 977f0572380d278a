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

// ---------------------------------------------------------------------------------------------------------------------
// Fused causal self-attention for training on the CPU, forward and backward: the eager sequence
// (q·kᵀ, ·scale, masked_fill(lowest), softmax, ·v) run per (batch, head) on one thread each, in row blocks that stop at
// the diagonal: a row block of queries [i0, i1) only multiplies keys [0, i1), so about half of the scores, softmax and
// both products above the diagonal are never computed (eager code computes the full T×T and masks it). The probabilities
// are saved for backward as eager softmax saves its output, packed by row block (nothing above a block's diagonal).
// A query with no allowed key (left padding) gets eager's uniform row over all T keys, and no gradient to q or k.

namespace {

constexpr int64_t kCausalRowBlock = 32;

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

// blocked[b|0, r, c] = key c not allowed for query r: c > r, or key c is padding.
at::Tensor causal_blocked(const at::Tensor& allowed, int64_t T) {
  auto causal = at::ones({T, T}, at::TensorOptions().dtype(at::kBool)).triu(1);
  if (!allowed.defined()) return causal.unsqueeze(0).contiguous();
  return causal.unsqueeze(0).logical_or(allowed.logical_not().unsqueeze(1)).contiguous();  // [B, T, T]
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
    const at::Tensor blocked = causal_blocked(allowed, s.T);
    const auto first = first_allowed(allowed, s.B, s.T);
    const auto off = block_offsets(s.T);
    at::Tensor probs = at::empty({s.B * s.H, off.back()}, Q.options());
    at::Tensor out = at::empty({s.B, s.H, s.T, s.hd}, Q.options());
    const at::Tensor O3 = out.view({s.B * s.H, s.T, s.hd});
    const at::Tensor Q3 = Q.view({s.B * s.H, s.T, s.hd}), K3 = K.view({s.B * s.H, s.T, s.hd}), V3 = V.view({s.B * s.H, s.T, s.hd});
    const float lowest = std::numeric_limits<float>::lowest();
    const float fscale = static_cast<float>(scale);
    at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
      const at::NoGradGuard no_grad;   // grad mode is per thread: OpenMP's workers do not inherit the caller's
      at::Tensor scratch = at::empty({kCausalRowBlock * s.T}, Q.options());
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / s.H;
        const at::Tensor Qb = Q3[bh], Kb = K3[bh], Vb = V3[bh], Pb = probs[bh], Ob = O3[bh];
        const at::Tensor mask = blocked[blocked.size(0) == 1 ? 0 : b];
        const int64_t none = std::min(first[static_cast<size_t>(b)], s.T);
        for (int64_t j = 0, i0 = 0; i0 < s.T; ++j, i0 += kCausalRowBlock) {
          const int64_t i1 = std::min(s.T, i0 + kCausalRowBlock), r = i1 - i0;
          at::Tensor S = scratch.narrow(0, 0, r * i1).view({r, i1});
          at::mm_out(S, Qb.narrow(0, i0, r), Kb.narrow(0, 0, i1).t());
          S.mul_(fscale);
          S.masked_fill_(mask.narrow(0, i0, r).narrow(1, 0, i1), lowest);
          at::Tensor P = Pb.narrow(0, off[static_cast<size_t>(j)], r * i1).view({r, i1});
          at::_softmax_out(P, S, 1, false);
          if (i0 < none) P.narrow(0, 0, std::min(none, i1) - i0).zero_();   // rows without a key: handled below
          at::Tensor Or = Ob.narrow(0, i0, r);
          at::mm_out(Or, P, Vb.narrow(0, 0, i1));
        }
        if (none > 0) Ob.narrow(0, 0, none).copy_(Vb.mean(0, true).expand({none, s.hd}));
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
    const at::Tensor dO = grads[0].contiguous().view({s.B * s.H, s.T, s.hd});
    const at::Tensor Q3 = Q.view({s.B * s.H, s.T, s.hd}), K3 = K.view({s.B * s.H, s.T, s.hd}), V3 = V.view({s.B * s.H, s.T, s.hd});
    at::Tensor dQ = at::empty_like(Q), dK = at::zeros_like(K), dV = at::zeros_like(V);
    const at::Tensor dQ3 = dQ.view({s.B * s.H, s.T, s.hd}), dK3 = dK.view({s.B * s.H, s.T, s.hd}), dV3 = dV.view({s.B * s.H, s.T, s.hd});
    const float fscale = static_cast<float>(scale);
    at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
      const at::NoGradGuard no_grad;   // saved q, k, v require grad; nothing here is recorded
      at::Tensor scratch = at::empty({2 * kCausalRowBlock * s.T}, Q.options());
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / s.H;
        const at::Tensor Qb = Q3[bh], Kb = K3[bh], Vb = V3[bh], Pb = probs[bh], dOb = dO[bh], dQb = dQ3[bh], dKb = dK3[bh], dVb = dV3[bh];
        for (int64_t j = 0, i0 = 0; i0 < s.T; ++j, i0 += kCausalRowBlock) {
          const int64_t i1 = std::min(s.T, i0 + kCausalRowBlock), r = i1 - i0;
          const at::Tensor P = Pb.narrow(0, off[static_cast<size_t>(j)], r * i1).view({r, i1}), dOr = dOb.narrow(0, i0, r);
          dVb.narrow(0, 0, i1).addmm_(P.t(), dOr);                                     // dV += Pᵀ·dO
          at::Tensor dP = scratch.narrow(0, 0, r * i1).view({r, i1});
          at::mm_out(dP, dOr, Vb.narrow(0, 0, i1).t());                                // dP = dO·Vᵀ
          at::Tensor dS = scratch.narrow(0, kCausalRowBlock * s.T, r * i1).view({r, i1});
          at::_softmax_backward_data_out(dS, dP, P, 1, at::kFloat);                    // P ⊙ (dP − Σ dP ⊙ P); 0 where P is 0
          dS.mul_(fscale);
          at::Tensor dQr = dQb.narrow(0, i0, r);
          at::mm_out(dQr, dS, Kb.narrow(0, 0, i1));                                    // dQ = dS·K
          dKb.narrow(0, 0, i1).addmm_(dS.t(), Qb.narrow(0, i0, r));                    // dK += dSᵀ·Q
        }
        const int64_t none = std::min<int64_t>(first[static_cast<size_t>(b)], s.T);
        if (none > 0) dVb.add_(dOb.narrow(0, 0, none).sum(0, true), 1.0 / static_cast<double>(s.T));  // uniform rows
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
