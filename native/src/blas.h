// One float32 matrix product on raw pointers for the fused kernels (attention.cpp, linear.cpp).
#pragma once
#include "common.h"

#ifdef RLHF_DIRECT_SGEMM
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c, const int* ldc);
#endif

namespace rt {

// Row-major C[M, N] = alpha · op(A) · op(B) + beta · C, op(A) [M, K], op(B) [K, N]. Debian's libtorch calls the Fortran
// BLAS in libblas.so.3 (OpenBLAS's OpenMP build, which runs single-threaded inside an OpenMP parallel region): called
// here directly. Elsewhere (a PyTorch wheel's BLAS is private to it) through ATen on views of the same memory.
inline void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef RLHF_DIRECT_SGEMM
  // Column-major, C is Cᵀ [N, M] = op(B)ᵀ · op(A)ᵀ.
  const char ca = ta ? 'T' : 'N', cb = tb ? 'T' : 'N';
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  sgemm_(&cb, &ca, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
#else
  const auto f = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor a = ta ? at::from_blob(const_cast<float*>(A), {K, M}, {lda, 1}, f).t() : at::from_blob(const_cast<float*>(A), {M, K}, {lda, 1}, f);
  const at::Tensor b = tb ? at::from_blob(const_cast<float*>(B), {N, K}, {ldb, 1}, f).t() : at::from_blob(const_cast<float*>(B), {K, N}, {ldb, 1}, f);
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, f);
  if (beta == 0.f) {
    at::mm_out(c, a, b);
    if (alpha != 1.f) c.mul_(alpha);
  } else {
    c.addmm_(a, b, beta, alpha);
  }
#endif
}

}  // namespace rt
