// c10d over the C ABI: TCPStore + PrefixStore, ProcessGroupGloo (CPU) and, with a CUDA libtorch,
// ProcessGroupNCCL; collectives return a Work handle whose wait() names the rank and the operation
// on failure. Gloo in libtorch 1.13 cannot reduce_scatter, _allgather_base or carry bf16, so: bf16
// travels as fp32, reduce-scatter is all-reduce + slice, all-gather goes into equal padded shards
// (views of one flat output).
//
// Without c10d (no gloo headers and a CPU-only libtorch) every export below fails with one message:
// the whole file is under one availability guard, with the stubs at its end.
#include "common.h"

#if defined(RLHF_WITH_GLOO) || defined(RLHF_WITH_NCCL)
#include <chrono>
#include <functional>
#include <memory>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RLHF_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RLHF_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace rt {
// libtorch 2.x made ProcessGroupGloo/NCCL backends (c10d::Backend) under a ProcessGroup facade; 1.13's are
// ProcessGroups themselves. Both carry the same collective calls, so a Group holds whichever the backend is.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct Group {
  c10::intrusive_ptr<Collectives> pg;
  int rank;
  int size;
  bool gloo;  // Gloo: no bf16, no native reduce-scatter / allgather_base
};

// One in-flight collective. `after` runs once the backend's work completed (copy fp32 staging back
// into a bf16 tensor, keep this rank's slice of a reduce-scatter); `keep` pins every tensor involved.
struct Work {
  c10::intrusive_ptr<c10d::Work> work;  // null: nothing to wait for (world size 1 fast paths)
  std::string op;
  int rank;
  std::function<void()> after;
  std::vector<at::Tensor> keep;
  bool done = false;
};

inline std::string describe(const Work& w, const std::string& why) {
  return "rank " + std::to_string(w.rank) + ": collective '" + w.op + "' failed: " + why;
}

// The dtype a tensor travels in: Gloo has no bf16 (nor fp16 reductions everywhere), so widen to fp32.
inline bool needs_staging(const Group& g, const at::Tensor& t) {
  return g.gloo && t.scalar_type() == at::kBFloat16;
}

inline c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp::SUM;
    case 1: return c10d::ReduceOp::MAX;
    case 2: return c10d::ReduceOp::MIN;
    case 3: return c10d::ReduceOp::PRODUCT;
    default: throw std::runtime_error("unknown reduce op " + std::to_string(op) + " (0 sum, 1 max, 2 min, 3 product)");
  }
}

inline void check_contiguous(const at::Tensor& t, const char* what) {
  if (!t.is_contiguous()) throw std::runtime_error(std::string(what) + ": tensor must be contiguous");
}

inline Work* make_work(const Group& g, const char* op) {
  auto* w = new Work();
  w->op = op;
  w->rank = g.rank;
  return w;
}

// Runs `launch` on a tensor that may need fp32 staging; the staged result is copied back after wait.
template <typename F>
Work* staged(const Group& g, const char* op, at::Tensor& t, F launch) {
  check_contiguous(t, op);
  std::unique_ptr<Work> w(make_work(g, op));
  if (needs_staging(g, t)) {
    at::Tensor s = t.to(at::kFloat);
    std::vector<at::Tensor> v{s};
    w->work = launch(v);
    at::Tensor dst = t;
    w->after = [dst, s]() mutable { at::NoGradGuard ng; dst.copy_(s); };
    w->keep = {t, s};
  } else {
    std::vector<at::Tensor> v{t};
    w->work = launch(v);
    w->keep = {t};
  }
  return w.release();
}
}  // namespace rt

// ---------------------------------------------------------------- stores

// A TCPStore: rank 0 hosts it (is_server), everyone connects to host:port. timeout_ms bounds every wait.
RT_API rt_store rt_store_tcp_new(const char* host, int port, int is_server, int num_workers, int64_t timeout_ms) {
  RT_GUARD(nullptr,
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = is_server != 0;
    if (num_workers > 0) o.numWorkers = static_cast<size_t>(num_workers);
    o.waitWorkers = true;
    o.timeout = std::chrono::milliseconds(timeout_ms);
    auto s = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    return new rt::Store{s};
  )
}

// A PrefixStore over `inner` (the default group uses "default_pg").
RT_API rt_store rt_store_prefix_new(const char* prefix, rt_store inner) {
  RT_GUARD(nullptr,
    return new rt::Store{c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), inner->store)};
  )
}

RT_API void rt_store_free(rt_store s) {
  delete s;
}

RT_API int rt_store_set(rt_store s, const char* key, const uint8_t* value, int64_t len) {
  RT_STATUS(
    s->store->set(std::string(key), std::vector<uint8_t>(value, value + len));
  )
}

// Blocks until `key` exists (up to the store timeout); the value is returned as a malloc'd buffer
// freed with rt_free_string (it is NUL-terminated as a convenience; *len excludes the NUL).
RT_API int rt_store_get(rt_store s, const char* key, char** out, int64_t* len) {
  RT_STATUS(
    auto v = s->store->get(std::string(key));
    char* b = static_cast<char*>(std::malloc(v.size() + 1));
    if (!b) throw std::bad_alloc();
    if (!v.empty()) std::memcpy(b, v.data(), v.size());
    b[v.size()] = 0;
    *out = b;
    *len = static_cast<int64_t>(v.size());
  )
}

RT_API int rt_store_add(rt_store s, const char* key, int64_t delta, int64_t* out) {
  RT_STATUS(
    *out = s->store->add(std::string(key), delta);
  )
}

// ---------------------------------------------------------------- process groups

// ProcessGroupGloo over `store` with one device bound to `host` (the address peers reach us on).
RT_API rt_pg rt_pg_gloo_new(rt_store store, int rank, int size, const char* host, int64_t timeout_ms) {
  RT_GUARD(nullptr,
#ifdef RLHF_WITH_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(host)));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store->store, rank, size, opts);
    return new rt::Group{pg, rank, size, true};
#else
    throw std::runtime_error("this shim was built without c10d Gloo (install libgloo-dev and rebuild native/)");
#endif
  )
}

// ProcessGroupNCCL (CUDA libtorch only); tensors given to it must live on this rank's CUDA device.
RT_API rt_pg rt_pg_nccl_new(rt_store store, int rank, int size, int64_t timeout_ms) {
  RT_GUARD(nullptr,
#ifdef RLHF_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store->store, rank, size, opts);
    return new rt::Group{pg, rank, size, false};
#else
    throw std::runtime_error("NCCL is not available: this shim was built against a libtorch without CUDA/NCCL");
#endif
  )
}

RT_API void rt_pg_free(rt_pg g) {
  delete g;
}

// ---------------------------------------------------------------- collectives (each returns a work)

// In-place all-reduce (op: 0 sum, 1 max, 2 min, 3 product).
RT_API rt_work rt_pg_allreduce(rt_pg g, rt_tensor t, int op) {
  RT_GUARD(nullptr,
    c10d::AllreduceOptions o;
    o.reduceOp = rt::reduce_op(op);
    return rt::staged(*g, "allreduce", *t, [&](std::vector<at::Tensor>& v) { return g->pg->allreduce(v, o); });
  )
}

// In-place broadcast from `root`.
RT_API rt_work rt_pg_broadcast(rt_pg g, rt_tensor t, int root) {
  RT_GUARD(nullptr,
    c10d::BroadcastOptions o;
    o.rootRank = root;
    return rt::staged(*g, "broadcast", *t, [&](std::vector<at::Tensor>& v) { return g->pg->broadcast(v, o); });
  )
}

// In-place reduce to `root` (other ranks' tensors are left in an unspecified state, as in c10d).
RT_API rt_work rt_pg_reduce(rt_pg g, rt_tensor t, int root, int op) {
  RT_GUARD(nullptr,
    c10d::ReduceOptions o;
    o.rootRank = root;
    o.reduceOp = rt::reduce_op(op);
    return rt::staged(*g, "reduce", *t, [&](std::vector<at::Tensor>& v) { return g->pg->reduce(v, o); });
  )
}

// All-gather of equal shards: `output` (contiguous, numel = size × numel(input)) receives rank r's
// input at [r·n, (r+1)·n). Callers pad their shard to the common length first.
RT_API rt_work rt_pg_allgather(rt_pg g, rt_tensor input, rt_tensor output) {
  RT_GUARD(nullptr,
    at::Tensor in = *input, out = *output;
    rt::check_contiguous(in, "allgather");
    rt::check_contiguous(out, "allgather");
    const int64_t n = in.numel();
    if (out.numel() != n * g->size)
      throw std::runtime_error("rank " + std::to_string(g->rank) + ": allgather output has " + std::to_string(out.numel()) +
                               " elements, expected world size " + std::to_string(g->size) + " x " + std::to_string(n));
    if (in.scalar_type() != out.scalar_type()) throw std::runtime_error("allgather: input and output dtypes differ");
    std::unique_ptr<rt::Work> w(rt::make_work(*g, "allgather"));
    bool stage = rt::needs_staging(*g, in);
    at::Tensor sin = stage ? in.to(at::kFloat) : in;
    at::Tensor sout = stage ? at::empty({out.numel()}, out.options().dtype(at::kFloat)) : out.view({-1});
    std::vector<at::Tensor> inputs{sin.view({-1})};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g->size; ++r) outputs[0].push_back(sout.narrow(0, r * n, n));
    w->work = g->pg->allgather(outputs, inputs);
    if (stage) {
      at::Tensor dst = out;
      w->after = [dst, sout]() mutable { at::NoGradGuard ng; dst.view({-1}).copy_(sout); };
    }
    w->keep = {in, out, sin, sout};
    return w.release();
  )
}

// Reduce-scatter of equal shards: `input` has size × n elements, `output` n; rank r receives the
// reduction of every rank's [r·n, (r+1)·n). NCCL: native _reduce_scatter_base. Gloo (which cannot):
// all-reduce of a staging copy, then this rank's slice is copied out after the wait.
RT_API rt_work rt_pg_reduce_scatter(rt_pg g, rt_tensor input, rt_tensor output, int op) {
  RT_GUARD(nullptr,
    at::Tensor in = *input, out = *output;
    rt::check_contiguous(in, "reduce_scatter");
    rt::check_contiguous(out, "reduce_scatter");
    const int64_t n = out.numel();
    if (in.numel() != n * g->size)
      throw std::runtime_error("rank " + std::to_string(g->rank) + ": reduce_scatter input has " + std::to_string(in.numel()) +
                               " elements, expected world size " + std::to_string(g->size) + " x " + std::to_string(n));
    std::unique_ptr<rt::Work> w(rt::make_work(*g, "reduce_scatter"));
    if (!g->gloo) {
      c10d::ReduceScatterOptions o;
      o.reduceOp = rt::reduce_op(op);
      at::Tensor o1 = out.view({-1}), i1 = in.view({-1});
      w->work = g->pg->_reduce_scatter_base(o1, i1, o);
      w->keep = {in, out};
      return w.release();
    }
    c10d::AllreduceOptions o;
    o.reduceOp = rt::reduce_op(op);
    // Gloo reduces in place: work on a copy, in fp32 only where Gloo needs it (bf16), so float64 stays exact.
    at::Tensor s = in.to(rt::needs_staging(*g, in) ? at::kFloat : in.scalar_type(), /*non_blocking=*/false, /*copy=*/true).view({-1});
    std::vector<at::Tensor> v{s};
    w->work = g->pg->allreduce(v, o);
    at::Tensor dst = out;
    const int64_t off = static_cast<int64_t>(g->rank) * n;
    w->after = [dst, s, off, n]() mutable { at::NoGradGuard ng; dst.view({-1}).copy_(s.narrow(0, off, n)); };
    w->keep = {in, out, s};
    return w.release();
  )
}

RT_API rt_work rt_pg_barrier(rt_pg g) {
  RT_GUARD(nullptr,
    std::unique_ptr<rt::Work> w(rt::make_work(*g, "barrier"));
    w->work = g->pg->barrier(c10d::BarrierOptions());
    return w.release();
  )
}

RT_API rt_work rt_pg_send(rt_pg g, rt_tensor t, int dst, int tag) {
  RT_GUARD(nullptr,
    std::string op = "send to rank " + std::to_string(dst);
    if (rt::needs_staging(*g, *t)) {
      std::unique_ptr<rt::Work> w(rt::make_work(*g, op.c_str()));
      at::Tensor s = t->to(at::kFloat);
      std::vector<at::Tensor> v{s};
      w->work = g->pg->send(v, dst, tag);
      w->keep = {*t, s};
      return w.release();
    }
    return rt::staged(*g, op.c_str(), *t, [&](std::vector<at::Tensor>& v) { return g->pg->send(v, dst, tag); });
  )
}

RT_API rt_work rt_pg_recv(rt_pg g, rt_tensor t, int src, int tag) {
  RT_GUARD(nullptr,
    std::string op = "recv from rank " + std::to_string(src);
    return rt::staged(*g, op.c_str(), *t, [&](std::vector<at::Tensor>& v) { return g->pg->recv(v, src, tag); });
  )
}

// Waits for the work; on failure the message names this rank and the operation. Idempotent.
RT_API int rt_work_wait(rt_work w) {
  RT_STATUS(
    if (!w->done) {
      try {
        if (w->work) w->work->wait();
      } catch (const c10::Error& e) {
        w->done = true;
        throw std::runtime_error(rt::describe(*w, e.what_without_backtrace()));
      } catch (const std::exception& e) {
        w->done = true;
        throw std::runtime_error(rt::describe(*w, e.what()));
      }
      w->done = true;
      if (w->after) w->after();
      w->after = nullptr;
      w->keep.clear();
    }
  )
}

RT_API int rt_work_is_completed(rt_work w) {
  try {
    return (w->done || !w->work || w->work->isCompleted()) ? 1 : 0;
  } catch (...) {
    return 1;
  }
}

RT_API void rt_work_free(rt_work w) {
  delete w;
}

#else  // no c10d in this build

#define RT_NO_C10D(fail) RT_GUARD(fail, throw std::runtime_error("this shim was built without c10d (no gloo headers and no NCCL)");)

RT_API rt_store rt_store_tcp_new(const char* host, int port, int is_server, int num_workers, int64_t timeout_ms) { RT_NO_C10D(nullptr) }
RT_API rt_store rt_store_prefix_new(const char* prefix, rt_store inner) { RT_NO_C10D(nullptr) }
RT_API void rt_store_free(rt_store s) {}
RT_API int rt_store_set(rt_store s, const char* key, const uint8_t* value, int64_t len) { RT_NO_C10D(-1) }
RT_API int rt_store_get(rt_store s, const char* key, char** out, int64_t* len) { RT_NO_C10D(-1) }
RT_API int rt_store_add(rt_store s, const char* key, int64_t delta, int64_t* out) { RT_NO_C10D(-1) }
RT_API rt_pg rt_pg_gloo_new(rt_store store, int rank, int size, const char* host, int64_t timeout_ms) { RT_NO_C10D(nullptr) }
RT_API rt_pg rt_pg_nccl_new(rt_store store, int rank, int size, int64_t timeout_ms) { RT_NO_C10D(nullptr) }
RT_API void rt_pg_free(rt_pg g) {}
RT_API rt_work rt_pg_allreduce(rt_pg g, rt_tensor t, int op) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_broadcast(rt_pg g, rt_tensor t, int root) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_reduce(rt_pg g, rt_tensor t, int root, int op) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_allgather(rt_pg g, rt_tensor input, rt_tensor output) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_reduce_scatter(rt_pg g, rt_tensor input, rt_tensor output, int op) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_barrier(rt_pg g) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_send(rt_pg g, rt_tensor t, int dst, int tag) { RT_NO_C10D(nullptr) }
RT_API rt_work rt_pg_recv(rt_pg g, rt_tensor t, int src, int tag) { RT_NO_C10D(nullptr) }
RT_API int rt_work_wait(rt_work w) { RT_NO_C10D(-1) }
RT_API int rt_work_is_completed(rt_work w) { return 1; }
RT_API void rt_work_free(rt_work w) {}

#endif
