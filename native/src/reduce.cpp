// Reductions, sorting, cumulative ops.
#include "common.h"

static c10::optional<at::ScalarType> opt_dtype(int d) {
  if (d < 0) return c10::nullopt;
  return static_cast<at::ScalarType>(d);
}

RT_API rt_tensor rt_sum_all(rt_tensor t, int dtype) { RT_TENSOR(t->sum(opt_dtype(dtype))) }
RT_API rt_tensor rt_sum(rt_tensor t, const int64_t* dims, int n, int keepdim, int dtype) {
  RT_TENSOR(t->sum(rt::dims(dims, n), keepdim != 0, opt_dtype(dtype)))
}
RT_API rt_tensor rt_mean_all(rt_tensor t) { RT_TENSOR(t->mean()) }
RT_API rt_tensor rt_mean(rt_tensor t, const int64_t* dims, int n, int keepdim) { RT_TENSOR(t->mean(rt::dims(dims, n), keepdim != 0)) }
RT_API rt_tensor rt_prod_all(rt_tensor t) { RT_TENSOR(t->prod()) }
// Variance / std with an explicit correction (1 = Bessel). n == 0 means over all elements.
RT_API rt_tensor rt_var(rt_tensor t, const int64_t* dims, int n, int64_t correction, int keepdim) {
  RT_TENSOR(n == 0 ? at::var(*t, c10::nullopt, c10::optional<int64_t>(correction), keepdim != 0)
                   : at::var(*t, at::OptionalIntArrayRef(rt::dims(dims, n)), c10::optional<int64_t>(correction), keepdim != 0))
}
RT_API rt_tensor rt_std(rt_tensor t, const int64_t* dims, int n, int64_t correction, int keepdim) {
  RT_TENSOR(n == 0 ? at::std(*t, c10::nullopt, c10::optional<int64_t>(correction), keepdim != 0)
                   : at::std(*t, at::OptionalIntArrayRef(rt::dims(dims, n)), c10::optional<int64_t>(correction), keepdim != 0))
}
RT_API rt_tensor rt_max_all(rt_tensor t) { RT_TENSOR(t->max()) }
RT_API rt_tensor rt_min_all(rt_tensor t) { RT_TENSOR(t->min()) }
RT_API int rt_max_dim(rt_tensor t, int64_t dim, int keepdim, rt_tensor* values, rt_tensor* indices) {
  RT_STATUS(auto r = t->max(dim, keepdim != 0); *values = rt::wrap(std::get<0>(r)); *indices = rt::wrap(std::get<1>(r));)
}
RT_API int rt_min_dim(rt_tensor t, int64_t dim, int keepdim, rt_tensor* values, rt_tensor* indices) {
  RT_STATUS(auto r = t->min(dim, keepdim != 0); *values = rt::wrap(std::get<0>(r)); *indices = rt::wrap(std::get<1>(r));)
}
RT_API rt_tensor rt_argmax(rt_tensor t, int64_t dim, int keepdim) { RT_TENSOR(t->argmax(dim, keepdim != 0)) }
RT_API rt_tensor rt_argmin(rt_tensor t, int64_t dim, int keepdim) { RT_TENSOR(t->argmin(dim, keepdim != 0)) }
RT_API int rt_topk(rt_tensor t, int64_t k, int64_t dim, int largest, int sorted, rt_tensor* values, rt_tensor* indices) {
  RT_STATUS(auto r = t->topk(k, dim, largest != 0, sorted != 0); *values = rt::wrap(std::get<0>(r)); *indices = rt::wrap(std::get<1>(r));)
}
RT_API int rt_sort(rt_tensor t, int64_t dim, int descending, int stable, rt_tensor* values, rt_tensor* indices) {
  RT_STATUS(auto r = t->sort(c10::optional<bool>(stable != 0), dim, descending != 0); *values = rt::wrap(std::get<0>(r)); *indices = rt::wrap(std::get<1>(r));)
}
RT_API rt_tensor rt_argsort(rt_tensor t, int64_t dim, int descending) { RT_TENSOR(t->argsort(dim, descending != 0)) }
RT_API rt_tensor rt_any_all(rt_tensor t) { RT_TENSOR(t->any()) }
RT_API rt_tensor rt_all_all(rt_tensor t) { RT_TENSOR(t->all()) }
RT_API rt_tensor rt_any(rt_tensor t, int64_t dim, int keepdim) { RT_TENSOR(t->any(dim, keepdim != 0)) }
RT_API rt_tensor rt_all(rt_tensor t, int64_t dim, int keepdim) { RT_TENSOR(t->all(dim, keepdim != 0)) }
RT_API rt_tensor rt_norm_all(rt_tensor t, double p) { RT_TENSOR(t->norm(p)) }
RT_API rt_tensor rt_norm(rt_tensor t, double p, const int64_t* dims, int n, int keepdim) { RT_TENSOR(t->norm(p, rt::dims(dims, n), keepdim != 0)) }
RT_API rt_tensor rt_count_nonzero_all(rt_tensor t) { RT_TENSOR(t->count_nonzero()) }
RT_API rt_tensor rt_count_nonzero(rt_tensor t, int64_t dim) { RT_TENSOR(t->count_nonzero(c10::optional<int64_t>(dim))) }
RT_API rt_tensor rt_cumsum(rt_tensor t, int64_t dim) { RT_TENSOR(t->cumsum(dim)) }
RT_API rt_tensor rt_cumprod(rt_tensor t, int64_t dim) { RT_TENSOR(t->cumprod(dim)) }
RT_API rt_tensor rt_logsumexp(rt_tensor t, const int64_t* dims, int n, int keepdim) { RT_TENSOR(at::logsumexp(*t, rt::dims(dims, n), keepdim != 0)) }
RT_API rt_tensor rt_softmax(rt_tensor t, int64_t dim) { RT_TENSOR(at::softmax(*t, dim)) }
RT_API rt_tensor rt_log_softmax(rt_tensor t, int64_t dim) { RT_TENSOR(at::log_softmax(*t, dim)) }
