// Shared helpers of gem's GPU benchmarks: checked CUDA calls, device buffers, random routings, and
// CUDA-event timing with manual time (one iteration = `reps` back-to-back calls, time per call).
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gem/cuda/status.cuh"

#define GEM_BENCH_CHECK(expr)                                                                  \
  do {                                                                                         \
    const auto gem_bench_e = (expr);                                                           \
    if (gem_bench_e != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(gem_bench_e)); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

#define GEM_BENCH_OK(expr)                                                                     \
  do {                                                                                         \
    const gem::cuda::status gem_bench_s = (expr);                                              \
    if (!gem_bench_s.ok()) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s (%s, %lld)\n", __FILE__, __LINE__, #expr,             \
                   gem::cuda::to_string(gem_bench_s.code), cudaGetErrorString(gem_bench_s.cuda), \
                   static_cast<long long>(gem_bench_s.detail));                                \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

namespace gem::bench {

/// Device memory of n elements of T, freed on scope exit.
template <class T>
struct device_array {
  T* p = nullptr;
  std::size_t n = 0;
  device_array() = default;
  explicit device_array(std::size_t count) : n(count) {
    if (n) GEM_BENCH_CHECK(cudaMalloc(&p, n * sizeof(T)));
  }
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  device_array(device_array&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  device_array& operator=(device_array&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~device_array() {
    if (p) (void)cudaFree(p);
  }
  void upload(const std::vector<T>& v) { GEM_BENCH_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice)); }
};

/// splitmix64: a tiny generator that bench/cuda/grouped_mm_anchor.py reproduces bit for bit, so
/// the torch anchor routes the same tokens to the same experts.
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t operator()() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

/// Top-k ids [T][k]: k distinct experts per token, uniform (what a balanced router gives).
inline std::vector<std::int32_t> random_topk(std::uint64_t seed, std::int32_t T, std::int32_t k, std::int32_t E) {
  splitmix64 rng{seed};
  std::vector<std::int32_t> ids(static_cast<std::size_t>(T) * k);
  for (std::int32_t t = 0; t < T; ++t) {
    for (std::int32_t j = 0; j < k; ++j) {
      std::int32_t e;
      bool dup;
      do {
        e = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(E));
        dup = false;
        for (std::int32_t i = 0; i < j; ++i) dup |= ids[static_cast<std::size_t>(t * k + i)] == e;
      } while (dup);
      ids[static_cast<std::size_t>(t * k + j)] = e;
    }
  }
  return ids;
}

/// Per-expert counts of ids.
inline std::vector<std::int32_t> count_ids(const std::vector<std::int32_t>& ids, std::int32_t E) {
  std::vector<std::int32_t> c(static_cast<std::size_t>(E), 0);
  for (auto e : ids) ++c[static_cast<std::size_t>(e)];
  return c;
}

/// The event-timing loop shared by time_calls and time_graph: each benchmark iteration records an
/// event, runs `launch()` (which enqueues `reps` calls), records a second event and reports the
/// elapsed time per call as manual time.
template <class Launch>
void time_with_events(benchmark::State& state, cudaStream_t stream, int reps, Launch&& launch) {
  cudaEvent_t a, b;
  GEM_BENCH_CHECK(cudaEventCreate(&a));
  GEM_BENCH_CHECK(cudaEventCreate(&b));
  for (auto _ : state) {
    GEM_BENCH_CHECK(cudaEventRecord(a, stream));
    launch();
    GEM_BENCH_CHECK(cudaEventRecord(b, stream));
    GEM_BENCH_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    GEM_BENCH_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3 / reps);
  }
  GEM_BENCH_CHECK(cudaGetLastError());
  (void)cudaEventDestroy(a);
  (void)cudaEventDestroy(b);
}

/// Times `call(i)` with CUDA events: each benchmark iteration runs `reps` calls back to back and
/// reports the time per call as manual time. One warm-up iteration first.
template <class Call>
void time_calls(benchmark::State& state, cudaStream_t stream, int reps, Call&& call) {
  int i = 0;
  for (int r = 0; r < reps; ++r) call(i++);
  GEM_BENCH_CHECK(cudaStreamSynchronize(stream));
  time_with_events(state, stream, reps, [&] {
    for (int r = 0; r < reps; ++r) call(i++);
  });
}

/// As time_calls, but the `reps` calls are captured once into a CUDA graph and each iteration
/// replays it: the time per call is device time plus in-graph launch gaps, without the host's
/// launch cost (how an engine that captures its decode step runs them). `call(i)` must be
/// capturable; it sees i = 0..reps-1 once, at capture.
template <class Call>
void time_graph(benchmark::State& state, cudaStream_t stream, int reps, Call&& call) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  GEM_BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int r = 0; r < reps; ++r) call(r);
  GEM_BENCH_CHECK(cudaStreamEndCapture(stream, &graph));
  GEM_BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  GEM_BENCH_CHECK(cudaGraphLaunch(exec, stream));
  GEM_BENCH_CHECK(cudaStreamSynchronize(stream));
  time_with_events(state, stream, reps, [&] { GEM_BENCH_CHECK(cudaGraphLaunch(exec, stream)); });
  (void)cudaGraphExecDestroy(exec);
  (void)cudaGraphDestroy(graph);
}

}  // namespace gem::bench
