# Peer for the `gpu` bench suite (bench/Rlhf.Bench/Suites/GpuBench.cs): the same llama training shapes, bf16 (and
# float32 for the small one) on a CUDA device, in PyTorch eager with the HF-style math of models_pytorch.py, timed
# the same way (fastest of N synchronised steps after two warm-ups), plus the same bf16/fp32 matmul peaks.
# Run on the GPU machine by tools/gpu-check.sh:  python3 bench/peers/gpu_pytorch.py [--quick]
import sys, time
import torch
from models_pytorch import make, params, forward

dev = torch.device("cuda")
ITERS = 3 if "--quick" in sys.argv else 8
# label, (vocab, hidden, intermediate, layers, heads), batch, sequence — GpuBench.TrainCases
CASES = [("llama-20M", (2048, 512, 1376, 6, 8), 4, 256), ("llama-400M", (32000, 1024, 2816, 24, 16), 8, 1024)]


def timed(step, warmup=2, iters=ITERS):
    for _ in range(warmup): step()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter(); step(); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t0)
    return best


def peak(n, dtype):
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n ** 3 / timed(lambda: a @ b, 3, 10) / 1e12


def to(w, dtype):
    out = {k: v.to(dev, dtype) for k, v in w.items() if k != "layers"}
    out["layers"] = [{k: v.to(dev, dtype) for k, v in l.items()} for l in w["layers"]]
    return out


print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
bf16_peak = peak(8192, torch.bfloat16)
print(f"| matmul peak | bf16 8192³ | {bf16_peak:.0f} TFLOP/s |")
print(f"| matmul peak | fp32 4096³ | {peak(4096, torch.float32):.1f} TFLOP/s |")
for label, (vocab, d, inter, layers, heads), B, T in CASES:
    for dtype in ((torch.float32, torch.bfloat16) if label == "llama-20M" else (torch.bfloat16,)):
        w = to(make(vocab, d, inter, layers, heads, torch.Generator().manual_seed(0)), dtype)
        for p in params(w): p.requires_grad_(True)
        g = torch.Generator(device=dev).manual_seed(1)
        torch.set_default_device(dev)   # the forward's rotary tables and mask are made where the weights are

        def step():
            ids = torch.randint(0, vocab, (B, T), generator=g, device=dev)
            loss = torch.nn.functional.cross_entropy(forward(w, ids, heads).reshape(-1, vocab).float(), ids.reshape(-1))
            loss.backward()
            for p in params(w): p.grad = None

        sec = timed(step)
        torch.set_default_device("cpu")
        total = sum(p.numel() for p in params(w)); n = total - w["emb"].numel()
        tf = 3 * (2.0 * n + 4.0 * layers * T * d) * B * T / sec / 1e12
        name = str(dtype).replace("torch.", "")
        print(f"| train step (PyTorch eager) | {label} ({total / 1e6:.0f}M) fwd+bwd {name}, batch {B} × {T} | "
              f"{sec * 1e3:.1f} ms, {B * T / sec:.0f} tok/s, {tf:.1f} TFLOP/s ({100 * tf / bf16_peak:.0f}% of the bf16 peak) |")
        del w
