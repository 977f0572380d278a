// Tensor creation: filled, ranges, random (with explicit seeded generators), from host memory.
#include "common.h"
#include <cstring>

#define RT_OPTS rt::options(dtype, dev_type, dev_index)

RT_API rt_tensor rt_empty(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::empty(rt::dims(shape, ndim), RT_OPTS))
}
RT_API rt_tensor rt_zeros(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::zeros(rt::dims(shape, ndim), RT_OPTS))
}
RT_API rt_tensor rt_ones(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::ones(rt::dims(shape, ndim), RT_OPTS))
}
RT_API rt_tensor rt_full(const int64_t* shape, int ndim, double value, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::full(rt::dims(shape, ndim), value, RT_OPTS))
}
RT_API rt_tensor rt_full_long(const int64_t* shape, int ndim, int64_t value, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::full(rt::dims(shape, ndim), value, RT_OPTS))
}
RT_API rt_tensor rt_arange(double start, double end, double step, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::arange(start, end, step, RT_OPTS))
}
RT_API rt_tensor rt_linspace(double start, double end, int64_t steps, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::linspace(start, end, steps, RT_OPTS))
}
RT_API rt_tensor rt_eye(int64_t n, int dtype, int dev_type, int dev_index) { RT_TENSOR(at::eye(n, RT_OPTS)) }
RT_API rt_tensor rt_zeros_like(rt_tensor t) { RT_TENSOR(at::zeros_like(*t)) }
RT_API rt_tensor rt_ones_like(rt_tensor t) { RT_TENSOR(at::ones_like(*t)) }
RT_API rt_tensor rt_empty_like(rt_tensor t) { RT_TENSOR(at::empty_like(*t)) }
RT_API rt_tensor rt_full_like(rt_tensor t, double v) { RT_TENSOR(at::full_like(*t, v)) }

RT_API rt_tensor rt_randn(const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::randn(rt::dims(shape, ndim), rt::gen(g), RT_OPTS))
}
RT_API rt_tensor rt_rand(const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::rand(rt::dims(shape, ndim), rt::gen(g), RT_OPTS))
}
RT_API rt_tensor rt_randint(int64_t low, int64_t high, const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::randint(low, high, rt::dims(shape, ndim), rt::gen(g), RT_OPTS))
}
RT_API rt_tensor rt_randperm(int64_t n, rt_generator g, int dtype, int dev_type, int dev_index) {
  RT_TENSOR(at::randperm(n, rt::gen(g), RT_OPTS))
}
RT_API int rt_normal_(rt_tensor t, double mean, double std, rt_generator g) { RT_STATUS(t->normal_(mean, std, rt::gen(g));) }
RT_API int rt_uniform_(rt_tensor t, double from, double to, rt_generator g) { RT_STATUS(t->uniform_(from, to, rt::gen(g));) }
RT_API int rt_bernoulli_(rt_tensor t, double p, rt_generator g) { RT_STATUS(t->bernoulli_(p, rt::gen(g));) }

// Copies nbytes of host memory into a new CPU tensor of the given shape and dtype, then moves it to the device.
RT_API rt_tensor rt_from_data(const void* data, int64_t nbytes, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index) {
  RT_GUARD(nullptr,
    at::Tensor t = at::empty(rt::dims(shape, ndim), at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)));
    int64_t need = t.numel() * t.element_size();
    TORCH_CHECK(need == nbytes, "from_data: shape needs ", need, " bytes, got ", nbytes);
    if (need) std::memcpy(t.data_ptr(), data, static_cast<size_t>(need));
    if (dev_type != 0) t = t.to(rt::device(dev_type, dev_index));
    return rt::wrap(std::move(t));
  )
}
