// gem/load/mean_load.hpp — `mean_load`: the mean tokens per expert per step over a range of trace
// steps (what EPLB balances), a load_model. Depends on gem/load/load_model.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/load/load_model.hpp"

namespace gem {

/// Mean load per expert: `mean[e]` = tokens of expert e summed over steps [first_step,
/// first_step + num_steps) divided by the number of those steps (num_steps = 0: to the last step).
/// `steps` and `groups` stay empty, so strategies optimise the mean as a single step.
struct mean_load {
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;

  /// Throws config_error when the layer or the step range is not in the trace.
  [[nodiscard]] layer_loads loads(const routing_trace& t, layer_id l) const {
    detail::check_layer(t, l, "mean_load");
    const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "mean_load");
    layer_loads out;
    out.mean.assign(static_cast<std::size_t>(t.num_experts()), 0.0);
    std::vector<std::int64_t> total(static_cast<std::size_t>(t.num_experts()), 0);
    for (std::int32_t s = s0; s < s1; ++s) {
      const auto row = t.step_counts(l, s);
      for (std::size_t e = 0; e < row.size(); ++e) total[e] += row[e];
    }
    for (std::size_t e = 0; e < total.size(); ++e) out.mean[e] = static_cast<double>(total[e]) / (s1 - s0);
    return out;
  }
};
static_assert(load_model<mean_load>);

}  // namespace gem
