// gem/load/empirical_load.hpp — `empirical_load`: the per-step load distribution of a trace (every
// step of a range, or a seeded subsample of them for speed), a load_model. GEM optimises the mean
// straggler latency over these steps. Depends on gem/load/load_model.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
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
/// - `windows`, `windows_per_step` (when `window_tokens` > 0): with S steps and T tokens in the
///   range, windows_per_step = k = max(1, round(T / S / window_tokens)), and the range's tokens
///   are cut, in trace order from its first token, into k x S windows of floor(T / (k S)) tokens
///   each (about `window_tokens`, never more than a step's mean; the last T mod (k S) tokens are
///   dropped, so a synthetic step of k windows never holds a partial window and has the range's
///   mean tokens per step, up to that rounding). Windows may cross step boundaries (steps are
///   consecutive tokens too) but never the range's ends; all of them, not only `max_steps`'s
///   sample. Needs the trace's per-token routing: config_error on a count-only trace, since the
///   caller asked for what it cannot give (pass window_tokens = 0 there). A range with fewer tokens
///   than steps has no windows.
struct empirical_load {
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;
  std::int32_t max_steps = 0;  ///< 0 = every step of the range.
  std::uint64_t seed = 0;
  std::int32_t window_tokens = 0;  ///< tokens per window (about); 0 = no windows.

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

  /// Throws config_error when the layer or the step range is not in the trace, or an option is out
  /// of range.
  [[nodiscard]] layer_loads loads(const routing_trace& t, layer_id l) const {
    if (window_tokens < 0)
      throw config_error("empirical_load.window_tokens must be >= 0 (0 = no windows), got " + std::to_string(window_tokens));
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
    if (window_tokens > 0) fill_windows(t, l, s0, s1, out);
    return out;
  }

 private:
  void fill_windows(const routing_trace& t, layer_id l, std::int32_t s0, std::int32_t s1, layer_loads& out) const {
    if (!t.tokens())
      throw config_error("empirical_load.window_tokens is " + std::to_string(window_tokens) +
                         ", but the trace has no per-token routing (top-k ids) to cut into windows; use 0 for a count-only trace");
    const auto& tok = *t.tokens();
    const auto first = tok.step_offsets[static_cast<std::size_t>(s0)];
    const auto tokens = tok.step_offsets[static_cast<std::size_t>(s1)] - first;
    const auto steps = static_cast<std::int64_t>(s1 - s0);
    const auto k = std::max<std::int64_t>(1, std::llround(static_cast<double>(tokens) / static_cast<double>(steps) / window_tokens));
    const auto length = tokens / (k * steps);
    if (length == 0) return;
    const auto E = static_cast<std::size_t>(t.num_experts());
    const auto K = static_cast<std::size_t>(tok.top_k);
    const auto* ids = tok.ids.data() + static_cast<std::size_t>(l.value) * static_cast<std::size_t>(tok.num_tokens) * K;
    out.windows.assign(static_cast<std::size_t>(k * steps), std::vector<double>(E, 0.0));
    for (std::size_t w = 0; w < out.windows.size(); ++w)
      for (auto i = first + static_cast<std::int64_t>(w) * length; i < first + static_cast<std::int64_t>(w + 1) * length; ++i)
        for (std::size_t j = 0; j < K; ++j) out.windows[w][static_cast<std::size_t>(ids[static_cast<std::size_t>(i) * K + j])] += 1.0;
    out.windows_per_step = static_cast<std::int32_t>(k);
  }
};
static_assert(load_model<empirical_load>);

}  // namespace gem
