// A thread's own intra-op count, set without at::set_num_threads' process-wide side effects.
//
// at::set_num_threads (libtorch 1.13, OpenMP backend) sets the calling thread's OpenMP count, remembers it as the count
// every new thread starts with, and rebuilds caffe2's pthreadpool (destroying its workers and starting new ones, which
// spin before they sleep). Code that switches a thread's count around a piece of work (Torch.UseThreads: once per step in
// the synchronous online loop) paid that rebuild each time. This file is compiled with OpenMP against Debian's libtorch,
// whose OpenMP runtime (the system's libgomp) is this one: omp_set_num_threads is then exactly the per-thread part.
#include "common.h"
#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

void set_thread_count(int n) {
  TORCH_CHECK(n > 0, "the number of intra-op threads must be positive, got ", n);
#ifdef _OPENMP
  // libtorch gives a thread the process-wide count on its first parallel use (at::init_num_threads, once per thread and
  // per copy of the inline at::internal::lazy_init_num_threads): run those first, so they cannot undo this later.
  at::internal::lazy_init_num_threads();
  (void)at::get_num_threads();
  omp_set_num_threads(n);
#else
  at::set_num_threads(n);
#endif
}

}  // namespace

RT_API int rt_set_thread_num_threads(int n) { RT_STATUS(set_thread_count(n);) }
