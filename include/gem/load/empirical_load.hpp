// gem/load/empirical_load.hpp — `empirical_load`: the per-step load distribution of a trace (every
// step of a range, or a seeded subsample of them for speed), a load_model. GEM optimises the mean
// straggler latency over these steps. Depends on gem/load/load_model.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/load/load_model.hpp"

namespace gem {

/// Empirical step distribution over steps [first_step, first_step + num_steps) (num_steps = 0: to
/// the last step).
/// - `steps`: the token counts of every step of the range, in trace order; when `max_steps` > 0 and
///   the range is longer, `max_steps` distinct steps drawn uniformly without replacement with
///   `seed` (kept in trace order). Same trace, options and seed give the same steps on any platform.
/// - `mean`: the mean over all steps of the range (not only the sampled ones), as mean_load gives.
struct empirical_load {
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;
  std::int32_t max_steps = 0;  ///< 0 = every step of the range.
  std::uint64_t seed = 0;

  /// The step indices (into the trace) that `loads` returns for a trace of `t`'s length.
  [[nodiscard]] std::vector<std::int32_t> selected_steps(const routing_trace& t) const {
    if (max_steps < 0) throw config_error("empirical_load.max_steps must be >= 0 (0 = every step)");
    const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "empirical_load");
    std::vector<std::int32_t> idx;
    for (std::int32_t s = s0; s < s1; ++s) idx.push_back(s);
    if (max_steps > 0 && static_cast<std::size_t>(max_steps) < idx.size()) {
      detail::trace_rng rng(seed);
      for (std::size_t i = 0; i < static_cast<std::size_t>(max_steps); ++i)  // partial Fisher-Yates
        std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
      idx.resize(static_cast<std::size_t>(max_steps));
      std::sort(idx.begin(), idx.end());
    }
    return idx;
  }

  /// Throws config_error when the layer or the step range is not in the trace.
  [[nodiscard]] layer_loads loads(const routing_trace& t, layer_id l) const {
    detail::check_layer(t, l, "empirical_load");
    const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "empirical_load");
    const auto E = static_cast<std::size_t>(t.num_experts());
    layer_loads out;
    out.mean.assign(E, 0.0);
    std::vector<std::int64_t> total(E, 0);
    for (std::int32_t s = s0; s < s1; ++s) {
      const auto row = t.step_counts(l, s);
      for (std::size_t e = 0; e < E; ++e) total[e] += row[e];
    }
    for (std::size_t e = 0; e < E; ++e) out.mean[e] = static_cast<double>(total[e]) / (s1 - s0);
    for (const auto s : selected_steps(t)) {
      const auto row = t.step_counts(l, s);
      out.steps.emplace_back(row.begin(), row.end());
    }
    return out;
  }
};
static_assert(load_model<empirical_load>);

}  // namespace gem
