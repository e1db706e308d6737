// Permute (gather into expert-major order) and combine (weighted sum back to token order) on the GPU,
// beside a device-to-device copy of the same bytes (the anchor: what the memory system gives a copy)
// and a memset of the permute's output bytes (its writes alone). Bytes counted: rows read plus rows
// written. Timed as replays of a CUDA graph of back-to-back calls.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_util.cuh"
#include "gem/cuda/permute.cuh"
#include "gem/cuda/random_fill.cuh"
#include "gem/cuda/routing.cuh"

namespace {

using gem::bench::device_array;
namespace gc = gem::cuda;

struct move_case {
  std::int32_t T, k, E, H;
};

int reps_for(const move_case& c) { return c.T <= 128 ? 16 : 2; }

struct routed_rows {
  gc::routing_config cfg;
  device_array<unsigned char> ws;
  gc::routing_layout layout{};
  device_array<std::int32_t> ids;
  device_array<float> weights;
  device_array<gc::bf16> x, xp, out;
  routed_rows(const move_case& c, cudaStream_t s)
      : cfg{.num_tokens = c.T, .top_k = c.k, .num_experts = c.E, .tile_rows = 1},
        ws(gc::routing_workspace_size(cfg)),
        ids(static_cast<std::size_t>(c.T) * c.k),
        weights(ids.n),
        x(static_cast<std::size_t>(c.T) * c.H),
        xp(static_cast<std::size_t>(cfg.capacity_rows()) * c.H),
        out(x.n) {
    GEM_BENCH_OK(gc::bind_routing_layout(cfg, ws.p, ws.n, &layout));
    ids.upload(gem::bench::random_topk(2, c.T, c.k, c.E));
    std::vector<float> w(ids.n, 1.0f / static_cast<float>(c.k));
    weights.upload(w);
    GEM_BENCH_OK(gc::fill_uniform_async(x.p, x.n, 3, -1.0f, 1.0f, s));
    GEM_BENCH_OK(gc::fill_uniform_async(xp.p, xp.n, 4, -1.0f, 1.0f, s));
    GEM_BENCH_OK(gc::routing_layout_async(cfg, ids.p, weights.p, layout, s));
    GEM_BENCH_CHECK(cudaStreamSynchronize(s));
  }
};

void bm_permute(benchmark::State& state, move_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  routed_rows r(c, s);
  gem::bench::time_graph(state, s, reps_for(c), [&](int) {
    GEM_BENCH_OK(gc::permute_async(r.layout, c.k, r.x.p, static_cast<std::size_t>(c.H) * 2, r.xp.p, s));
  });
  state.counters["bytes"] = 2.0 * c.T * c.k * c.H * 2;
  (void)cudaStreamDestroy(s);
}

void bm_combine(benchmark::State& state, move_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  routed_rows r(c, s);
  gem::bench::time_graph(state, s, reps_for(c), [&](int) {
    GEM_BENCH_OK(gc::combine_async(r.layout, c.T, c.k, r.weights.p, r.xp.p, c.H, nullptr, r.out.p, s));
  });
  state.counters["bytes"] = (static_cast<double>(c.T) * c.k + c.T) * c.H * 2;
  (void)cudaStreamDestroy(s);
}

/// Anchor: copy of T*k rows of H bf16 (the permute's bytes: read once, written once).
void bm_copy(benchmark::State& state, move_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  const std::size_t bytes = static_cast<std::size_t>(c.T) * c.k * c.H * 2;
  device_array<unsigned char> a(bytes), b(bytes);
  GEM_BENCH_CHECK(cudaMemset(a.p, 1, bytes));
  gem::bench::time_graph(state, s, reps_for(c), [&](int) {
    GEM_BENCH_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s));
  });
  state.counters["bytes"] = 2.0 * static_cast<double>(bytes);
  (void)cudaStreamDestroy(s);
}

/// Anchor: writing the permute's output bytes (T*k rows of H bf16) with cudaMemsetAsync: the
/// gather reads each token row once, so its traffic is mostly these writes.
void bm_write(benchmark::State& state, move_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  const std::size_t bytes = static_cast<std::size_t>(c.T) * c.k * c.H * 2;
  device_array<unsigned char> b(bytes);
  gem::bench::time_graph(state, s, reps_for(c), [&](int) { GEM_BENCH_CHECK(cudaMemsetAsync(b.p, 0, bytes, s)); });
  state.counters["bytes"] = static_cast<double>(bytes);
  (void)cudaStreamDestroy(s);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // >= 8K rows at hidden 2048..7168 (bandwidth), and T <= 128 (latency)
  const move_case cases[] = {{1024, 8, 64, 2048}, {1024, 8, 256, 7168}, {8192, 8, 128, 2048}, {8192, 8, 256, 7168},
                             {4096, 2, 8, 4096},  {1, 8, 256, 7168},    {16, 8, 256, 7168},   {128, 8, 256, 7168}};
  for (const auto& c : cases) {
    const std::string name = "rows/T=" + std::to_string(c.T) + "/k=" + std::to_string(c.k) + "/H=" + std::to_string(c.H);
    using bench_fn = void (*)(benchmark::State&, move_case);
    const std::pair<const char*, bench_fn> fns[] = {
        {"/gem_permute", &bm_permute}, {"/gem_combine", &bm_combine}, {"/anchor_copy", &bm_copy},
        {"/anchor_write", &bm_write}};
    for (const auto& [suffix, fn] : fns)
      benchmark::RegisterBenchmark((name + suffix).c_str(), fn, c)->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
