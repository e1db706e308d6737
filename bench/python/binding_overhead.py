"""Overhead of gem's Python binding over the C++ call it wraps, at DeepSeek-V3 scale.

    PYTHONPATH=build/python /usr/bin/python3 bench/python/binding_overhead.py

Anchor (same run): the median time of the C++ rebalance_experts alone, timed inside the extension.
Measured: the median time of gem.rebalance_experts from Python on the same input (numpy in, numpy
out: argument conversion, the C++ call, building the three int64 arrays).
"""
import statistics
import time

import numpy as np

import gem


def interleaved_medians(cpp, py, repeats):
    """Alternates the two measurements so that both see the same machine load; returns medians."""
    a, b = [], []
    for _ in range(repeats):
        a.append(cpp())
        t0 = time.perf_counter()
        py()
        b.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def main():
    rng = np.random.default_rng(0)
    cases = [("dsv3 58x256 -> 288 slots, 32 GPUs, hierarchical 8 groups / 4 nodes", (58, 256), 288, 8, 4, 32),
             ("dsv3 58x256 -> 320 slots, 64 GPUs, global", (58, 256), 320, 8, 3, 64),
             ("dsv2-lite 26x64 -> 64 slots, 8 GPUs", (26, 64), 64, 1, 1, 8)]
    print(f"{'case':72s} {'C++ (ms)':>9s} {'Python (ms)':>11s} {'overhead':>9s}")
    for name, shape, slots, groups, nodes, gpus in cases:
        weight = rng.zipf(1.5, size=shape).astype(np.float64) + rng.random(shape)
        cpp, py = interleaved_medians(lambda: gem._gem.time_rebalance_cpp(weight, slots, groups, nodes, gpus, 1),
                                      lambda: gem.rebalance_experts(weight, slots, groups, nodes, gpus), 41)
        print(f"{name:72s} {cpp * 1e3:9.3f} {py * 1e3:11.3f} {py / cpp - 1:9.1%}")


if __name__ == "__main__":
    main()
