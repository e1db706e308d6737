// Cost of one `seconds(gpu, work)` call of each speed model (what the placement search calls
// millions of times), against the anchor of merely summing the work's rows (work::tokens), for
// 2-64 local experts per GPU. Also the straggler of a step over 8-64 GPUs.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/straggler.hpp"
#include "gem/speed/table.hpp"
#include "gem/speed/uniform.hpp"
#include "gem/speed/variability.hpp"

namespace {

constexpr int num_gpus = 8;
constexpr std::size_t num_works = 1024;

// num_works random per-GPU works of `local` experts (decode-like loads, a quarter idle).
struct works {
  std::vector<std::vector<double>> rows;
  std::vector<gem::work> w;
  explicit works(std::int64_t local) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(local));
    rows.resize(num_works);
    for (auto& r : rows) {
      r.resize(static_cast<std::size_t>(local));
      for (auto& x : r) x = rng() % 4 == 0 ? 0.0 : static_cast<double>(rng() % 600);
    }
    for (const auto& r : rows) w.push_back(gem::work{r});
  }
};

gem::table_gpu h200_points(double slow) {
  gem::table_gpu t{.rows = {1}, .seconds = {2e-6 * slow}, .seconds_per_active_expert = 8e-5 * slow};
  for (int k = 1; k <= 32; ++k) {  // tile boundaries 128, 256, ..., 4096
    t.rows.push_back(128.0 * k);
    t.seconds.push_back((2e-6 + 3e-6 * k) * slow);
  }
  return t;
}

gem::table make_table(bool regular) {
  std::vector<gem::table_gpu> gpus;
  for (int g = 0; g < num_gpus; ++g) {
    auto t = h200_points(1.0 + 0.01 * g);
    if (!regular) t.rows[5] += 0.5;  // off the grid: binary search
    gpus.push_back(t);
  }
  return gem::table(gpus);
}

template <class Model>
void run(benchmark::State& state, const Model& m) {
  const works ws(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& w = ws.w[i % num_works];
    benchmark::DoNotOptimize(m.seconds(gem::gpu_id{static_cast<std::int32_t>(i % num_gpus)}, w));
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// Anchor: summing the rows, the least any model must read.
void anchor_sum_rows(benchmark::State& state) {
  const works ws(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ws.w[i % num_works].tokens());
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void uniform_seconds(benchmark::State& s) { run(s, gem::uniform{.seconds_per_row = 1e-6, .seconds_per_active_expert = 1e-5}); }
void scaled_uniform_seconds(benchmark::State& s) {
  run(s, gem::scale(gem::uniform{.seconds_per_row = 1e-6, .seconds_per_active_expert = 1e-5}, gem::variability::low(num_gpus)));
}
void roofline_seconds(benchmark::State& s) { run(s, gem::h200_roofline(gem::shapes::deepseek_v3, num_gpus)); }
void scaled_roofline_seconds(benchmark::State& s) {
  run(s, gem::scale(gem::h200_roofline(gem::shapes::deepseek_v3, num_gpus), gem::variability::high(num_gpus)));
}
void table_regular_seconds(benchmark::State& s) { run(s, make_table(true)); }
void table_irregular_seconds(benchmark::State& s) { run(s, make_table(false)); }
void table_tile_ceiling_seconds(benchmark::State& s) {
  std::vector<gem::table_gpu> gpus(num_gpus, h200_points(1.0));
  run(s, gem::table(gpus, gem::table_interpolation::tile_ceiling));
}
void scaled_table_seconds(benchmark::State& s) { run(s, gem::scale(make_table(true), gem::variability::low(num_gpus))); }

// Straggler of one step: G GPUs of 8 local experts each.
void straggler_anchor_sum_rows(benchmark::State& state) {
  const auto G = static_cast<std::size_t>(state.range(0));
  const works ws(8);
  std::size_t i = 0;
  for (auto _ : state) {
    double worst = 0;
    for (std::size_t g = 0; g < G; ++g) worst = std::max(worst, ws.w[(i + g) % num_works].tokens());
    benchmark::DoNotOptimize(worst);
    i += G;
  }
}
void straggler_roofline(benchmark::State& state) {
  const auto G = static_cast<std::int32_t>(state.range(0));
  const auto m = gem::scale(gem::h200_roofline(gem::shapes::deepseek_v3, G), gem::variability::low(G));
  const works ws(8);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto first = (i * static_cast<std::size_t>(G)) % (num_works - static_cast<std::size_t>(G));
    benchmark::DoNotOptimize(gem::step_straggler_seconds(m, std::span<const gem::work>(ws.w).subspan(first, static_cast<std::size_t>(G))));
    ++i;
  }
}

}  // namespace

BENCHMARK(anchor_sum_rows)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(uniform_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(scaled_uniform_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(roofline_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(scaled_roofline_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(table_regular_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(table_irregular_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(table_tile_ceiling_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(scaled_table_seconds)->RangeMultiplier(4)->Range(2, 64);
BENCHMARK(straggler_anchor_sum_rows)->Arg(8)->Arg(64);
BENCHMARK(straggler_roofline)->Arg(8)->Arg(64);

BENCHMARK_MAIN();
