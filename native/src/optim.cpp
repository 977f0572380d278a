// Optimizer kernels over lists of tensors: AdamW, global grad norm, clipping.
#include "common.h"
#include <cmath>

// One AdamW step (Loshchilov & Hutter; torch.optim.AdamW semantics) over params[i] with grads[i]
// and state (exp_avg, exp_avg_sq). `step` is the 1-based step count after this update.
// p <- p * (1 - lr*wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
// p <- p - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps),  bc_i = 1 - b_i^step.
RT_API int rt_adamw_step(const rt_tensor* params, const rt_tensor* grads, const rt_tensor* exp_avg, const rt_tensor* exp_avg_sq,
                         int n, double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  RT_STATUS(
    at::NoGradGuard no_grad;
    double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    double step_size = lr / bc1;
    double bc2_sqrt = std::sqrt(bc2);
    for (int i = 0; i < n; ++i) {
      at::Tensor& p = *params[i];
      const at::Tensor& g = *grads[i];
      if (!g.defined()) continue;
      at::Tensor& m = *exp_avg[i];
      at::Tensor& v = *exp_avg_sq[i];
      if (weight_decay != 0.0) p.mul_(1.0 - lr * weight_decay);
      m.lerp_(g, 1.0 - beta1);
      v.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
      at::Tensor denom = (v.sqrt() / bc2_sqrt).add_(eps);
      p.addcdiv_(m, denom, -step_size);
    }
  )
}

// Sum of squares of every tensor (NULLs skipped), accumulated in double.
RT_API int rt_sum_squares(const rt_tensor* ts, int n, double* out) {
  RT_STATUS(
    at::NoGradGuard no_grad;
    double acc = 0.0;
    for (int i = 0; i < n; ++i)
      if (ts[i] && ts[i]->defined()) acc += ts[i]->to(at::kDouble).square().sum().item<double>();
    *out = acc;
  )
}

// Scales every tensor in place by `factor` (used by clipping across shards).
RT_API int rt_scale_(const rt_tensor* ts, int n, double factor) {
  RT_STATUS(at::NoGradGuard no_grad; for (int i = 0; i < n; ++i) if (ts[i] && ts[i]->defined()) ts[i]->mul_(factor);)
}

// Clips the global L2 norm of the tensors to max_norm (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
RT_API int rt_clip_grad_norm_(const rt_tensor* ts, int n, double max_norm, double* total_norm) {
  RT_STATUS(
    at::NoGradGuard no_grad;
    double acc = 0.0;
    for (int i = 0; i < n; ++i)
      if (ts[i] && ts[i]->defined()) acc += ts[i]->to(at::kDouble).square().sum().item<double>();
    double norm = std::sqrt(acc);
    *total_norm = norm;
    double coef = max_norm / (norm + 1e-6);
    if (std::isfinite(norm) && coef < 1.0)
      for (int i = 0; i < n; ++i) if (ts[i] && ts[i]->defined()) ts[i]->mul_(coef);
  )
}
