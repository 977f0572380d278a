# Peer for the generation rows of `bench -- all`: HF-style KV-cached sampling in PyTorch eager (what transformers'
# `generate(do_sample=True)` does for a decoder-only llama: left-padded static batch, one prefill, then one token per
# row per step with the keys/values appended to a per-layer cache, finished rows padded until every row is done).
# Same model shape as the `generation` suite (llama vocab 8192, hidden 384, MLP 1024, 8 layers, 6 heads over 2 KV
# heads), same prompts (read from a JSON file), n samples per prompt, temperature 1, same stop ids and max tokens.
# Usage: /usr/bin/python3 bench/peers/generate_pytorch.py PROMPTS.json N MAX_TOKENS THREADS
# Prints one line: "generate: TOKENS tokens in SECONDS s".
import json, math, sys, time
import torch

prompts = json.load(open(sys.argv[1]))
n, max_tokens, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
V, D, I, L, H, KV = 8192, 384, 1024, 8, 6, 2
HD = D // H
STOPS = torch.zeros(V, dtype=torch.bool); STOPS[:128] = True
g = torch.Generator().manual_seed(1)


def r(*s): return torch.randn(*s, generator=g) * 0.02


W = {"emb": r(V, D), "norm": torch.ones(D), "head": r(V, D),
     "layers": [dict(ln1=torch.ones(D), ln2=torch.ones(D), q=r(H * HD, D), k=r(KV * HD, D), v=r(KV * HD, D), o=r(D, D),
                     gate=r(I, D), up=r(I, D), down=r(D, I)) for _ in range(L)]}
inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2).float() / HD))
F = torch.nn.functional


def rms(x, w): return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def rot(x):
    a, b = x.chunk(2, -1)
    return torch.cat((-b, a), -1)


def forward(ids, pos, allowed, cache):
    b, t = ids.shape
    x = F.embedding(ids, W["emb"])
    f = pos.float()[..., None] * inv
    e = torch.cat((f, f), -1)[:, None]
    cos, sin = e.cos(), e.sin()
    for li, l in enumerate(W["layers"]):
        h = rms(x, l["ln1"])
        q = F.linear(h, l["q"]).view(b, t, H, HD).transpose(1, 2)
        k = F.linear(h, l["k"]).view(b, t, KV, HD).transpose(1, 2)
        v = F.linear(h, l["v"]).view(b, t, KV, HD).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        if cache[li] is not None:
            k, v = torch.cat((cache[li][0], k), 2), torch.cat((cache[li][1], v), 2)
        cache[li] = (k, v)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        s = (q @ k.transpose(2, 3)) / math.sqrt(HD)
        s = s.masked_fill(~allowed, torch.finfo(torch.float32).min)
        y = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, t, D)
        x = x + F.linear(y, l["o"])
        h = rms(x, l["ln2"])
        x = x + F.linear(F.silu(F.linear(h, l["gate"])) * F.linear(h, l["up"]), l["down"])
    return F.linear(rms(x[:, -1], W["norm"]), W["head"])


@torch.no_grad()
def generate(rows):
    b, p = len(rows), max(len(x) for x in rows)
    ids = torch.zeros(b, p, dtype=torch.long)
    real = torch.zeros(b, p, dtype=torch.bool)
    for i, x in enumerate(rows):
        ids[i, p - len(x):] = torch.tensor(x); real[i, p - len(x):] = True
    pos = (real.long().cumsum(-1) - 1).clamp(min=0)
    cache = [None] * L
    allowed = torch.ones(p, p, dtype=torch.bool).tril()[None, None] & real[:, None, None, :]
    logits = forward(ids, pos, allowed, cache)
    done = torch.zeros(b, dtype=torch.bool)
    produced = 0
    last = pos[:, -1]
    sg = torch.Generator().manual_seed(42)
    for _ in range(max_tokens):
        tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=sg)[:, 0]
        produced += int((~done).sum())
        done |= STOPS[tok]
        if bool(done.all()): break
        real = torch.cat((real, torch.ones(b, 1, dtype=torch.bool)), 1)
        last = last + 1
        logits = forward(tok[:, None], last[:, None], real[:, None, None, :], cache)
    return produced


generate([prompts[0]] * 2)  # warm-up
rows = [x for x in prompts for _ in range(n)]
t0 = time.perf_counter()
tokens = generate(rows)
print(f"generate: {tokens} tokens in {time.perf_counter() - t0:.3f} s")
