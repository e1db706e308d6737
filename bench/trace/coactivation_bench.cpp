// Co-activation for one 64-expert layer of 8,192 tokens (top-6, steps of 256): token pair counts,
// the token-pair and step co-hotness scores, clustering, and grouped_load end to end (mean load +
// token-pair groups of the temporal experts), against an anchor that reads the same 49k expert ids
// once (summing them). Synthetic data (gem's default generator, one layer), so it needs no files;
// the ESFT variant uses the first 8,192 tokens of intent's layer 1 when ../shared is there.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "gem/io/esft.hpp"
#include "gem/load/coactivation.hpp"
#include "gem/trace/synthetic.hpp"

namespace {

const gem::routing_trace& layer_trace(int source) {
  static const gem::routing_trace synthetic =
      gem::generate_synthetic({.num_layers = 1, .num_steps = 32, .tokens_per_step = 256, .seed = 1}).trace;
  static const gem::routing_trace esft = [] {
    const auto dir = std::filesystem::path(GEM_SHARED_DIR) / "traces/esft-deepseek-v2-lite/results/expert_scores/intent";
    if (!std::filesystem::exists(dir)) return synthetic;
    auto tok = *gem::read_esft(dir, {.num_layers = 1}).trace.tokens();
    tok.num_tokens = 8192;
    tok.ids.resize(8192 * 6);
    tok.weights.resize(8192 * 6);
    return gem::batch_tokens(1, 64, std::move(tok), {.tokens_per_step = 256});
  }();
  return source == 0 ? synthetic : esft;
}

void ids_pass_anchor(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (auto id : t.tokens()->ids) sum += id;
    benchmark::DoNotOptimize(sum);
  }
}

void token_pair_counts(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(gem::token_pair_counts(t, gem::layer_id{0}).data());
}

void token_pair_scores(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(gem::token_pair_coactivation{}.scores(t, gem::layer_id{0}).score.data());
}

void step_cohot_scores(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(gem::step_cohot_coactivation{}.scores(t, gem::layer_id{0}).score.data());
}

void cluster_all_64(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  const auto m = gem::token_pair_coactivation{}.scores(t, gem::layer_id{0});
  for (auto _ : state) benchmark::DoNotOptimize(gem::cluster_groups(m, {.min_score = 0.5}).data());
}

void grouped_load_end_to_end(benchmark::State& state) {
  const auto& t = layer_trace(static_cast<int>(state.range(0)));
  const gem::grouped_load<gem::mean_load, gem::token_pair_coactivation> model{.clustering = {.min_score = 0.5},
                                                                              .temporal_only = true};
  for (auto _ : state) benchmark::DoNotOptimize(model.loads(t, gem::layer_id{0}).groups.data());
}

}  // namespace

// Argument: 0 = synthetic layer, 1 = ESFT intent layer 1 (first 8,192 tokens).
BENCHMARK(ids_pass_anchor)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(token_pair_counts)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(token_pair_scores)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(step_cohot_scores)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(cluster_all_64)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(grouped_load_end_to_end)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
