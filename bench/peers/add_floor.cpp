// Peer for the binding benchmark: the per-call floor of a 4-element add in raw libtorch C++,
// and matmul 1024^3 float32 GFLOP/s. Built and run by the `binding` suite of Rlhf.Bench.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  auto a = at::ones({4}), b = at::ones({4});
  const int n = 1000000;
  for (int i = 0; i < 10000; ++i) { auto c = a + b; }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) { auto c = a + b; }
  auto t1 = std::chrono::steady_clock::now();
  double add_us = std::chrono::duration<double, std::micro>(t1 - t0).count() / n;

  auto x = at::randn({1024, 1024}), y = at::randn({1024, 1024});
  for (int i = 0; i < 3; ++i) { auto z = at::matmul(x, y); }
  const int reps = 20;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) { auto z = at::matmul(x, y); }
  t1 = std::chrono::steady_clock::now();
  double gflops = 2.0 * 1024 * 1024 * 1024 * reps / std::chrono::duration<double>(t1 - t0).count() / 1e9;
  std::printf("add_us=%.4f matmul_gflops=%.2f\n", add_us, gflops);
}
