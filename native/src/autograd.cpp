// Autograd: requires_grad, backward, grads, grad mode, torch::autograd::grad over lists.
#include "common.h"
#include <torch/csrc/autograd/autograd.h>

RT_API int rt_requires_grad_(rt_tensor t, int on) { RT_STATUS(t->requires_grad_(on != 0);) }
RT_API int rt_backward(rt_tensor t, rt_tensor grad, int retain_graph, int create_graph) {
  RT_STATUS(t->backward(grad ? *grad : at::Tensor(), c10::optional<bool>(retain_graph != 0), create_graph != 0);)
}
RT_API int rt_grad(rt_tensor t, rt_tensor* out) { RT_STATUS(rt::wrap_out(t->grad(), out);) }
RT_API int rt_set_grad(rt_tensor t, rt_tensor g) { RT_STATUS(t->mutable_grad() = g ? *g : at::Tensor();) }
RT_API int rt_zero_grad(rt_tensor t, int set_to_none) {
  RT_STATUS(
    auto& g = t->mutable_grad();
    if (g.defined()) { if (set_to_none) g = at::Tensor(); else { g = g.detach(); g.zero_(); } }
  )
}
RT_API int rt_retain_grad(rt_tensor t) { RT_STATUS(t->retain_grad();) }
RT_API int rt_is_grad_enabled() { return at::GradMode::is_enabled() ? 1 : 0; }
RT_API void rt_set_grad_enabled(int on) { at::GradMode::set_enabled(on != 0); }

// grads of outputs w.r.t. inputs; out[i] is NULL where an input is unused (allow_unused).
RT_API int rt_autograd_grad(const rt_tensor* outputs, int n_out, const rt_tensor* inputs, int n_in,
                            const rt_tensor* grad_outputs, int retain_graph, int create_graph, int allow_unused, rt_tensor* out) {
  RT_STATUS(
    auto outs = rt::list(outputs, n_out);
    auto ins = rt::list(inputs, n_in);
    std::vector<at::Tensor> gos = grad_outputs ? rt::list(grad_outputs, n_out) : std::vector<at::Tensor>();
    auto gs = torch::autograd::grad(outs, ins, gos, c10::optional<bool>(retain_graph != 0), create_graph != 0, allow_unused != 0);
    for (int i = 0; i < n_in; ++i) rt::wrap_out(gs[i], &out[i]);
  )
}
