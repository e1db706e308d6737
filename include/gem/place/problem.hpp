// gem/place/problem.hpp — placement_problem (cluster, experts, per-layer loads) and the
// `placement_strategy` concept. Strategies live beside this file.
// Depends on gem/cluster.hpp, gem/placement.hpp, gem/load/load_model.hpp, gem/speed/speed_model.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/load/load_model.hpp"
#include "gem/placement.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// Everything a strategy places against: the cluster (GPUs, slots per GPU, nodes), the number of
/// logical experts, and per-layer loads. `num_groups` is EPLB's expert-group count for its
/// hierarchical policy (1 = no groups). Every layer's `mean`, steps and windows hold num_experts
/// finite, non-negative values; `windows_per_step` is >= 1 with windows and 0 without.
struct placement_problem {
  cluster_spec cluster{};
  std::int32_t num_experts = 0;
  std::vector<layer_loads> layers{};
  std::int32_t num_groups = 1;

  /// Throws config_error naming the field, layer and expert that is wrong.
  void validate() const {
    cluster.validate();
    if (num_experts <= 0) throw config_error("placement_problem.num_experts must be positive");
    if (layers.empty()) throw config_error("placement_problem.layers is empty");
    if (cluster.total_slots() < num_experts)
      throw config_error("placement_problem: " + std::to_string(cluster.total_slots()) +
                         " slots cannot hold " + std::to_string(num_experts) + " experts");
    if (num_groups <= 0 || num_experts % num_groups != 0)
      throw config_error("placement_problem.num_groups must be positive and divide num_experts");
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const auto check_row = [&](const std::vector<double>& row, const std::string& what) {
        if (row.size() != static_cast<std::size_t>(num_experts))
          throw config_error("placement_problem: layer " + std::to_string(l) + " " + what + " holds " +
                             std::to_string(row.size()) + " values, expected " + std::to_string(num_experts));
        for (std::size_t e = 0; e < row.size(); ++e)
          if (!(row[e] >= 0) || !std::isfinite(row[e]))
            throw config_error("placement_problem: layer " + std::to_string(l) + " " + what + " expert " +
                               std::to_string(e) + " has load " + std::to_string(row[e]) +
                               " (must be finite and non-negative)");
      };
      check_row(layers[l].mean, "mean");
      for (std::size_t s = 0; s < layers[l].steps.size(); ++s)
        check_row(layers[l].steps[s], "step " + std::to_string(s));
      for (std::size_t w = 0; w < layers[l].windows.size(); ++w)
        check_row(layers[l].windows[w], "window " + std::to_string(w));
      if (layers[l].windows.empty() ? layers[l].windows_per_step != 0 : layers[l].windows_per_step < 1)
        throw config_error("placement_problem: layer " + std::to_string(l) + " windows_per_step is " +
                           std::to_string(layers[l].windows_per_step) + " with " + std::to_string(layers[l].windows.size()) +
                           " windows (must be >= 1 with windows, 0 without)");
      for (const auto& g : layers[l].groups)
        for (auto e : g)
          if (e < 0 || e >= num_experts)
            throw config_error("placement_problem: layer " + std::to_string(l) + " group holds expert " +
                               std::to_string(e) + ", outside [0, " + std::to_string(num_experts) + ")");
    }
  }
};

/// A placement strategy: a small copyable value whose `place` is a pure function of the problem,
/// the speed model and its own configuration (seed included), returning a validated placement.
template <class S, class M>
concept placement_strategy = speed_model<M> && std::copy_constructible<S> &&
                             requires(const S& s, const placement_problem& p, const M& m) {
                               { s.place(p, m) } -> std::same_as<placement>;
                             };

}  // namespace gem
