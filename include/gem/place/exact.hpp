// gem/place/exact.hpp — `exact`: branch and bound over every assignment of experts to GPUs for tiny
// instances, minimising the same objective as gem_search (mean straggler seconds over the steps).
// Ground truth for tests. Depends on gem/place/problem.hpp and gem/place/speed_proportional.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "gem/place/detail/assemble.hpp"
#include "gem/place/problem.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/placement.hpp"

namespace gem {

/// Optimal placement of each expert on exactly one GPU (no replicas), per layer, for the mean over
/// `layer_loads::steps` (or `mean`) of the straggler's seconds. engine_compatible: GPU g holds at
/// most the cluster's slots(g) experts; extended: any count (the returned cluster gives each GPU
/// the most it holds in any layer). Branch and bound: experts heaviest first; a partial assignment's
/// cost (every step's straggler so far) is a lower bound for a monotone speed model (adding rows
/// never makes a GPU faster). Throws config_error above `max_experts` experts or when a layer needs
/// more than `max_nodes` search nodes.
struct exact {
  slot_mode mode = slot_mode::engine_compatible;
  std::int32_t max_experts = 12;
  std::int64_t max_nodes = 50'000'000;

  void validate() const {
    if (mode != slot_mode::engine_compatible && mode != slot_mode::extended)
      throw config_error("exact.mode is not a slot_mode value");
    if (max_experts <= 0) throw config_error("exact.max_experts must be positive");
    if (max_nodes <= 0) throw config_error("exact.max_nodes must be positive");
  }

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& model) const {
    validate();
    problem.validate();
    const auto& c = problem.cluster;
    const auto G = c.num_gpus;
    const auto E = problem.num_experts;
    if (E > max_experts)
      throw config_error("exact: " + std::to_string(E) + " experts is above exact.max_experts = " +
                         std::to_string(max_experts) + " (the search is exponential)");
    std::vector<std::int32_t> caps(static_cast<std::size_t>(G));
    for (std::int32_t g = 0; g < G; ++g) caps[g] = mode == slot_mode::extended ? E : c.slots(gpu_id{g});
    std::vector<layer_placement> layers;
    std::vector<std::int32_t> used(static_cast<std::size_t>(G), 0);
    for (std::size_t l = 0; l < problem.layers.size(); ++l) {
      std::vector<std::vector<double>> storage;
      const auto& steps = detail::fitted_steps(problem.layers[l], storage);
      auto gpus = solve_layer(model, G, E, steps, caps, problem.layers[l].mean, l);
      for (std::int32_t g = 0; g < G; ++g) used[g] = std::max(used[g], static_cast<std::int32_t>(gpus[g].size()));
      layers.push_back(detail::layer_from_gpus(gpus));
    }
    cluster_spec out = c;
    if (mode == slot_mode::extended) out.slots_per_gpu = used;
    return placement(std::move(out), E, std::move(layers));
  }

 private:
  template <speed_model M>
  std::vector<std::vector<std::int32_t>> solve_layer(const M& model, std::int32_t G, std::int32_t E,
                                                     const std::vector<std::vector<double>>& steps,
                                                     const std::vector<std::int32_t>& caps,
                                                     const std::vector<double>& mean, std::size_t l) const {
    const auto S = steps.size();
    std::vector<std::int32_t> order(static_cast<std::size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return mean[a] > mean[b]; });
    std::vector<std::vector<std::int32_t>> gpus(static_cast<std::size_t>(G)), best;
    std::vector<double> T(S * static_cast<std::size_t>(G), 0.0);  // [S][G] seconds of the partial assignment
    double best_cost = std::numeric_limits<double>::infinity();
    std::int64_t nodes = 0;
    std::vector<double> rows;
    const auto gpu_time = [&](std::int32_t g, std::size_t s) {
      rows.clear();
      for (auto e : gpus[g]) rows.push_back(steps[s][e]);
      return rows.empty() ? 0.0 : static_cast<double>(model.seconds(gpu_id{g}, work{rows}));
    };
    const auto cost = [&] {
      double sum = 0;
      for (std::size_t s = 0; s < S; ++s) sum += *std::max_element(T.begin() + static_cast<std::ptrdiff_t>(s * G),
                                                                    T.begin() + static_cast<std::ptrdiff_t>((s + 1) * G));
      return sum;
    };
    const auto dfs = [&](auto&& self, std::int32_t k) -> void {
      if (++nodes > max_nodes)
        throw config_error("exact: layer " + std::to_string(l) + " needs more than exact.max_nodes = " +
                           std::to_string(max_nodes) + " search nodes");
      if (k == E) {
        const double cst = cost();
        if (cst < best_cost) best_cost = cst, best = gpus;
        return;
      }
      const auto e = order[k];
      // Children: every GPU with room, cheapest partial cost first (finds good incumbents early).
      std::vector<std::pair<double, std::int32_t>> child;
      std::vector<double> saved(S);
      for (std::int32_t g = 0; g < G; ++g) {
        if (static_cast<std::int32_t>(gpus[g].size()) >= caps[g]) continue;
        gpus[g].push_back(e);
        for (std::size_t s = 0; s < S; ++s) saved[s] = T[s * G + g], T[s * G + g] = gpu_time(g, s);
        child.emplace_back(cost(), g);
        for (std::size_t s = 0; s < S; ++s) T[s * G + g] = saved[s];
        gpus[g].pop_back();
      }
      std::stable_sort(child.begin(), child.end());
      for (const auto& [bound, g] : child) {
        if (bound >= best_cost) break;
        gpus[g].push_back(e);
        for (std::size_t s = 0; s < S; ++s) saved[s] = T[s * G + g], T[s * G + g] = gpu_time(g, s);
        const auto keep = saved;
        self(self, k + 1);
        for (std::size_t s = 0; s < S; ++s) T[s * G + g] = keep[s];
        gpus[g].pop_back();
      }
    };
    dfs(dfs, 0);
    if (best.empty()) throw config_error("exact: layer " + std::to_string(l) + ": the slots cannot hold every expert");
    return best;
  }
};
static_assert(placement_strategy<exact, detail::speed_archetype>);

}  // namespace gem
