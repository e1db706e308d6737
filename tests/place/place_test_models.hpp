// Small speed models written inside the tests (independent of gem's own models): a linear model
// (seconds = tokens / speed) and a roofline-like one with a per-active-expert weight-read cost,
// plus helpers that build random placement problems.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "gem/place/problem.hpp"

namespace gem::test {

/// seconds = tokens / speed[g] (speed 1 for GPUs past the list).
struct linear_speed {
  std::vector<double> speed{};
  [[nodiscard]] double seconds(gpu_id g, work w) const {
    const double s = static_cast<std::size_t>(g.value) < speed.size() ? speed[g.value] : 1.0;
    return w.tokens() / s;
  }
};
static_assert(speed_model<linear_speed>);

/// Roofline-like: per GPU, max(flop time, byte time) where each active expert reads `read` units
/// of weights and each row costs `row` units of compute and `act` units of bytes; all / speed[g].
struct read_speed {
  std::vector<double> speed{};
  double read = 4.0, row = 0.02, act = 0.001;
  [[nodiscard]] double seconds(gpu_id g, work w) const {
    const double s = static_cast<std::size_t>(g.value) < speed.size() ? speed[g.value] : 1.0;
    const double t = w.tokens();
    return std::max(row * t, read * w.active_experts() + act * t) / s;
  }
};
static_assert(speed_model<read_speed>);

/// A random problem: `layers` layers of E experts with `steps` sampled steps each (Zipf-like skew
/// per layer, some experts zero in some steps), on G GPUs with `slots` slots each.
inline placement_problem random_problem(std::mt19937_64& rng, std::int32_t layers, std::int32_t E, std::int32_t G,
                                        std::int32_t slots, std::int32_t steps, std::int32_t nodes = 1) {
  placement_problem p{.cluster = cluster_spec::equal(G, slots, nodes), .num_experts = E};
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::int32_t l = 0; l < layers; ++l) {
    layer_loads ll;
    std::vector<double> base(static_cast<std::size_t>(E));
    for (auto& b : base) b = std::pow(u(rng) + 0.05, 3.0) * 100.0;
    ll.mean.assign(static_cast<std::size_t>(E), 0.0);
    for (std::int32_t s = 0; s < steps; ++s) {
      std::vector<double> row(static_cast<std::size_t>(E));
      for (std::int32_t e = 0; e < E; ++e) {
        row[e] = u(rng) < 0.15 ? 0.0 : std::floor(base[e] * (0.5 + u(rng)));
        ll.mean[e] += row[e] / steps;
      }
      ll.steps.push_back(std::move(row));
    }
    if (steps == 0)
      for (std::int32_t e = 0; e < E; ++e) ll.mean[e] = std::floor(base[e]);
    p.layers.push_back(std::move(ll));
  }
  return p;
}

}  // namespace gem::test
