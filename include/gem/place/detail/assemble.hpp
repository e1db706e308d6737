// gem/place/detail/assemble.hpp — builds placement layers from per-GPU lists of experts (and
// shares), numbering slots GPU-major (GPU 0's slots first, as EPLB's rank-major convention), and
// small helpers the strategies share. Depends on gem/placement.hpp and gem/place/problem.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gem/place/problem.hpp"
#include "gem/placement.hpp"

namespace gem::detail {

/// The least speed model (seconds = rows), used only to check strategies against the concept.
struct speed_archetype {
  [[nodiscard]] double seconds(gpu_id, work w) const { return w.tokens(); }
};
static_assert(speed_model<speed_archetype>);

/// A layer whose GPU g holds experts[g] (in order) with shares[g] (empty: even split).
inline layer_placement layer_from_gpus(const std::vector<std::vector<std::int32_t>>& experts,
                                       const std::vector<std::vector<double>>& shares = {}) {
  layer_placement lp;
  for (std::size_t g = 0; g < experts.size(); ++g)
    for (std::size_t k = 0; k < experts[g].size(); ++k) {
      lp.phy2log.push_back(experts[g][k]);
      lp.slot_gpu.push_back(static_cast<std::int32_t>(g));
      if (!shares.empty()) lp.share.push_back(shares[g][k]);
    }
  return lp;
}

/// The per-step loads a strategy optimises for one layer: `steps`, or `mean` as the single step.
inline const std::vector<std::vector<double>>& fitted_steps(const layer_loads& ll,
                                                            std::vector<std::vector<double>>& storage) {
  if (!ll.steps.empty()) return ll.steps;
  storage.assign(1, ll.mean);
  return storage;
}

}  // namespace gem::detail
