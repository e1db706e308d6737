"""Overhead of gem's Python binding over the C++ call it wraps, at DeepSeek-V3 scale.

    python3 bench/python/binding_overhead.py          # after scripts/build (or PYTHONPATH=<build>/python)

Three measurements per case, interleaved (one of each per round) so that all see the same machine
load; medians over the rounds, of wall time and of the calling thread's CPU time (on a shared,
loaded machine the CPU time is the fair one: it leaves out time the scheduler gave to others):
  C++ public  gem::rebalance_experts alone, timed inside the extension (weight already in nested
              vectors; int32 results): what a C++ caller pays.
  C++ core    the binding's own C++ path alone, timed inside the extension without Python: checks,
              EPLB written into int64 buffers allocated per call, log2phy.
  Python      gem.rebalance_experts from Python on a numpy array (argument handling, the C++ core
              with the GIL released, the three int64 numpy arrays).
The overheads are Python / C++ public - 1 and Python / C++ core - 1.
"""
import argparse
import statistics
import time

import numpy as np

import gem


def interleaved_medians(measures, rounds):
    """Each measure returns (wall, cpu) seconds; returns [(median wall, median cpu)] per measure."""
    samples = [[] for _ in measures]
    for _ in range(rounds):
        for s, m in zip(samples, measures):
            s.append(m())
    return [(statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for s in samples]


def timed(f):
    def run():
        t0, c0 = time.perf_counter(), time.thread_time()
        f()
        c1, t1 = time.thread_time(), time.perf_counter()
        return t1 - t0, c1 - c0

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=101)
    rounds = ap.parse_args().rounds
    rng = np.random.default_rng(0)
    cases = [("dsv3 58x256 -> 288 slots, 32 GPUs, hierarchical 8 groups / 4 nodes", (58, 256), 288, 8, 4, 32, np.float64),
             ("dsv3 58x256 -> 320 slots, 64 GPUs, global", (58, 256), 320, 8, 3, 64, np.float64),
             ("dsv3 58x256 -> 320 slots, 64 GPUs, global, float32 weight", (58, 256), 320, 8, 3, 64, np.float32),
             ("dsv2-lite 26x64 -> 64 slots, 8 GPUs", (26, 64), 64, 1, 1, 8, np.float64)]
    print(f"{gem._gem.__file__}, {rounds} interleaved rounds, medians (wall | thread CPU)")
    print(f"{'case':66s} {'C++ public':>17s} {'C++ core':>17s} {'Python':>17s} {'vs public':>15s} {'vs core':>15s}")
    for name, shape, slots, groups, nodes, gpus, dtype in cases:
        weight = (rng.zipf(1.5, size=shape).astype(np.float64) + rng.random(shape)).astype(dtype)
        args = (slots, groups, nodes, gpus)
        public, core, py = interleaved_medians(
            [lambda: gem._gem.time_rebalance_cpp(weight, *args, 1),
             lambda: gem._gem.time_rebalance_core(weight, *args, 1),
             timed(lambda: gem.rebalance_experts(weight, *args))], rounds)

        def ms(t):
            return f"{t[0] * 1e3:7.3f} | {t[1] * 1e3:7.3f}"

        def ratio(a, b):
            return f"{a[0] / b[0] - 1:6.1%} | {a[1] / b[1] - 1:6.1%}"

        print(f"{name:66s} {ms(public):>17s} {ms(core):>17s} {ms(py):>17s} {ratio(py, public):>15s} {ratio(py, core):>15s}")


if __name__ == "__main__":
    main()
