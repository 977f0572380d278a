# Peer for the binding benchmark: PyTorch eager from Python (Debian's python3-torch, the same libtorch 1.13).
import os, time, torch
torch.set_num_threads(os.cpu_count())
a, b = torch.ones(4), torch.ones(4)
n = 1_000_000
for _ in range(10_000): c = a + b
t0 = time.perf_counter()
for _ in range(n): c = a + b
add_us = (time.perf_counter() - t0) / n * 1e6
x, y = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(3): z = x @ y
reps = 20
t0 = time.perf_counter()
for _ in range(reps): z = x @ y
gflops = 2 * 1024**3 * reps / (time.perf_counter() - t0) / 1e9
print(f"add_us={add_us:.4f} matmul_gflops={gflops:.2f}")
