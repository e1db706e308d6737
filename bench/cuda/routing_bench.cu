// Routing layout on the GPU: time per layout at T*k = 1K, 8K and 64K assignments, with and without a
// placement, beside a device-to-device copy of the ids (the least any launch over them costs).
// Timed as replays of a CUDA graph of 16 layouts (device time, no host launch cost).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_util.cuh"
#include "gem/cuda/routing.cuh"

namespace {

using gem::bench::device_array;
namespace gc = gem::cuda;

constexpr int reps = 16;  // back-to-back layouts per timed iteration

struct routing_case {
  std::int32_t T, k, E;
  bool placed;
};

void bm_layout(benchmark::State& state, routing_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  gc::routing_config cfg{.num_tokens = c.T, .top_k = c.k, .num_experts = c.E, .tile_rows = 1};
  device_array<unsigned char> pbuf;
  if (c.placed) {
    // 8 GPUs x (E/8 + 4) slots: every expert once, the first 32 twice, shares 0.5/0.5
    const std::int32_t G = 8, per = c.E / G + 4;
    std::vector<std::int32_t> phy2log;
    for (std::int32_t e = 0; e < c.E; ++e) phy2log.push_back(e);
    for (std::int32_t e = 0; e < G * per - c.E; ++e) phy2log.push_back(e);
    const auto plc = gem::placement::from_phy2log(gem::cluster_spec::equal(G, per), c.E, {phy2log});
    const auto tables = gc::make_placement_tables(plc, gem::layer_id{0});
    pbuf = device_array<unsigned char>(gc::placement_bytes(tables));
    GEM_BENCH_OK(gc::upload_placement(tables, pbuf.p, pbuf.n, &cfg.placement));
  }
  device_array<unsigned char> ws(gc::routing_workspace_size(cfg));
  gc::routing_layout layout;
  GEM_BENCH_OK(gc::bind_routing_layout(cfg, ws.p, ws.n, &layout));
  device_array<std::int32_t> ids(static_cast<std::size_t>(c.T) * c.k);
  ids.upload(gem::bench::random_topk(1, c.T, c.k, c.E));
  device_array<float> w(ids.n);
  GEM_BENCH_CHECK(cudaMemset(w.p, 0, w.n * sizeof(float)));
  gem::bench::time_graph(state, s, reps, [&](int) { GEM_BENCH_OK(gc::routing_layout_async(cfg, ids.p, w.p, layout, s)); });
  GEM_BENCH_OK(gc::check_routing(layout, s));
  state.counters["assignments"] = static_cast<double>(c.T) * c.k;
  (void)cudaStreamDestroy(s);
}

void bm_copy_ids(benchmark::State& state, routing_case c) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  device_array<std::int32_t> a(static_cast<std::size_t>(c.T) * c.k), b(a.n);
  GEM_BENCH_CHECK(cudaMemset(a.p, 1, a.n * 4));
  gem::bench::time_graph(state, s, reps, [&](int) {
    GEM_BENCH_CHECK(cudaMemcpyAsync(b.p, a.p, a.n * 4, cudaMemcpyDeviceToDevice, s));
  });
  state.counters["assignments"] = static_cast<double>(c.T) * c.k;
  (void)cudaStreamDestroy(s);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const routing_case cases[] = {{128, 8, 256, false}, {1024, 8, 256, false}, {8192, 8, 256, false},
                                {1024, 6, 64, false}, {1024, 8, 256, true},  {8192, 8, 256, true}};
  for (const auto& c : cases) {
    const std::string name = "routing/E=" + std::to_string(c.E) + "/k=" + std::to_string(c.k) + "/T=" +
                             std::to_string(c.T) + (c.placed ? "/placed" : "");
    benchmark::RegisterBenchmark((name + "/gem_layout").c_str(), bm_layout, c)->UseManualTime()->Unit(benchmark::kMicrosecond);
    if (!c.placed)
      benchmark::RegisterBenchmark((name + "/anchor_copy_ids").c_str(), bm_copy_ids, c)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
