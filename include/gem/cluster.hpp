// gem/cluster.hpp — cluster_spec: how many GPUs, how many expert slots each holds, and how GPUs
// group into nodes. Depends on gem/error.hpp and gem/ids.hpp.
#pragma once

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "gem/error.hpp"
#include "gem/ids.hpp"

namespace gem {

/// The GPUs a placement targets. An aggregate: `cluster_spec{.num_gpus = 8, .slots_per_gpu = {8}}`.
/// - `slots_per_gpu` holds one value (every GPU has that many slots) or one value per GPU.
/// - `num_nodes` groups GPUs into equal, contiguous nodes (GPU g is on node g / (num_gpus /
///   num_nodes)), as DeepSeek EPLB does; 1 means no node hierarchy.
/// Call `validate()` once after building one by hand; gem's constructors that take a cluster_spec call it.
struct cluster_spec {
  std::int32_t num_gpus = 0;
  std::vector<std::int32_t> slots_per_gpu{};
  std::int32_t num_nodes = 1;

  /// A cluster of `gpus` GPUs with `slots` slots each, in `nodes` equal nodes.
  [[nodiscard]] static cluster_spec equal(std::int32_t gpus, std::int32_t slots, std::int32_t nodes = 1) {
    cluster_spec c{.num_gpus = gpus, .slots_per_gpu = {slots}, .num_nodes = nodes};
    c.validate();
    return c;
  }

  /// Throws config_error naming the field that is wrong and why.
  void validate() const {
    if (num_gpus <= 0)
      throw config_error("cluster_spec.num_gpus must be positive, got " + std::to_string(num_gpus));
    if (slots_per_gpu.size() != 1 && slots_per_gpu.size() != static_cast<std::size_t>(num_gpus))
      throw config_error("cluster_spec.slots_per_gpu must hold 1 or num_gpus (" +
                         std::to_string(num_gpus) + ") values, got " +
                         std::to_string(slots_per_gpu.size()));
    for (std::size_t g = 0; g < slots_per_gpu.size(); ++g)
      if (slots_per_gpu[g] < 0)
        throw config_error("cluster_spec.slots_per_gpu[" + std::to_string(g) +
                           "] must be non-negative, got " + std::to_string(slots_per_gpu[g]));
    if (num_nodes <= 0 || num_gpus % num_nodes != 0)
      throw config_error("cluster_spec.num_nodes must be positive and divide num_gpus (" +
                         std::to_string(num_gpus) + "), got " + std::to_string(num_nodes));
    if (total_slots() <= 0) throw config_error("cluster_spec has no slots at all");
  }

  /// Slots on GPU `g`.
  [[nodiscard]] std::int32_t slots(gpu_id g) const {
    return slots_per_gpu.size() == 1 ? slots_per_gpu[0] : slots_per_gpu.at(static_cast<std::size_t>(g.value));
  }
  /// True when every GPU has the same number of slots.
  [[nodiscard]] bool equal_slots() const {
    for (auto s : slots_per_gpu)
      if (s != slots_per_gpu.front()) return false;
    return true;
  }
  /// Sum of slots over all GPUs.
  [[nodiscard]] std::int64_t total_slots() const {
    if (slots_per_gpu.size() == 1) return std::int64_t{slots_per_gpu[0]} * num_gpus;
    return std::accumulate(slots_per_gpu.begin(), slots_per_gpu.end(), std::int64_t{0});
  }
  /// GPUs per node.
  [[nodiscard]] std::int32_t gpus_per_node() const { return num_gpus / num_nodes; }
  /// Node of GPU `g`.
  [[nodiscard]] std::int32_t node_of(gpu_id g) const { return g.value / gpus_per_node(); }
};

}  // namespace gem
