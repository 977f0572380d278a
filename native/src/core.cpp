// Errors, handle lifetime, memory accounting, tensor queries, raw data access, threads, build info.
#include "common.h"
#include <c10/core/CPUAllocator.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <cstring>
#include <sstream>
#include <mutex>
#include <unordered_map>
#ifdef RLHF_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace rt {
namespace {
thread_local std::string last_error;
thread_local bool has_error = false;

// Counts live and peak bytes of every CPU allocation libtorch makes, by wrapping its allocator.
// The DataPtr handed out keeps context == data (oneDNN and others assert that of CPU memory), so the
// size and the inner deleter are kept in a side table keyed by the data pointer.
struct CountingAllocator final : at::Allocator {
  at::Allocator* inner = nullptr;
  std::atomic<int64_t> live{0};
  std::atomic<int64_t> peak{0};
  std::mutex mu;
  std::unordered_map<void*, std::pair<size_t, at::DeleterFnPtr>> sizes;

  static CountingAllocator* self;

  static void release(void* p) {
    at::DeleterFnPtr del = nullptr;
    size_t n = 0;
    {
      std::lock_guard<std::mutex> lock(self->mu);
      auto it = self->sizes.find(p);
      if (it != self->sizes.end()) { n = it->second.first; del = it->second.second; self->sizes.erase(it); }
    }
    self->live.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
    if (del) del(p);
  }

  // libtorch 1.13–2.2 declare `allocate(size_t) const`, 2.3 and later `allocate(size_t)` plus a pure `copy_data`:
  // both allocate signatures and copy_data are defined (without `override`), so each libtorch finds the ones it calls.
  at::DataPtr allocate(size_t n) { return counted(n); }
  at::DataPtr allocate(size_t n) const { return const_cast<CountingAllocator*>(this)->counted(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const { if (count) std::memcpy(dest, src, count); }

  at::DataPtr counted(size_t n) {
    auto* me = this;
    at::DataPtr d = inner->allocate(n);
    void* data = d.get();
    // Only plain allocations (context == data, a raw deleter) can be re-wrapped; count those.
    if (data == nullptr || d.get_context() != data || d.get_deleter() == nullptr) return d;
    at::DeleterFnPtr del = d.get_deleter();
    auto device = d.device();
    d.release_context();
    {
      std::lock_guard<std::mutex> lock(me->mu);
      me->sizes[data] = {n, del};
    }
    int64_t now = me->live.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) + static_cast<int64_t>(n);
    int64_t prev = me->peak.load(std::memory_order_relaxed);
    while (now > prev && !me->peak.compare_exchange_weak(prev, now, std::memory_order_relaxed)) {}
    return at::DataPtr(data, data, &CountingAllocator::release, device);
  }
  at::DeleterFnPtr raw_deleter() const override { return &CountingAllocator::release; }
};
CountingAllocator* CountingAllocator::self = nullptr;

CountingAllocator& counting() {
  static CountingAllocator* a = [] {
    auto* c = new CountingAllocator();
    c->inner = c10::GetCPUAllocator();
    CountingAllocator::self = c;
    c10::SetCPUAllocator(c, /*priority=*/100);
    return c;
  }();
  return *a;
}

// Install at load time so every CPU tensor is counted.
struct Installer {
  Installer() { counting(); }
} installer;
}  // namespace

std::atomic<int64_t> live_handles{0};

void set_error(const char* message) {
  last_error = message ? message : "(null message)";
  has_error = true;
}
}  // namespace rt

// ---- errors ----
RT_API char* rt_take_error() {
  if (!rt::has_error) return nullptr;
  char* s = strdup(rt::last_error.c_str());
  rt::last_error.clear();
  rt::has_error = false;
  return s;
}
RT_API void rt_free_string(char* s) { free(s); }
RT_API void rt_free_buffer(void* p) { free(p); }

// Raises a C++ exception on purpose: tests use it to prove that `...` is caught too.
RT_API int rt_debug_throw(int kind) {
  RT_STATUS(
    if (kind == 0) TORCH_CHECK(false, "debug c10::Error");
    if (kind == 1) throw std::runtime_error("debug std::exception");
    throw 42;
  )
}

// ---- handles and memory ----
RT_API void rt_tensor_free(rt_tensor t) {
  if (!t) return;
  delete t;
  rt::live_handles.fetch_sub(1, std::memory_order_relaxed);
}
RT_API int64_t rt_live_handles() { return rt::live_handles.load(); }
RT_API int64_t rt_cpu_live_bytes() { return rt::counting().live.load(); }
RT_API int64_t rt_cpu_peak_bytes() { return rt::counting().peak.load(); }
RT_API void rt_cpu_reset_peak() { rt::counting().peak.store(rt::counting().live.load()); }

// ---- queries ----
RT_API int rt_tensor_ndim(rt_tensor t) { return static_cast<int>(t->dim()); }
RT_API int rt_tensor_shape(rt_tensor t, int64_t* out) {
  RT_STATUS(auto s = t->sizes(); for (size_t i = 0; i < s.size(); ++i) out[i] = s[i];)
}
RT_API int rt_tensor_strides(rt_tensor t, int64_t* out) {
  RT_STATUS(auto s = t->strides(); for (size_t i = 0; i < s.size(); ++i) out[i] = s[i];)
}
RT_API int64_t rt_tensor_numel(rt_tensor t) { return t->numel(); }
RT_API int rt_tensor_dtype(rt_tensor t) { return static_cast<int>(t->scalar_type()); }
RT_API int rt_tensor_element_size(rt_tensor t) { return static_cast<int>(t->element_size()); }
RT_API int rt_tensor_device_type(rt_tensor t) { return t->is_cuda() ? 1 : 0; }
RT_API int rt_tensor_device_index(rt_tensor t) { return t->is_cuda() ? t->device().index() : -1; }
RT_API int rt_tensor_is_contiguous(rt_tensor t) { return t->is_contiguous() ? 1 : 0; }
RT_API int rt_tensor_requires_grad(rt_tensor t) { return t->requires_grad() ? 1 : 0; }
RT_API int rt_tensor_is_leaf(rt_tensor t) { return t->is_leaf() ? 1 : 0; }
RT_API int rt_tensor_has_grad_fn(rt_tensor t) { return t->grad_fn() ? 1 : 0; }
RT_API char* rt_tensor_grad_fn_name(rt_tensor t) {
  RT_GUARD(nullptr, return strdup(t->grad_fn() ? t->grad_fn()->name().c_str() : "");)
}
RT_API int64_t rt_tensor_storage_nbytes(rt_tensor t) { return t->has_storage() ? static_cast<int64_t>(t->storage().nbytes()) : 0; }
// Data pointer of a CPU tensor (NULL for CUDA): valid while the tensor lives. Not necessarily contiguous.
RT_API void* rt_tensor_data_ptr(rt_tensor t) { return t->is_cuda() ? nullptr : t->data_ptr(); }

RT_API char* rt_tensor_to_string(rt_tensor t) {
  RT_GUARD(nullptr, std::ostringstream os; os << *t; return strdup(os.str().c_str());)
}
RT_API int rt_tensor_item_double(rt_tensor t, double* out) { RT_STATUS(*out = t->item<double>();) }
RT_API int rt_tensor_item_long(rt_tensor t, int64_t* out) { RT_STATUS(*out = t->item<int64_t>();) }

// Copies the elements (row-major, contiguous) into dst, which holds nbytes.
RT_API int rt_tensor_copy_to(rt_tensor t, void* dst, int64_t nbytes) {
  RT_STATUS(
    at::Tensor c = t->detach().to(at::kCPU).contiguous();
    int64_t need = c.numel() * c.element_size();
    TORCH_CHECK(need == nbytes, "copy_to: destination holds ", nbytes, " bytes, tensor needs ", need);
    if (need) std::memcpy(dst, c.data_ptr(), static_cast<size_t>(need));
  )
}

// ---- threads and build info ----
RT_API int rt_get_num_threads() { return at::get_num_threads(); }
RT_API int rt_set_num_threads(int n) { RT_STATUS(at::set_num_threads(n);) }
RT_API int rt_get_num_interop_threads() { return at::get_num_interop_threads(); }
RT_API char* rt_version() { return strdup(TORCH_VERSION); }
RT_API char* rt_show_config() { RT_GUARD(nullptr, return strdup(at::show_config().c_str());) }
RT_API char* rt_parallel_info() { RT_GUARD(nullptr, return strdup(at::get_parallel_info().c_str());) }
RT_API int rt_cuda_is_available() { return torch::cuda::is_available() ? 1 : 0; }
RT_API int rt_cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }
RT_API int rt_has_gloo() {
#ifdef RLHF_WITH_GLOO
  return 1;
#else
  return 0;
#endif
}
RT_API int rt_has_nccl() {
#ifdef RLHF_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}
RT_API int rt_cuda_synchronize(int index) {
  RT_STATUS(
#ifdef RLHF_WITH_CUDA
    torch::cuda::synchronize(index);
#else
    (void)index;
#endif
  )
}
RT_API int rt_manual_seed(uint64_t seed) { RT_STATUS(torch::manual_seed(seed);) }

// ---- generators ----
RT_API rt_generator rt_generator_new(uint64_t seed, int dev_type, int dev_index) {
  RT_GUARD(nullptr,
    at::Generator g;
    if (dev_type == 0) {
      g = at::detail::createCPUGenerator(seed);
    } else {
#ifdef RLHF_WITH_CUDA
      g = at::cuda::detail::createCUDAGenerator(static_cast<c10::DeviceIndex>(dev_index));
      g.set_current_seed(seed);
#else
      throw std::runtime_error("CUDA generator requested, but this libtorch was built without CUDA (it is CPU-only)");
#endif
    }
    return new at::Generator(std::move(g));
  )
}
RT_API void rt_generator_free(rt_generator g) { delete g; }
RT_API int rt_generator_set_seed(rt_generator g, uint64_t seed) {
  RT_STATUS(std::lock_guard<std::mutex> lock(g->mutex()); g->set_current_seed(seed);)
}
RT_API uint64_t rt_generator_seed(rt_generator g) { return g->current_seed(); }
RT_API rt_tensor rt_generator_get_state(rt_generator g) {
  RT_TENSOR([&] { std::lock_guard<std::mutex> lock(g->mutex()); return g->get_state(); }())
}
RT_API int rt_generator_set_state(rt_generator g, rt_tensor state) {
  RT_STATUS(std::lock_guard<std::mutex> lock(g->mutex()); g->set_state(*state);)
}
