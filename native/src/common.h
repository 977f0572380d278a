// Shared by every translation unit of the shim: error capture, handle wrapping, argument helpers.
#pragma once
#include <torch/torch.h>
#include <ATen/ATen.h>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>
#include "rlhf_torch.h"

namespace rt {

void set_error(const char* message);
extern std::atomic<int64_t> live_handles;

inline rt_tensor wrap(at::Tensor&& t) {
  live_handles.fetch_add(1, std::memory_order_relaxed);
  return new at::Tensor(std::move(t));
}
inline rt_tensor wrap(const at::Tensor& t) {
  live_handles.fetch_add(1, std::memory_order_relaxed);
  return new at::Tensor(t);
}
// Writes a possibly-undefined tensor into an out slot: NULL for undefined.
inline void wrap_out(const at::Tensor& t, rt_tensor* out) { *out = t.defined() ? wrap(t) : nullptr; }

inline at::IntArrayRef dims(const int64_t* p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

inline std::vector<at::Tensor> list(const rt_tensor* ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) v.push_back(ts[i] ? *ts[i] : at::Tensor());
  return v;
}

inline c10::Device device(int type, int index) {
  if (type == 0) return c10::Device(c10::DeviceType::CPU);
  if (type == 1) {
    if (!at::hasCUDA())
      throw std::runtime_error("CUDA device requested, but this libtorch was built without CUDA (it is CPU-only)");
    return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::runtime_error("unknown device type " + std::to_string(type));
}

// A C# double as the Scalar Python would pass: for an integral (or bool) tensor an integral value becomes an
// integer Scalar, so int + 1 stays int, int // 2 is an int and an alpha of 1 is allowed; a double Scalar would
// promote the result to float (or be rejected as alpha). Floating tensors get the double unchanged.
inline at::Scalar scalar_for(const at::Tensor& t, double v) {
  if (at::isIntegralType(t.scalar_type(), /*includeBool=*/true) && std::isfinite(v) && v == std::trunc(v) &&
      std::fabs(v) <= 9007199254740992.0)
    return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

inline at::TensorOptions options(int dtype, int dev_type, int dev_index) {
  return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device(dev_type, dev_index));
}

inline c10::optional<at::Generator> gen(rt_generator g) {
  if (g) return *g;
  return {};  // (c10::nullopt is std::nullopt in libtorch 2.x and its own type in 1.13)
}

}  // namespace rt

// The error discipline: run the body, and turn any exception into a stored message plus a failure value.
#define RT_GUARD(fail, ...)                                                       \
  try {                                                                           \
    __VA_ARGS__                                                                   \
  } catch (const c10::Error& e) {                                                 \
    rt::set_error(e.what_without_backtrace());                                    \
    return fail;                                                                  \
  } catch (const std::exception& e) {                                             \
    rt::set_error(e.what());                                                      \
    return fail;                                                                  \
  } catch (...) {                                                                 \
    rt::set_error("unknown native exception");                                    \
    return fail;                                                                  \
  }

// A tensor-returning export: NULL on error.
#define RT_TENSOR(expr) RT_GUARD(nullptr, return rt::wrap(expr);)
// A status-returning export: 0 ok, -1 error.
#define RT_STATUS(...) RT_GUARD(-1, __VA_ARGS__ return 0;)
