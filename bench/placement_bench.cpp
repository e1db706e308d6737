// Cost of building (and so validating) a placement and of deriving EPLB's log2phy, at DeepSeek-V3
// scale (58 layers, 256 experts, 288 slots on 32 GPUs) and smaller. Anchor: copying the same
// phy2log arrays, the least any consumer of the placement pays.
#include <benchmark/benchmark.h>

#include <random>

#include "gem/placement.hpp"

namespace {

std::vector<std::vector<std::int32_t>> random_phy2log(int layers, int experts, int slots, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<std::int32_t>> out(layers);
  for (auto& row : out) {
    for (int e = 0; e < experts; ++e) row.push_back(e);
    while (static_cast<int>(row.size()) < slots) row.push_back(std::uniform_int_distribution<int>(0, experts - 1)(rng));
    std::shuffle(row.begin(), row.end(), rng);
  }
  return out;
}

void copy_phy2log_anchor(benchmark::State& state) {
  const int layers = 58, experts = static_cast<int>(state.range(0)), gpus = static_cast<int>(state.range(1));
  const int slots = experts + gpus;
  const auto p2l = random_phy2log(layers, experts, slots, 1);
  for (auto _ : state) {
    auto copy = p2l;
    benchmark::DoNotOptimize(copy.data());
  }
}

void build_placement(benchmark::State& state) {
  const int layers = 58, experts = static_cast<int>(state.range(0)), gpus = static_cast<int>(state.range(1));
  const int slots = experts + gpus;
  const auto p2l = random_phy2log(layers, experts, slots, 1);
  const auto cluster = gem::cluster_spec::equal(gpus, slots / gpus);
  for (auto _ : state) {
    auto pl = gem::placement::from_phy2log(cluster, experts, p2l);
    benchmark::DoNotOptimize(pl.layers().data());
  }
}

void derive_log2phy(benchmark::State& state) {
  const int layers = 58, experts = static_cast<int>(state.range(0)), gpus = static_cast<int>(state.range(1));
  const int slots = experts + gpus;
  const auto pl = gem::placement::from_phy2log(gem::cluster_spec::equal(gpus, slots / gpus), experts,
                                               random_phy2log(layers, experts, slots, 1));
  for (auto _ : state)
    for (int l = 0; l < layers; ++l) benchmark::DoNotOptimize(pl.log2phy(gem::layer_id{l}).data());
}

}  // namespace

BENCHMARK(copy_phy2log_anchor)->Args({64, 8})->Args({256, 32})->Unit(benchmark::kMicrosecond);
BENCHMARK(build_placement)->Args({64, 8})->Args({256, 32})->Unit(benchmark::kMicrosecond);
BENCHMARK(derive_log2phy)->Args({64, 8})->Args({256, 32})->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
