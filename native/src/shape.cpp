// Views, indexing, joining and splitting.
#include "common.h"

RT_API rt_tensor rt_view(rt_tensor t, const int64_t* shape, int n) { RT_TENSOR(t->view(rt::dims(shape, n))) }
RT_API rt_tensor rt_reshape(rt_tensor t, const int64_t* shape, int n) { RT_TENSOR(t->reshape(rt::dims(shape, n))) }
RT_API rt_tensor rt_transpose(rt_tensor t, int64_t d0, int64_t d1) { RT_TENSOR(t->transpose(d0, d1)) }
RT_API rt_tensor rt_permute(rt_tensor t, const int64_t* dims, int n) { RT_TENSOR(t->permute(rt::dims(dims, n))) }
RT_API rt_tensor rt_narrow(rt_tensor t, int64_t dim, int64_t start, int64_t length) { RT_TENSOR(t->narrow(dim, start, length)) }
RT_API rt_tensor rt_slice(rt_tensor t, int64_t dim, int64_t start, int64_t end, int64_t step) { RT_TENSOR(t->slice(dim, start, end, step)) }
RT_API rt_tensor rt_select(rt_tensor t, int64_t dim, int64_t index) { RT_TENSOR(t->select(dim, index)) }
RT_API rt_tensor rt_squeeze(rt_tensor t) { RT_TENSOR(t->squeeze()) }
RT_API rt_tensor rt_squeeze_dim(rt_tensor t, int64_t dim) { RT_TENSOR(t->squeeze(dim)) }
RT_API rt_tensor rt_unsqueeze(rt_tensor t, int64_t dim) { RT_TENSOR(t->unsqueeze(dim)) }
RT_API rt_tensor rt_flatten(rt_tensor t, int64_t start, int64_t end) { RT_TENSOR(t->flatten(start, end)) }
RT_API rt_tensor rt_expand(rt_tensor t, const int64_t* shape, int n) { RT_TENSOR(t->expand(rt::dims(shape, n))) }
RT_API rt_tensor rt_repeat(rt_tensor t, const int64_t* reps, int n) { RT_TENSOR(t->repeat(rt::dims(reps, n))) }
RT_API rt_tensor rt_repeat_interleave(rt_tensor t, int64_t repeats, int64_t dim) { RT_TENSOR(t->repeat_interleave(repeats, dim)) }
RT_API rt_tensor rt_repeat_interleave_t(rt_tensor t, rt_tensor repeats, int64_t dim) { RT_TENSOR(t->repeat_interleave(*repeats, dim)) }
RT_API rt_tensor rt_flip(rt_tensor t, const int64_t* dims, int n) { RT_TENSOR(t->flip(rt::dims(dims, n))) }
RT_API rt_tensor rt_contiguous(rt_tensor t) { RT_TENSOR(t->contiguous()) }
RT_API rt_tensor rt_tril(rt_tensor t, int64_t k) { RT_TENSOR(t->tril(k)) }
RT_API rt_tensor rt_triu(rt_tensor t, int64_t k) { RT_TENSOR(t->triu(k)) }
RT_API rt_tensor rt_roll(rt_tensor t, int64_t shift, int64_t dim) { RT_TENSOR(t->roll(shift, dim)) }

RT_API rt_tensor rt_index_select(rt_tensor t, int64_t dim, rt_tensor idx) { RT_TENSOR(t->index_select(dim, *idx)) }
RT_API rt_tensor rt_gather(rt_tensor t, int64_t dim, rt_tensor idx) { RT_TENSOR(t->gather(dim, *idx)) }
RT_API rt_tensor rt_scatter(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_TENSOR(t->scatter(dim, *idx, *src)) }
RT_API rt_tensor rt_scatter_add(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_TENSOR(t->scatter_add(dim, *idx, *src)) }
RT_API int rt_scatter_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_STATUS(t->scatter_(dim, *idx, *src);) }
RT_API int rt_scatter_add_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_STATUS(t->scatter_add_(dim, *idx, *src);) }
RT_API int rt_index_copy_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_STATUS(t->index_copy_(dim, *idx, *src);) }
RT_API rt_tensor rt_index_copy(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_TENSOR(t->index_copy(dim, *idx, *src)) }
RT_API int rt_index_fill_(rt_tensor t, int64_t dim, rt_tensor idx, double v) { RT_STATUS(t->index_fill_(dim, *idx, v);) }
RT_API int rt_index_add_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src) { RT_STATUS(t->index_add_(dim, *idx, *src);) }

// Advanced indexing t[i0, i1, ...] with one (possibly NULL = ':') index tensor per leading dim.
static c10::List<c10::optional<at::Tensor>> opt_list(const rt_tensor* idx, int n) {
  c10::List<c10::optional<at::Tensor>> l;
  for (int i = 0; i < n; ++i) l.push_back(idx[i] ? c10::optional<at::Tensor>(*idx[i]) : c10::nullopt);
  return l;
}
RT_API rt_tensor rt_index(rt_tensor t, const rt_tensor* idx, int n) { RT_TENSOR(t->index(opt_list(idx, n))) }
RT_API int rt_index_put_(rt_tensor t, const rt_tensor* idx, int n, rt_tensor v, int accumulate) {
  RT_STATUS(t->index_put_(opt_list(idx, n), *v, accumulate != 0);)
}
RT_API rt_tensor rt_index_put(rt_tensor t, const rt_tensor* idx, int n, rt_tensor v, int accumulate) {
  RT_TENSOR(t->index_put(opt_list(idx, n), *v, accumulate != 0))
}

RT_API rt_tensor rt_masked_fill(rt_tensor t, rt_tensor mask, double v) { RT_TENSOR(t->masked_fill(*mask, v)) }
RT_API int rt_masked_fill_(rt_tensor t, rt_tensor mask, double v) { RT_STATUS(t->masked_fill_(*mask, v);) }
RT_API rt_tensor rt_masked_select(rt_tensor t, rt_tensor mask) { RT_TENSOR(t->masked_select(*mask)) }
RT_API rt_tensor rt_where(rt_tensor cond, rt_tensor a, rt_tensor b) { RT_TENSOR(at::where(*cond, *a, *b)) }
RT_API rt_tensor rt_where_scalar(rt_tensor cond, rt_tensor a, double b) { RT_TENSOR(at::where(*cond, *a, at::scalar_tensor(b, a->options()))) }
RT_API rt_tensor rt_nonzero(rt_tensor t) { RT_TENSOR(t->nonzero()) }

RT_API rt_tensor rt_cat(const rt_tensor* ts, int n, int64_t dim) { RT_TENSOR(at::cat(rt::list(ts, n), dim)) }
RT_API rt_tensor rt_stack(const rt_tensor* ts, int n, int64_t dim) { RT_TENSOR(at::stack(rt::list(ts, n), dim)) }

// Splits write their pieces into out (the caller sizes it; *count receives how many were written).
static int write_list(const std::vector<at::Tensor>& parts, rt_tensor* out, int cap, int* count) {
  TORCH_CHECK(static_cast<int>(parts.size()) <= cap, "split produced ", parts.size(), " parts; buffer holds ", cap);
  for (size_t i = 0; i < parts.size(); ++i) out[i] = rt::wrap(parts[i]);
  *count = static_cast<int>(parts.size());
  return 0;
}
RT_API int rt_split(rt_tensor t, int64_t size, int64_t dim, rt_tensor* out, int cap, int* count) {
  RT_GUARD(-1, return write_list(t->split(size, dim), out, cap, count);)
}
RT_API int rt_split_sizes(rt_tensor t, const int64_t* sizes, int n, int64_t dim, rt_tensor* out, int cap, int* count) {
  RT_GUARD(-1, return write_list(t->split_with_sizes(rt::dims(sizes, n), dim), out, cap, count);)
}
RT_API int rt_chunk(rt_tensor t, int64_t chunks, int64_t dim, rt_tensor* out, int cap, int* count) {
  RT_GUARD(-1, return write_list(t->chunk(chunks, dim), out, cap, count);)
}
RT_API int rt_unbind(rt_tensor t, int64_t dim, rt_tensor* out, int cap, int* count) {
  RT_GUARD(-1, return write_list(t->unbind(dim), out, cap, count);)
}
