# Peer for the models benchmark (`bench -- models`): the same llama shapes in PyTorch eager, built from plain
# torch ops the way HF transformers' eager LlamaModel computes them (RMSNorm in float32, rotate_half rotary with
# cos/sin built once per forward, causal mask built once per forward, softmax in float32, SwiGLU MLP, untied head).
# Same batch/sequence, float32, same thread count, same "fastest step after warm-up" timing and FLOP count.
# Run with Debian's python (python3-torch 1.13, the libtorch the binding uses):  /usr/bin/python3 bench/peers/models_pytorch.py
import math, os, sys, time
import torch

torch.set_num_threads(int(os.environ.get("RLHF_NUM_THREADS", os.cpu_count())))
B, T = 4, 256
SECONDS = 1.0 if "--quick" in sys.argv else 4.0


def make(vocab, d, inter, layers, heads, g):
    def n(*s): return (torch.randn(*s, generator=g) * 0.02)
    w = {"emb": n(vocab, d), "norm": torch.ones(d), "head": n(vocab, d), "layers": []}
    for _ in range(layers):
        w["layers"].append(dict(ln1=torch.ones(d), ln2=torch.ones(d), q=n(d, d), k=n(d, d), v=n(d, d), o=n(d, d),
                                gate=n(inter, d), up=n(inter, d), down=n(d, inter)))
    return w


def params(w):
    out = [w["emb"], w["norm"], w["head"]]
    for l in w["layers"]: out += list(l.values())
    return out


def rms(x, wt, eps=1e-6):
    h = x.float()
    return wt * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat((-b, a), -1)


def forward(w, ids, heads):
    b, t = ids.shape
    x = torch.nn.functional.embedding(ids, w["emb"])
    d = x.shape[-1]; hd = d // heads
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    pos = torch.arange(t).float()
    f = torch.outer(pos, inv); emb = torch.cat((f, f), -1)
    cos, sin = emb.cos()[None, None].to(x.dtype), emb.sin()[None, None].to(x.dtype)   # [1, 1, T, hd], as HF casts them
    mask = torch.full((t, t), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)[None, None]   # additive causal mask
    for l in w["layers"]:
        h = rms(x, l["ln1"])
        q = torch.nn.functional.linear(h, l["q"]).view(b, t, heads, hd).transpose(1, 2)
        k = torch.nn.functional.linear(h, l["k"]).view(b, t, heads, hd).transpose(1, 2)
        v = torch.nn.functional.linear(h, l["v"]).view(b, t, heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd) + mask
        p = torch.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(p, v).transpose(1, 2).reshape(b, t, d)
        x = x + torch.nn.functional.linear(y, l["o"])
        h = rms(x, l["ln2"])
        x = x + torch.nn.functional.linear(torch.nn.functional.silu(torch.nn.functional.linear(h, l["gate"])) * torch.nn.functional.linear(h, l["up"]), l["down"])
    return torch.nn.functional.linear(rms(x, w["norm"]), w["head"])


def time_step(w, heads, vocab, backward):
    g = torch.Generator().manual_seed(1)
    for p in params(w): p.requires_grad_(backward)

    def step():
        ids = torch.randint(0, vocab, (B, T), generator=g)
        if not backward:
            with torch.no_grad(): forward(w, ids, heads)
            return
        loss = torch.nn.functional.cross_entropy(forward(w, ids, heads).reshape(-1, vocab), ids.reshape(-1))
        loss.backward()
        for p in params(w): p.grad = None

    step(); step()
    best, steps, t_start, c_start = float("inf"), 0, time.perf_counter(), time.process_time()
    while steps < 3 or time.perf_counter() - t_start < SECONDS:
        t0 = time.perf_counter(); step(); best = min(best, time.perf_counter() - t0); steps += 1
    util = (time.process_time() - c_start) / ((time.perf_counter() - t_start) * torch.get_num_threads())
    return best, util


def blas_build():
    """Which OpenBLAS build this process loaded (the bench passes LD_LIBRARY_PATH for the one Rlhf runs on)."""
    with open("/proc/self/maps") as f:
        for line in f:
            if "libopenblas" in line: return os.path.basename(os.path.dirname(line.split()[-1]))
    return "no OpenBLAS"


def matmul_peak():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3): a @ b
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
    return 2 * 1024 ** 3 / best / 1e9


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; batch {B} x seq {T}, float32; BLAS {blas_build()}")
    peak = matmul_peak()
    print(f"matmul peak (1024^3 float32): {peak:.1f} GFLOP/s")
    for label, (vocab, d, inter, layers, heads) in [("llama-3M", (1024, 256, 512, 4, 4)), ("llama-20M", (2048, 512, 1376, 6, 8))]:
        w = make(vocab, d, inter, layers, heads, torch.Generator().manual_seed(0))
        n = sum(p.numel() for p in params(w)) - w["emb"].numel()
        fwd_flops = (2.0 * n + 4.0 * layers * T * d) * B * T
        for mode in ("fwd", "fwd+bwd"):
            sec, util = time_step(w, heads, vocab, mode == "fwd+bwd")
            flops = fwd_flops * (3 if mode == "fwd+bwd" else 1)
            gf = flops / sec / 1e9
            print(f"{label:10s} {mode:8s} {sec * 1e3:8.1f} ms {B * T / sec:8.0f} tok/s {gf:6.1f} GFLOP/s {100 * gf / peak:4.0f}%  cpu {100 * util:.0f}%")
