// gem/load/load_model.hpp — `layer_loads` (what strategies optimise against, for one layer) and the
// `load_model` concept that turns a routing_trace into them. Models live beside this file.
// Depends on gem/trace.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "gem/ids.hpp"
#include "gem/trace.hpp"

namespace gem {

/// Expected load of one layer.
/// - `mean[e]`: expected tokens of expert e per step (what EPLB balances; its `weight` row).
/// - `steps[s][e]`: sampled step loads (tokens per expert in step s) whose mean straggler latency a
///   strategy minimises; when empty, strategies use `mean` as the single step.
/// - `groups`: co-activation groups (expert ids) a strategy should keep apart (anti-affinity);
///   optional.
/// - `windows[w][e]`: optional, tokens of expert e in window w of the fitted tokens: the tokens of
///   the fitted step range cut, in trace order, into windows of equal length that may cross step
///   boundaries but never leave the range (empirical_load's `window_tokens` says how). Empty for a
///   count-only trace or when not asked for.
/// - `windows_per_step`: how many windows hold as many tokens as one fitted step (>= 1 when there
///   are windows, 0 otherwise). A synthetic step is the sum of `windows_per_step` windows drawn
///   with replacement: a block bootstrap of the fitted tokens, which keeps what contiguous tokens
///   share (one sequence's drift, experts routed together) and so spreads like a real step does
///   (gem_search::bootstrap_steps).
struct layer_loads {
  std::vector<double> mean{};
  std::vector<std::vector<double>> steps{};
  std::vector<std::vector<std::int32_t>> groups{};
  std::vector<std::vector<double>> windows{};
  std::int32_t windows_per_step = 0;
};

/// A load model turns a trace into the loads of one layer. A small copyable value; same trace and
/// layer give the same loads.
template <class M>
concept load_model = std::copy_constructible<M> && requires(const M& m, const routing_trace& t, layer_id l) {
  { m.loads(t, l) } -> std::same_as<layer_loads>;
};

}  // namespace gem
