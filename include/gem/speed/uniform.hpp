// gem/speed/uniform.hpp — `uniform`: every GPU is identical; a step costs a fixed time per active
// expert plus a time per token row. Depends on gem/speed/speed_model.hpp and gem/error.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "gem/error.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// Identical GPUs over a per-expert cost: a GPU's step time is
///   sum over its local experts e with rows_e > 0 of (seconds_per_active_expert + seconds_per_row * rows_e).
/// Additive because one GPU runs its experts' GEMMs one after another (or as one grouped launch
/// whose time grows with each expert's tiles); the fixed term stands for what an active expert
/// costs whatever its rows (reading its weights, a launch or tile-scheduling overhead). The default
/// (1 second per row, no fixed cost) makes seconds equal token rows: the model every
/// count-balancing placement (EPLB, vLLM, SGLang) assumes.
/// An aggregate: `uniform{.seconds_per_row = 2e-6, .seconds_per_active_expert = 3e-5}`.
struct uniform {
  double seconds_per_row = 1.0;
  double seconds_per_active_expert = 0.0;

  /// Throws config_error unless both costs are finite and non-negative.
  void validate() const {
    if (!std::isfinite(seconds_per_row) || seconds_per_row < 0)
      throw config_error("uniform.seconds_per_row must be finite and non-negative, got " +
                         std::to_string(seconds_per_row));
    if (!std::isfinite(seconds_per_active_expert) || seconds_per_active_expert < 0)
      throw config_error("uniform.seconds_per_active_expert must be finite and non-negative, got " +
                         std::to_string(seconds_per_active_expert));
  }

  /// Seconds any GPU takes for `w`: O(local experts), allocation-free.
  [[nodiscard]] double seconds(gpu_id /*gpu*/, const work& w) const noexcept {
    double rows = 0;
    double active = 0;
    for (const double r : w.rows) {
      rows += r;
      active += r > 0 ? 1.0 : 0.0;
    }
    return seconds_from_totals(gpu_id{0}, rows, active);
  }

  /// The same time from a GPU's totals: `rows` token rows over `active_experts` experts with rows
  /// > 0. O(1), for searches that keep per-GPU totals up to date as experts move.
  [[nodiscard]] double seconds_from_totals(gpu_id /*gpu*/, double rows, double active_experts) const noexcept {
    return rows * seconds_per_row + active_experts * seconds_per_active_expert;
  }
};
static_assert(speed_model<uniform>);

}  // namespace gem
