// gem/load/classes.hpp — expert classes per layer (GEM): "consistent" experts are hot in nearly
// every step, "temporal" experts are hot in bursts (some steps, often together), "cold" experts are
// rarely or never hot; with a per-layer report (experts and share of the load per class).
// Depends on gem/trace.hpp.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/error.hpp"
#include "gem/trace.hpp"

namespace gem {

enum class expert_class : std::uint8_t { consistent = 0, temporal = 1, cold = 2 };

/// "consistent", "temporal" or "cold".
[[nodiscard]] constexpr std::string_view to_string(expert_class c) noexcept {
  return c == expert_class::consistent ? "consistent" : c == expert_class::temporal ? "temporal" : "cold";
}

/// Tunable thresholds. Expert e is HOT in step s when its tokens reach `hot_factor` times the
/// uniform share of that step: count(s, e) >= hot_factor * total(s) / num_experts. Its hot fraction
/// h_e is the share of steps (with at least one token) in which it is hot. Then
///   consistent: h_e >= consistent_min;   temporal: temporal_min <= h_e < consistent_min;
///   cold: h_e < temporal_min.
/// Defaults: hot at 1.5x the uniform share; consistent when hot in >= 75% of steps (an expert a
/// placement must treat as always loaded); temporal when hot in >= 10% of steps (bursts worth
/// spreading). With B = 256 tokens and top-6 of 64 experts, "hot" means >= 36 tokens in the step.
struct class_thresholds {
  double hot_factor = 1.5;
  double consistent_min = 0.75;
  double temporal_min = 0.10;

  void validate() const {
    if (!(hot_factor > 0) || !std::isfinite(hot_factor))
      throw config_error("class_thresholds.hot_factor must be positive and finite");
    if (!(consistent_min > 0 && consistent_min <= 1))
      throw config_error("class_thresholds.consistent_min must be in (0, 1]");
    if (!(temporal_min > 0 && temporal_min <= consistent_min))
      throw config_error("class_thresholds.temporal_min must be in (0, consistent_min]");
  }
};

/// Classes of one layer and the per-layer report.
struct layer_classes {
  std::vector<expert_class> of{};          ///< class of each expert.
  std::vector<double> hot_fraction{};      ///< h_e of each expert, in [0, 1].
  std::array<std::int32_t, 3> count{};     ///< experts per class, indexed by expert_class.
  std::array<double, 3> load_share{};      ///< share of the layer's tokens per class (sums to 1).

  /// Experts of class `c`, increasing.
  [[nodiscard]] std::vector<std::int32_t> members(expert_class c) const {
    std::vector<std::int32_t> out;
    for (std::size_t e = 0; e < of.size(); ++e)
      if (of[e] == c) out.push_back(static_cast<std::int32_t>(e));
    return out;
  }
};

/// Whether expert e is hot in step s of layer l: hot[s * E + e] (steps of [first, end)).
[[nodiscard]] inline std::vector<std::uint8_t> hot_steps(const routing_trace& t, layer_id l, double hot_factor,
                                                         std::int32_t first_step = 0, std::int32_t num_steps = 0) {
  detail::check_layer(t, l, "hot_steps");
  const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "hot_steps");
  const auto E = static_cast<std::size_t>(t.num_experts());
  std::vector<std::uint8_t> hot(static_cast<std::size_t>(s1 - s0) * E, 0);
  for (std::int32_t s = s0; s < s1; ++s) {
    const auto row = t.step_counts(l, s);
    std::int64_t total = 0;
    for (auto c : row) total += c;
    if (total == 0) continue;
    const double threshold = hot_factor * static_cast<double>(total) / static_cast<double>(E);
    for (std::size_t e = 0; e < E; ++e) hot[static_cast<std::size_t>(s - s0) * E + e] = static_cast<double>(row[e]) >= threshold;
  }
  return hot;
}

/// Classifies the experts of layer `l` over steps [first_step, first_step + num_steps) (0: to the
/// end). Throws config_error on bad thresholds, layer or range.
[[nodiscard]] inline layer_classes classify(const routing_trace& t, layer_id l, const class_thresholds& th = {},
                                            std::int32_t first_step = 0, std::int32_t num_steps = 0) {
  th.validate();
  const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "classify");
  const auto hot = hot_steps(t, l, th.hot_factor, first_step, num_steps);
  const auto E = static_cast<std::size_t>(t.num_experts());
  std::vector<std::int64_t> hot_count(E, 0), total(E, 0);
  std::int64_t live_steps = 0;
  for (std::int32_t s = s0; s < s1; ++s) {
    const auto row = t.step_counts(l, s);
    std::int64_t sum = 0;
    for (std::size_t e = 0; e < E; ++e) {
      total[e] += row[e];
      sum += row[e];
      hot_count[e] += hot[static_cast<std::size_t>(s - s0) * E + e];
    }
    live_steps += sum > 0;
  }
  layer_classes out;
  out.of.resize(E);
  out.hot_fraction.resize(E);
  std::int64_t all = 0;
  std::array<std::int64_t, 3> tokens{};
  for (std::size_t e = 0; e < E; ++e) {
    const double h = live_steps ? static_cast<double>(hot_count[e]) / static_cast<double>(live_steps) : 0.0;
    out.hot_fraction[e] = h;
    out.of[e] = h >= th.consistent_min ? expert_class::consistent
                : h >= th.temporal_min ? expert_class::temporal
                                       : expert_class::cold;
    const auto c = static_cast<std::size_t>(out.of[e]);
    ++out.count[c];
    tokens[c] += total[e];
    all += total[e];
  }
  for (std::size_t c = 0; c < 3; ++c) out.load_share[c] = all ? static_cast<double>(tokens[c]) / static_cast<double>(all) : 0.0;
  return out;
}

}  // namespace gem
