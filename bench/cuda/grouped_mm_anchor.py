#!/usr/bin/env python3
"""torch._grouped_mm anchor for bench/cuda/grouped_gemm_bench.cu: the same shapes, token counts and
routings (splitmix64 top-k, seeds 100..103, rotated between calls), the same timing (CUDA events,
8 back-to-back calls per sample for T <= 128, else 1; median of the samples). Prints one JSON object
per line: {"name": "gemm/<model>/<gate_up|down>/T=<T>/anchor_torch_grouped_mm", "us": median}."""
import json
import statistics
import sys

import torch

MODELS = [("mixtral", 4096, 14336, 8, 2), ("dsv3", 7168, 2048, 256, 8), ("qwen3", 2048, 768, 128, 8),
          ("olmoe", 2048, 1024, 64, 8), ("dsv2lite", 2048, 1408, 64, 6)]
TOKENS = [1, 16, 128, 1024, 8192]
ROUTINGS = 4
MASK = (1 << 64) - 1


def random_topk_counts(seed, T, k, E):
    state = seed
    counts = [0] * E
    for _ in range(T):
        chosen = []
        for _ in range(k):
            while True:
                state = (state + 0x9E3779B97F4A7C15) & MASK
                z = state
                z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
                z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
                z ^= z >> 31
                e = z % E
                if e not in chosen:
                    break
            chosen.append(e)
            counts[e] += 1
    return counts


def time_call(fn, reps, samples=15):
    for i in range(reps):
        fn(i)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out, i = [], reps
    for _ in range(samples):
        start.record()
        for _ in range(reps):
            fn(i)
            i += 1
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop) * 1e3 / reps)
    return statistics.median(out)


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    dev = torch.device("cuda")
    for name, H, I, E, k in MODELS:
        if only and only not in name:
            continue
        w13 = torch.empty(E, 2 * I, H, dtype=torch.bfloat16, device=dev).uniform_(-0.05, 0.05)
        w2 = torch.empty(E, H, I, dtype=torch.bfloat16, device=dev).uniform_(-0.05, 0.05)
        for T in TOKENS:
            offs = []
            for r in range(ROUTINGS):
                c = torch.tensor(random_topk_counts(100 + r, T, k, E), dtype=torch.int32)
                offs.append(torch.cumsum(c, 0, dtype=torch.int32).to(dev))
            rows = T * k
            for gemm, w, K in (("gate_up", w13, H), ("down", w2, I)):
                x = torch.empty(rows, K, dtype=torch.bfloat16, device=dev).uniform_(-1, 1)
                wt = w.transpose(-2, -1)
                label = f"gemm/{name}/{gemm}/T={T}/anchor_torch_grouped_mm"
                try:
                    us = time_call(lambda i: torch._grouped_mm(x, wt, offs=offs[i % ROUTINGS]), 8 if T <= 128 else 1)
                    print(json.dumps({"name": label, "us": us}), flush=True)
                except Exception as exc:  # report, keep going
                    print(json.dumps({"name": label, "error": str(exc)[:200]}), flush=True)
                del x
        del w13, w2
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
