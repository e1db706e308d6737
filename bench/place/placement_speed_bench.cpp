// How fast the strategies place, one core. Families and their anchors (read ratios from one run):
// - eplb on the dsv3_ep32_hier reference vector (58 layers, 256 experts -> 288 slots on 32 GPUs,
//   8 groups, 4 nodes; DeepSeek's PyTorch code takes 747 ms on a 2-thread Xeon). Anchor: sorting
//   every layer's weights once (the least any load balancer does).
// - gem_search on a DeepSeek-V3-scale problem (58 layers, 256 experts, 288 slots on 32 GPUs, 256
//   sampled steps of 4096 tokens x top-8, Zipf(0.8) expert popularity, H200 roofline for the
//   DeepSeek-V3 expert shape, "high" variability). Anchor: eplb on the same problem.
// - gem_search per layer against experts, GPUs and steps (default configuration).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <optional>
#include <random>

#include "gem/eval/evaluator.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/variability.hpp"

#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define GEM_BENCH_HAS_JSON 1
#endif

namespace {

using model_t = gem::scaled<gem::roofline>;

/// Sampled steps of `tokens` tokens x top_k with Zipf(s) popularity over a shuffled expert order.
gem::placement_problem synthetic_problem(int layers, int experts, int gpus, int slots_per_gpu, int steps, int tokens,
                                         int top_k, unsigned seed) {
  std::mt19937_64 rng(seed);
  gem::placement_problem p{.cluster = gem::cluster_spec::equal(gpus, slots_per_gpu), .num_experts = experts};
  for (int l = 0; l < layers; ++l) {
    std::vector<double> pop(static_cast<std::size_t>(experts));
    for (int e = 0; e < experts; ++e) pop[e] = 1.0 / std::pow(e + 1.0, 0.8);
    std::shuffle(pop.begin(), pop.end(), rng);
    double total = 0;
    for (double x : pop) total += x;
    gem::layer_loads ll;
    ll.mean.assign(static_cast<std::size_t>(experts), 0.0);
    for (int s = 0; s < steps; ++s) {
      std::vector<double> row(static_cast<std::size_t>(experts));
      for (int e = 0; e < experts; ++e) {
        std::poisson_distribution<int> d(static_cast<double>(tokens) * top_k * pop[e] / total);
        row[e] = d(rng);
        ll.mean[e] += row[e] / steps;
      }
      ll.steps.push_back(std::move(row));
    }
    p.layers.push_back(std::move(ll));
  }
  return p;
}

model_t dsv3_model(int gpus) {
  return model_t(gem::h200_roofline(gem::shapes::deepseek_v3, gpus), gem::variability::high(gpus));
}

const gem::placement_problem& dsv3_problem() {
  static const auto p = synthetic_problem(58, 256, 32, 9, 256, 4096, 8, 1);
  return p;
}

struct eplb_case {
  std::vector<std::vector<double>> weight;
  int replicas = 288, groups = 8, nodes = 4, gpus = 32;
  bool reference = false;  ///< the reference vector's weights (else synthetic ones of its shape)
};
/// The weights of eplb-vectors/dsv3_ep32_hier.json, or (without the shared data) Zipf(0.8) loads of
/// the same shape: 58 layers x 256 experts, distinct values.
const eplb_case& dsv3_vector() {
  static const eplb_case c = [] {
    eplb_case out;
#ifdef GEM_BENCH_HAS_JSON
    if (std::ifstream in(std::string(GEM_SHARED_DIR) + "/eplb-vectors/dsv3_ep32_hier.json"); in) {
      const auto j = nlohmann::json::parse(in);
      out.weight = j.at("weight").get<std::vector<std::vector<double>>>();
      out.replicas = j.at("num_replicas").get<int>(), out.groups = j.at("num_groups").get<int>();
      out.nodes = j.at("num_nodes").get<int>(), out.gpus = j.at("num_gpus").get<int>();
      out.reference = true;
      return out;
    }
#endif
    const auto p = synthetic_problem(58, 256, 32, 9, 1, 4096, 8, 7);
    for (const auto& ll : p.layers) {
      out.weight.push_back(ll.steps[0]);
      for (std::size_t e = 0; e < out.weight.back().size(); ++e) out.weight.back()[e] += 1e-4 * static_cast<double>(e);
    }
    return out;
  }();
  return c;
}

void sort_weights_anchor(benchmark::State& state) {
  const auto* c = &dsv3_vector();
  state.SetLabel(c->reference ? "reference weights" : "synthetic weights");
  for (auto _ : state) {
    for (const auto& row : c->weight) {
      std::vector<float> w(row.begin(), row.end());
      std::sort(w.begin(), w.end(), std::greater<>());
      benchmark::DoNotOptimize(w.data());
    }
  }
}

void eplb_dsv3_ep32_hier(benchmark::State& state) {
  const auto* c = &dsv3_vector();
  state.SetLabel(c->reference ? "reference weights" : "synthetic weights");
  for (auto _ : state) {
    auto r = gem::rebalance_experts(c->weight, c->replicas, c->groups, c->nodes, c->gpus);
    benchmark::DoNotOptimize(r.phy2log.data());
  }
}
BENCHMARK(sort_weights_anchor)->Unit(benchmark::kMillisecond);
BENCHMARK(eplb_dsv3_ep32_hier)->Unit(benchmark::kMillisecond);

void eplb_dsv3_synthetic_anchor(benchmark::State& state) {
  const auto& p = dsv3_problem();
  const auto m = dsv3_model(32);
  for (auto _ : state) benchmark::DoNotOptimize(gem::eplb{}.place(p, m).layers().data());
}

/// range(0): 0 = default configuration; 1 = gem_search::online(); 2 = online() with the 64 sampled
/// steps it used before 2026-11-29 session 3 (the code's speed-up alone, without the preset change).
void gem_dsv3(benchmark::State& state) {
  const auto& p = dsv3_problem();
  const auto m = dsv3_model(32);
  auto cfg = state.range(0) == 0 ? gem::gem_search{} : gem::gem_search::online();
  if (state.range(0) == 2) cfg.max_steps = 64;
  gem::placement last;
  for (auto _ : state) {
    last = cfg.place(p, m);
    benchmark::DoNotOptimize(last.layers().data());
  }
  // Quality on the steps it fitted: mean straggler (summed over layers) relative to eplb's.
  std::vector<std::vector<std::vector<double>>> steps;
  for (const auto& ll : p.layers) steps.push_back(ll.steps);
  state.counters["vs_eplb"] = gem::evaluate(last, steps, m).summary.mean / gem::evaluate(gem::eplb{}.place(p, m), steps, m).summary.mean;
}
BENCHMARK(eplb_dsv3_synthetic_anchor)->Unit(benchmark::kMillisecond);
BENCHMARK(gem_dsv3)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(3);

/// One layer: args experts, GPUs, steps (slots = experts / GPUs + 1 each).
void gem_layer_scaling(benchmark::State& state) {
  const int E = static_cast<int>(state.range(0)), G = static_cast<int>(state.range(1)), S = static_cast<int>(state.range(2));
  const auto p = synthetic_problem(1, E, G, E / G + 1, S, 4096, 8, 2);
  const auto m = dsv3_model(G);
  for (auto _ : state) benchmark::DoNotOptimize(gem::gem_search{}.place(p, m).layers().data());
}
void eplb_layer_scaling_anchor(benchmark::State& state) {
  const int E = static_cast<int>(state.range(0)), G = static_cast<int>(state.range(1)), S = static_cast<int>(state.range(2));
  const auto p = synthetic_problem(1, E, G, E / G + 1, S, 4096, 8, 2);
  const auto m = dsv3_model(G);
  for (auto _ : state) benchmark::DoNotOptimize(gem::eplb{}.place(p, m).layers().data());
}
void scaling_args(benchmark::internal::Benchmark* b) {
  for (int E : {64, 128, 256}) b->Args({E, 8, 64});
  for (int G : {4, 16, 32, 64}) b->Args({256, G, 64});
  for (int S : {16, 256}) b->Args({256, 32, S});
}
BENCHMARK(eplb_layer_scaling_anchor)->Apply(scaling_args)->Unit(benchmark::kMillisecond);
BENCHMARK(gem_layer_scaling)->Apply(scaling_args)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
