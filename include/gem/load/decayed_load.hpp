// gem/load/decayed_load.hpp — exponentially decayed load for online use: `decayed_load` (a
// load_model over a trace's steps) and `decayed_load_tracker` (the same estimate updated one step at
// a time, as an engine observes its batches). Depends on gem/load/load_model.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/load/load_model.hpp"

namespace gem {

/// Online estimate of the load per expert: after steps x_0 .. x_n,
///   mean[e] = sum_s d^(n-s) x_s[e] / sum_s d^(n-s),  d = 0.5^(1 / half_life_steps),
/// i.e. a weighted mean in which a step `half_life_steps` old counts half as much as the newest.
/// Units: tokens per step. Exact for any number of steps (no start-up bias: the weights are
/// normalised).
class decayed_load_tracker {
 public:
  /// Throws config_error when num_experts <= 0 or half_life_steps is not positive and finite.
  decayed_load_tracker(std::int32_t num_experts, double half_life_steps)
      : decay_(factor(half_life_steps)), sum_(static_cast<std::size_t>(check_experts(num_experts)), 0.0) {}

  /// Adds one step's token counts (one per expert).
  void observe(std::span<const std::int64_t> step_counts) {
    if (step_counts.size() != sum_.size())
      throw config_error("decayed_load_tracker: a step holds " + std::to_string(step_counts.size()) +
                         " counts, expected one per expert (" + std::to_string(sum_.size()) + ")");
    for (std::size_t e = 0; e < sum_.size(); ++e) sum_[e] = decay_ * sum_[e] + static_cast<double>(step_counts[e]);
    weight_ = decay_ * weight_ + 1.0;
    ++steps_;
  }

  /// Steps observed so far.
  [[nodiscard]] std::int64_t steps() const noexcept { return steps_; }
  /// The decayed mean tokens per expert per step (zeros before any step).
  [[nodiscard]] std::vector<double> mean() const {
    std::vector<double> m(sum_.size(), 0.0);
    if (weight_ > 0)
      for (std::size_t e = 0; e < m.size(); ++e) m[e] = sum_[e] / weight_;
    return m;
  }
  /// `mean()` as layer_loads (no steps, no groups).
  [[nodiscard]] layer_loads loads() const { return layer_loads{.mean = mean()}; }

  /// The per-step decay factor d for a half life in steps.
  static double factor(double half_life_steps) {
    if (!(half_life_steps > 0) || !std::isfinite(half_life_steps))
      throw config_error("half_life_steps must be positive and finite, got " + std::to_string(half_life_steps));
    return std::pow(0.5, 1.0 / half_life_steps);
  }

 private:
  static std::int32_t check_experts(std::int32_t n) {
    if (n <= 0) throw config_error("decayed_load_tracker: num_experts must be positive");
    return n;
  }
  double decay_;
  std::vector<double> sum_;
  double weight_ = 0.0;
  std::int64_t steps_ = 0;
};

/// The decayed load after observing steps [first_step, first_step + num_steps) of the trace in
/// order (num_steps = 0: to the last step): what decayed_load_tracker holds at the end of that range.
/// With `recent_steps` > 0, `steps` also holds the last `recent_steps` step loads of the range (the
/// recent history an online strategy may sample); otherwise it stays empty.
struct decayed_load {
  double half_life_steps = 16.0;
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;
  std::int32_t recent_steps = 0;

  [[nodiscard]] layer_loads loads(const routing_trace& t, layer_id l) const {
    detail::check_layer(t, l, "decayed_load");
    if (recent_steps < 0) throw config_error("decayed_load.recent_steps must be >= 0");
    const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "decayed_load");
    decayed_load_tracker tracker(t.num_experts(), half_life_steps);
    for (std::int32_t s = s0; s < s1; ++s) tracker.observe(t.step_counts(l, s));
    auto out = tracker.loads();
    for (std::int32_t s = std::max(s0, s1 - recent_steps); s < s1; ++s) {
      const auto row = t.step_counts(l, s);
      out.steps.emplace_back(row.begin(), row.end());
    }
    return out;
  }
};
static_assert(load_model<decayed_load>);

}  // namespace gem
