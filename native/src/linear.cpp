// Linear layers for float32 CPU training whose products do not synchronise threads (Debian's libtorch).
//
// aten::linear runs each product as one BLAS call on all intra-op threads; OpenBLAS then splits it across threads that
// share packed panels and wait for one another (sched_yield) inside the call, block by block. At a small model's sizes
// (llama-3M: 1024 rows × 256 features) that waiting is a tenth of a training step. Here the products are split before
// BLAS sees them, into independent calls that each run single-threaded inside one OpenMP region:
//   forward   y = x·wᵀ      the rows of x in one chunk per thread (a bias is added after, by autograd's add);
//   backward  dx = dy·w  and  dw = dyᵀ·x  side by side, so that with two threads one computes dx while the
//             other computes dw (with more, each is split: dx by rows, dw by output features).
// Chunks start at panel-aligned rows (kPanelAlign below), so every element of every result is computed as one unsplit
// call computes it: results do not depend on the thread count.
//
// The file is compiled with OpenMP against Debian's libtorch only (native/CMakeLists.txt). Against a PyTorch wheel (its
// BLAS private to it, its OpenMP renamed) rt_linear stays aten::linear.
#include "common.h"
#include <ATen/Parallel.h>
#include <cstdlib>
#include "blas.h"

namespace {

#ifdef _OPENMP

// Rows (or output features) per panel of a chunk boundary. OpenBLAS's sgemm computes an element with one sequence of
// operations for a full panel of the product and another for the partial panel at its end; chunks that start at
// multiples of 48 (a multiple of the panel widths of its x86-64 kernels: Haswell, Zen, SkylakeX, Cooperlake,
// Sandybridge and Prescott were checked) put every element in the same panel as one unsplit call does.
constexpr int64_t kPanelAlign = 48;

// Splits [0, n) into `parts` near-equal chunks whose boundaries are multiples of kPanelAlign; chunk i is [at(i), at(i+1)).
struct Chunks {
  int64_t n, parts;
  Chunks(int64_t total, int64_t p) : n(total), parts(p) {}
  int64_t at(int64_t i) const {
    if (i >= parts) return n;
    const double ideal = static_cast<double>(n) * static_cast<double>(i) / static_cast<double>(parts) / kPanelAlign;
    return std::min(n, static_cast<int64_t>(std::llround(ideal)) * kPanelAlign);
  }
};

// y = x·wᵀ for x [rows, in] and w [out, in], both contiguous, shaped as `x_shape` with its last dim `out`: the rows in
// one chunk per thread.
at::Tensor split_forward(const at::Tensor& X, const at::Tensor& W, at::IntArrayRef x_shape) {
  const int64_t in = W.size(1), out = W.size(0), rows = X.size(0);
  std::vector<int64_t> shape = x_shape.vec();
  shape.back() = out;
  at::Tensor y = at::empty(shape, X.options());
  const float *px = X.data_ptr<float>(), *pw = W.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const int64_t T = at::get_num_threads();
  const Chunks rc(rows, T);
  at::parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = rc.at(t), r1 = rc.at(t + 1);
      if (r1 > r0) rt::gemm_rm(false, true, r1 - r0, out, in, 1.f, px + r0 * in, in, pw, in, 0.f, py + r0 * out, out);
    }
  });
  return y;
}

class LinearFn : public torch::autograd::Function<LinearFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    const at::Tensor X = x.reshape({-1, w.size(1)}).contiguous(), W = w.contiguous();
    ctx->save_for_backward({X, W});
    ctx->saved_data["x_shape"] = x.sizes().vec();
    return split_forward(X, W, x.sizes());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &X = saved[0], &W = saved[1];
    const int64_t in = W.size(1), out = W.size(0), rows = X.size(0);
    const at::Tensor dY = grads[0].reshape({-1, out}).contiguous();
    const bool need_dx = ctx->needs_input_grad(0), need_dw = ctx->needs_input_grad(1);
    if (at::GradMode::is_enabled()) {
      // create_graph: the gradients must themselves be differentiable, so they are ATen ops autograd records.
      return {need_dx ? dY.mm(W).view(ctx->saved_data["x_shape"].toIntVector()) : at::Tensor(), need_dw ? dY.t().mm(X) : at::Tensor()};
    }
    at::Tensor dX = need_dx ? at::empty(ctx->saved_data["x_shape"].toIntVector(), X.options()) : at::Tensor();
    at::Tensor dW = need_dw ? at::empty({out, in}, W.options()) : at::Tensor();
    const float *px = X.data_ptr<float>(), *pw = W.data_ptr<float>(), *pg = dY.data_ptr<float>();
    float* pdx = need_dx ? dX.data_ptr<float>() : nullptr;
    float* pdw = need_dw ? dW.data_ptr<float>() : nullptr;
    // Tasks [0, T) are dx's row chunks, [T, 2T) dw's output-feature chunks; each thread takes a run of
    // consecutive tasks, so with both wanted the first half of the threads computes dx and the second half dw.
    const int64_t T = at::get_num_threads();
    const Chunks rc(rows, T), oc(out, T);
    const int64_t first = need_dx ? 0 : T, last = need_dw ? 2 * T : T;
    at::parallel_for(first, last, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        if (t < T) {
          const int64_t r0 = rc.at(t), r1 = rc.at(t + 1);
          if (r1 > r0) rt::gemm_rm(false, false, r1 - r0, in, out, 1.f, pg + r0 * out, out, pw, in, 0.f, pdx + r0 * in, in);  // dx = dy·w
          continue;
        }
        const int64_t o0 = oc.at(t - T), o1 = oc.at(t - T + 1);
        if (o1 > o0) rt::gemm_rm(true, false, o1 - o0, in, rows, 1.f, pg + o0, out, px, in, 0.f, pdw + o0 * in, in);         // dw = dyᵀ·x
      }
    });
    return {dX, dW};
  }
};

// OpenBLAS's threading (0 sequential, 1 pthreads, 2 OpenMP); weak, so a BLAS without it leaves it null.
extern "C" int openblas_get_parallel(void) __attribute__((weak));

// On when the BLAS is OpenBLAS's OpenMP build, which runs a call made inside an OpenMP region on the calling thread alone
// (its pthread build would start its own workers from each caller), unless RLHF_LINEAR_KERNEL=0. Decided once.
bool kernel_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("RLHF_LINEAR_KERNEL");
    if (v != nullptr && std::string(v) == "0") return false;
    return openblas_get_parallel != nullptr && openblas_get_parallel() == 2;
  }();
  return on;
}

// Training products only: float32 CPU tensors with autograd recording, more than one thread and at least one aligned
// chunk of rows per thread. A no-grad forward keeps one BLAS call (split, it measured no faster: llama-3M's forward
// 37.4 vs 37.0 ms, generation within noise).
bool use_kernel(const at::Tensor& x, const at::Tensor& w, const at::Tensor* b) {
  if (!kernel_enabled() || !at::GradMode::is_enabled() || at::get_num_threads() < 2) return false;
  if (!(x.requires_grad() || w.requires_grad() || (b != nullptr && b->requires_grad()))) return false;
  auto fits = [](const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided; };
  if (!fits(x) || !fits(w) || (b != nullptr && !fits(*b))) return false;
  if (x.dim() < 2 || w.dim() != 2 || x.size(-1) == 0 || x.size(-1) != w.size(1) || (b != nullptr && (b->dim() != 1 || b->size(0) != w.size(0)))) return false;
  return x.numel() / x.size(-1) >= kPanelAlign * at::get_num_threads();
}

#endif

// aten::linear, or the kernel above for training products where it applies.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor* b) {
#ifdef _OPENMP
  if (use_kernel(x, w, b)) {
    at::Tensor y = LinearFn::apply(x, w);
    return b != nullptr ? y.add_(*b) : y;
  }
#endif
  return at::linear(x, w, b != nullptr ? c10::optional<at::Tensor>(*b) : c10::nullopt);
}

}  // namespace

RT_API rt_tensor rt_linear(rt_tensor x, rt_tensor w, rt_tensor b) { RT_GUARD(nullptr, return rt::wrap(linear(*x, *w, b));) }

RT_API int rt_linear_kernel_available(void) {
#ifdef _OPENMP
  return kernel_enabled() ? 1 : 0;
#else
  return 0;
#endif
}
