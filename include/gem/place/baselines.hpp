// gem/place/baselines.hpp — vLLM's two static layouts as strategies: `linear` (contiguous blocks of
// experts per GPU) and `round_robin` (expert e on GPU e mod G). Both ignore loads and speeds.
// Depends on gem/place/problem.hpp and gem/place/detail/assemble.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "gem/place/detail/assemble.hpp"
#include "gem/place/problem.hpp"
#include "gem/placement.hpp"

namespace gem {

/// vLLM's `linear` layout: physical slot p (numbered GPU-major over the cluster's slots) holds
/// expert p mod E, so GPU g holds a contiguous block of experts; with more slots than experts the
/// extra slots repeat experts from 0 (vLLM's initial EPLB map). Every layer is the same.
struct linear {
  void validate() const {}

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& /*model*/) const {
    problem.validate();
    const auto& c = problem.cluster;
    std::vector<std::vector<std::int32_t>> gpus(static_cast<std::size_t>(c.num_gpus));
    std::int64_t p = 0;
    for (std::int32_t g = 0; g < c.num_gpus; ++g)
      for (std::int32_t k = 0; k < c.slots(gpu_id{g}); ++k, ++p)
        gpus[g].push_back(static_cast<std::int32_t>(p % problem.num_experts));
    std::vector<layer_placement> layers(problem.layers.size(), detail::layer_from_gpus(gpus));
    return placement(c, problem.num_experts, std::move(layers));
  }
};
static_assert(placement_strategy<linear, detail::speed_archetype>);

/// vLLM's `round_robin` layout: physical expert i (i = 0 .. total slots - 1, expert i mod E) goes
/// to GPU i mod G, or to the next GPU with a free slot when that one is full. With E = k G and k
/// slots per GPU, GPU g holds experts g, g + G, g + 2G, ... Every layer is the same.
struct round_robin {
  void validate() const {}

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& /*model*/) const {
    problem.validate();
    const auto& c = problem.cluster;
    const auto G = c.num_gpus;
    std::vector<std::vector<std::int32_t>> gpus(static_cast<std::size_t>(G));
    const auto total = c.total_slots();
    for (std::int64_t i = 0; i < total; ++i) {
      auto g = static_cast<std::int32_t>(i % G);
      while (static_cast<std::int32_t>(gpus[g].size()) >= c.slots(gpu_id{g})) g = (g + 1) % G;
      gpus[g].push_back(static_cast<std::int32_t>(i % problem.num_experts));
    }
    std::vector<layer_placement> layers(problem.layers.size(), detail::layer_from_gpus(gpus));
    return placement(c, problem.num_experts, std::move(layers));
  }
};
static_assert(placement_strategy<round_robin, detail::speed_archetype>);

}  // namespace gem
