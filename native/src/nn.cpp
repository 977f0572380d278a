// Neural-network functional ops: embedding, normalisation, losses, sampling, dropout.
#include "common.h"

RT_API rt_tensor rt_embedding(rt_tensor weight, rt_tensor ids) { RT_TENSOR(at::embedding(*weight, *ids)) }
RT_API rt_tensor rt_layer_norm(rt_tensor x, const int64_t* shape, int n, rt_tensor w, rt_tensor b, double eps) {
  RT_TENSOR(at::layer_norm(*x, rt::dims(shape, n), w ? c10::optional<at::Tensor>(*w) : c10::nullopt,
                           b ? c10::optional<at::Tensor>(*b) : c10::nullopt, eps))
}
// reduction: 0 none, 1 mean, 2 sum (at::Reduction).
RT_API rt_tensor rt_cross_entropy(rt_tensor logits, rt_tensor target, int64_t ignore_index, int reduction, double label_smoothing) {
  RT_TENSOR(at::cross_entropy_loss(*logits, *target, c10::nullopt, reduction, ignore_index, label_smoothing))
}
RT_API rt_tensor rt_nll_loss(rt_tensor logp, rt_tensor target, int64_t ignore_index, int reduction) {
  RT_TENSOR(at::nll_loss(*logp, *target, c10::nullopt, reduction, ignore_index))
}
RT_API rt_tensor rt_mse_loss(rt_tensor a, rt_tensor b, int reduction) { RT_TENSOR(at::mse_loss(*a, *b, reduction)) }
RT_API rt_tensor rt_multinomial(rt_tensor probs, int64_t n, int replacement, rt_generator g) {
  RT_TENSOR(at::multinomial(*probs, n, replacement != 0, rt::gen(g)))
}
// Dropout with an explicit generator (mask ~ Bernoulli(1-p), scaled by 1/(1-p)); identity when not training.
RT_API rt_tensor rt_dropout(rt_tensor x, double p, int train, rt_generator g) {
  RT_GUARD(nullptr,
    if (!train || p == 0.0) return rt::wrap(*x);
    TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
    at::Tensor mask = at::empty_like(*x).bernoulli_(1.0 - p, rt::gen(g));
    return rt::wrap(*x * mask / (1.0 - p));
  )
}
RT_API rt_tensor rt_one_hot(rt_tensor ids, int64_t classes) { RT_TENSOR(at::one_hot(*ids, classes)) }
