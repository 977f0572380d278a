// Elementwise and linear-algebra math, comparisons, conversions, copies.
#include "common.h"

#define UNARY(name, expr) RT_API rt_tensor rt_##name(rt_tensor t) { RT_TENSOR(expr) }
#define UNARY_(name, expr) RT_API int rt_##name##_(rt_tensor t) { RT_STATUS(expr;) }
#define BINARY(name, expr) RT_API rt_tensor rt_##name(rt_tensor a, rt_tensor b) { RT_TENSOR(expr) }
#define BINARY_S(name, expr) RT_API rt_tensor rt_##name(rt_tensor a, double s) { RT_TENSOR(expr) }

RT_API rt_tensor rt_add(rt_tensor a, rt_tensor b, double alpha) { RT_TENSOR(at::add(*a, *b, rt::scalar_for(*a, alpha))) }
RT_API rt_tensor rt_sub(rt_tensor a, rt_tensor b, double alpha) { RT_TENSOR(at::sub(*a, *b, rt::scalar_for(*a, alpha))) }
BINARY(mul, at::mul(*a, *b))
BINARY(div, at::div(*a, *b))
RT_API rt_tensor rt_div_mode(rt_tensor a, rt_tensor b, const char* mode) { RT_TENSOR(at::div(*a, *b, c10::optional<c10::string_view>(mode))) }
RT_API rt_tensor rt_div_scalar_mode(rt_tensor a, double s, const char* mode) { RT_TENSOR(at::div(*a, rt::scalar_for(*a, s), c10::optional<c10::string_view>(mode))) }
BINARY_S(add_scalar, at::add(*a, rt::scalar_for(*a, s)))
BINARY_S(mul_scalar, at::mul(*a, rt::scalar_for(*a, s)))
BINARY_S(div_scalar, at::div(*a, rt::scalar_for(*a, s)))
BINARY_S(rsub_scalar, at::rsub(*a, rt::scalar_for(*a, s)))
BINARY_S(pow_scalar, at::pow(*a, rt::scalar_for(*a, s)))
BINARY_S(remainder_scalar, at::remainder(*a, rt::scalar_for(*a, s)))
BINARY(pow, at::pow(*a, *b))
BINARY(remainder, at::remainder(*a, *b))
BINARY(minimum, at::minimum(*a, *b))
BINARY(maximum, at::maximum(*a, *b))
BINARY(atan2, at::atan2(*a, *b))

RT_API int rt_add_(rt_tensor a, rt_tensor b, double alpha) { RT_STATUS(a->add_(*b, rt::scalar_for(*a, alpha));) }
RT_API int rt_sub_(rt_tensor a, rt_tensor b, double alpha) { RT_STATUS(a->sub_(*b, rt::scalar_for(*a, alpha));) }
RT_API int rt_mul_(rt_tensor a, rt_tensor b) { RT_STATUS(a->mul_(*b);) }
RT_API int rt_div_(rt_tensor a, rt_tensor b) { RT_STATUS(a->div_(*b);) }
RT_API int rt_add_scalar_(rt_tensor a, double s) { RT_STATUS(a->add_(rt::scalar_for(*a, s));) }
RT_API int rt_mul_scalar_(rt_tensor a, double s) { RT_STATUS(a->mul_(rt::scalar_for(*a, s));) }
RT_API int rt_div_scalar_(rt_tensor a, double s) { RT_STATUS(a->div_(rt::scalar_for(*a, s));) }
RT_API int rt_pow_scalar_(rt_tensor a, double s) { RT_STATUS(a->pow_(rt::scalar_for(*a, s));) }
RT_API int rt_addcmul_(rt_tensor a, rt_tensor b, rt_tensor c, double v) { RT_STATUS(a->addcmul_(*b, *c, v);) }
RT_API int rt_addcdiv_(rt_tensor a, rt_tensor b, rt_tensor c, double v) { RT_STATUS(a->addcdiv_(*b, *c, v);) }
RT_API int rt_lerp_(rt_tensor a, rt_tensor b, double w) { RT_STATUS(a->lerp_(*b, w);) }
RT_API int rt_clamp_(rt_tensor t, double lo, double hi, int has_lo, int has_hi) {
  RT_STATUS(t->clamp_(has_lo ? c10::optional<at::Scalar>(rt::scalar_for(*t, lo)) : c10::nullopt, has_hi ? c10::optional<at::Scalar>(rt::scalar_for(*t, hi)) : c10::nullopt);)
}
RT_API int rt_fill_(rt_tensor t, double v) { RT_STATUS(t->fill_(v);) }
RT_API int rt_zero_(rt_tensor t) { RT_STATUS(t->zero_();) }
RT_API int rt_copy_(rt_tensor dst, rt_tensor src, int non_blocking) { RT_STATUS(dst->copy_(*src, non_blocking != 0);) }
RT_API int rt_set_data(rt_tensor dst, rt_tensor src) { RT_STATUS(dst->set_data(*src);) }

RT_API rt_tensor rt_clamp(rt_tensor t, double lo, double hi, int has_lo, int has_hi) {
  RT_TENSOR(at::clamp(*t, has_lo ? c10::optional<at::Scalar>(rt::scalar_for(*t, lo)) : c10::nullopt, has_hi ? c10::optional<at::Scalar>(rt::scalar_for(*t, hi)) : c10::nullopt))
}
RT_API rt_tensor rt_clamp_t(rt_tensor t, rt_tensor lo, rt_tensor hi) {
  RT_TENSOR(at::clamp(*t, lo ? c10::optional<at::Tensor>(*lo) : c10::nullopt, hi ? c10::optional<at::Tensor>(*hi) : c10::nullopt))
}

UNARY(neg, at::neg(*t))
UNARY(exp, at::exp(*t))
UNARY(expm1, at::expm1(*t))
UNARY(log, at::log(*t))
UNARY(log1p, at::log1p(*t))
UNARY(log2, at::log2(*t))
UNARY(sqrt, at::sqrt(*t))
UNARY(rsqrt, at::rsqrt(*t))
UNARY(abs, at::abs(*t))
UNARY(sign, at::sign(*t))
UNARY(square, at::square(*t))
UNARY(reciprocal, at::reciprocal(*t))
UNARY(sin, at::sin(*t))
UNARY(cos, at::cos(*t))
UNARY(tanh, at::tanh(*t))
UNARY(erf, at::erf(*t))
UNARY(sigmoid, at::sigmoid(*t))
UNARY(logsigmoid, at::log_sigmoid(*t))
UNARY(relu, at::relu(*t))
UNARY(silu, at::silu(*t))
UNARY(floor, at::floor(*t))
UNARY(ceil, at::ceil(*t))
UNARY(round, at::round(*t))
UNARY(isnan, at::isnan(*t))
UNARY(isinf, at::isinf(*t))
UNARY(isfinite, at::isfinite(*t))
UNARY(logical_not, at::logical_not(*t))
UNARY(clone, t->clone())
UNARY(detach, t->detach())
UNARY_(neg, t->neg_())
UNARY_(exp, t->exp_())
UNARY_(sqrt, t->sqrt_())
UNARY_(relu, t->relu_())
RT_API rt_tensor rt_gelu(rt_tensor t, int tanh_approx) { RT_TENSOR(at::gelu(*t, tanh_approx ? "tanh" : "none")) }
RT_API rt_tensor rt_softplus(rt_tensor t, double beta, double threshold) { RT_TENSOR(at::softplus(*t, beta, threshold)) }

BINARY(matmul, at::matmul(*a, *b))
BINARY(mm, at::mm(*a, *b))
BINARY(bmm, at::bmm(*a, *b))
BINARY(outer, at::outer(*a, *b))
RT_API rt_tensor rt_addmm(rt_tensor bias, rt_tensor a, rt_tensor b, double beta, double alpha) { RT_TENSOR(at::addmm(*bias, *a, *b, beta, alpha)) }
RT_API rt_tensor rt_baddbmm(rt_tensor bias, rt_tensor a, rt_tensor b, double beta, double alpha) { RT_TENSOR(at::baddbmm(*bias, *a, *b, beta, alpha)) }

// Comparisons and logic.
BINARY(eq, at::eq(*a, *b))
BINARY(ne, at::ne(*a, *b))
BINARY(lt, at::lt(*a, *b))
BINARY(le, at::le(*a, *b))
BINARY(gt, at::gt(*a, *b))
BINARY(ge, at::ge(*a, *b))
BINARY_S(eq_scalar, at::eq(*a, s))
BINARY_S(ne_scalar, at::ne(*a, s))
BINARY_S(lt_scalar, at::lt(*a, s))
BINARY_S(le_scalar, at::le(*a, s))
BINARY_S(gt_scalar, at::gt(*a, s))
BINARY_S(ge_scalar, at::ge(*a, s))
BINARY(logical_and, at::logical_and(*a, *b))
BINARY(logical_or, at::logical_or(*a, *b))
BINARY(logical_xor, at::logical_xor(*a, *b))
RT_API int rt_equal(rt_tensor a, rt_tensor b) { RT_GUARD(-1, return at::equal(*a, *b) ? 1 : 0;) }
RT_API int rt_allclose(rt_tensor a, rt_tensor b, double rtol, double atol) { RT_GUARD(-1, return at::allclose(*a, *b, rtol, atol) ? 1 : 0;) }

// Conversions.
RT_API rt_tensor rt_to_dtype(rt_tensor t, int dtype) { RT_TENSOR(t->to(static_cast<at::ScalarType>(dtype))) }
RT_API rt_tensor rt_to_device(rt_tensor t, int dev_type, int dev_index, int non_blocking) {
  RT_TENSOR(t->to(rt::device(dev_type, dev_index), non_blocking != 0))
}
RT_API rt_tensor rt_pin_memory(rt_tensor t) { RT_TENSOR(at::hasCUDA() ? t->pin_memory() : *t) }
