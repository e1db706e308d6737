// gem/trace/batching.hpp — turns per-token routing into lock-step steps of B consecutive tokens
// (DESIGN §5: B in {64, 256, 1024, 4096}), with an explicit rule for a partial last step; and
// slices of steps (fit on one part of a trace, evaluate on another).
// Depends on gem/trace.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gem/error.hpp"
#include "gem/trace.hpp"

namespace gem {

/// What happens to the last step when the token count is not a multiple of `tokens_per_step`.
enum class partial_step {
  keep,    ///< the last step holds the remaining (fewer than B) tokens; every assignment is kept.
  drop,    ///< the remaining tokens are removed from the trace (tokens and counts); all steps hold B.
  reject,  ///< a partial last step is an error (config_error naming both numbers).
};

/// How tokens become steps: step s holds tokens [s*B, (s+1)*B) in source order. Tokens are taken
/// in the order the source lists them, so a step may span several sequences (ESFT lines are whole
/// sequences, an engine batches tokens of many sequences together).
struct batching {
  std::int64_t tokens_per_step = 256;              ///< B, must be positive.
  partial_step last_step = partial_step::keep;     ///< rule for a partial last step.

  /// Throws config_error naming the field when a value is out of range.
  void validate() const {
    if (tokens_per_step <= 0)
      throw config_error("batching.tokens_per_step must be positive, got " + std::to_string(tokens_per_step));
    if (last_step != partial_step::keep && last_step != partial_step::drop && last_step != partial_step::reject)
      throw config_error("batching.last_step is not a partial_step value");
  }
};

/// The step offsets (num_steps + 1 values, first 0) that `b` gives `num_tokens` tokens. With
/// `drop` the last offset is the number of tokens kept (a multiple of B), which may be below
/// `num_tokens`. Zero tokens give zero steps.
[[nodiscard]] inline std::vector<std::int64_t> batch_offsets(std::int64_t num_tokens, const batching& b) {
  b.validate();
  if (num_tokens < 0) throw config_error("batch_offsets: num_tokens must be non-negative");
  const auto full = num_tokens / b.tokens_per_step;
  const auto rest = num_tokens % b.tokens_per_step;
  if (rest != 0 && b.last_step == partial_step::reject)
    throw config_error("batching: " + std::to_string(num_tokens) + " tokens is not a multiple of tokens_per_step = " +
                       std::to_string(b.tokens_per_step) + " (last_step = reject; " + std::to_string(rest) +
                       " tokens left over)");
  std::vector<std::int64_t> off;
  off.reserve(static_cast<std::size_t>(full) + 2);
  for (std::int64_t s = 0; s <= full; ++s) off.push_back(s * b.tokens_per_step);
  if (rest != 0 && b.last_step == partial_step::keep) off.push_back(num_tokens);
  return off;
}

/// Builds a trace whose steps are B consecutive tokens of `tokens` (its `step_offsets` are
/// ignored and replaced). With `keep` every assignment is preserved: the trace holds exactly
/// num_tokens x top_k assignments per layer. With `drop` the trailing partial step's tokens are
/// removed from `ids`/`weights` as well, so counts and token routing stay consistent.
/// Throws config_error when the routing is malformed (ids out of range, duplicates, sizes).
[[nodiscard]] inline routing_trace batch_tokens(std::int32_t num_layers, std::int32_t num_experts, token_routing tokens,
                                                const batching& b) {
  auto off = batch_offsets(tokens.num_tokens, b);
  const auto kept = off.back();
  if (kept != tokens.num_tokens) {
    if (num_layers <= 0 || tokens.top_k <= 0)
      throw config_error("batch_tokens: num_layers and top_k must be positive");
    const auto k = static_cast<std::size_t>(tokens.top_k);
    const auto old_n = static_cast<std::size_t>(tokens.num_tokens);
    const auto new_n = static_cast<std::size_t>(kept);
    if (tokens.ids.size() != static_cast<std::size_t>(num_layers) * old_n * k)
      throw config_error("batch_tokens: token_routing.ids holds " + std::to_string(tokens.ids.size()) +
                         " values, expected layers x tokens x top_k");
    const bool has_w = !tokens.weights.empty();
    if (has_w && tokens.weights.size() != tokens.ids.size())
      throw config_error("batch_tokens: token_routing.weights and ids differ in size");
    for (std::size_t l = 1; l < static_cast<std::size_t>(num_layers); ++l) {  // layer 0 stays in place
      std::copy_n(tokens.ids.begin() + static_cast<std::ptrdiff_t>(l * old_n * k), new_n * k,
                  tokens.ids.begin() + static_cast<std::ptrdiff_t>(l * new_n * k));
      if (has_w)
        std::copy_n(tokens.weights.begin() + static_cast<std::ptrdiff_t>(l * old_n * k), new_n * k,
                    tokens.weights.begin() + static_cast<std::ptrdiff_t>(l * new_n * k));
    }
    tokens.ids.resize(static_cast<std::size_t>(num_layers) * new_n * k);
    if (has_w) tokens.weights.resize(tokens.ids.size());
    tokens.num_tokens = kept;
  }
  tokens.step_offsets = std::move(off);
  return routing_trace::from_tokens(num_layers, num_experts, std::move(tokens));
}

/// `trace` with its token routing re-cut into steps by `b`. Throws config_error when the trace
/// carries no token routing (counts alone cannot be re-batched).
[[nodiscard]] inline routing_trace rebatch(const routing_trace& trace, const batching& b) {
  if (!trace.tokens())
    throw config_error("rebatch: the trace has no per-token routing (only counts), so its steps cannot be re-cut");
  return batch_tokens(trace.num_layers(), trace.num_experts(), *trace.tokens(), b);
}

/// Steps [first_step, first_step + num_steps) of `t` as a trace of their own (num_steps = 0: to the
/// last step), token routing included (its tokens re-based to start at 0). Use it to fit on one part
/// of a trace and evaluate on another without anything of the held-out steps leaking into the fit.
/// Throws config_error when the range is not within the trace.
[[nodiscard]] inline routing_trace slice_steps(const routing_trace& t, std::int32_t first_step, std::int32_t num_steps = 0) {
  if (first_step < 0 || num_steps < 0 || first_step > t.num_steps())
    throw config_error("slice_steps: first_step and num_steps must be >= 0 and first_step <= num_steps of the trace");
  const std::int32_t end = num_steps == 0 ? t.num_steps() : first_step + num_steps;
  if (end > t.num_steps())
    throw config_error("slice_steps: steps [" + std::to_string(first_step) + ", " + std::to_string(end) +
                       ") are not within the trace's " + std::to_string(t.num_steps()) + " steps");
  const auto L = static_cast<std::size_t>(t.num_layers());
  const auto E = static_cast<std::size_t>(t.num_experts());
  const auto S = static_cast<std::size_t>(t.num_steps());
  const auto n = static_cast<std::size_t>(end - first_step);
  std::vector<std::int64_t> counts;
  counts.reserve(L * n * E);
  for (std::size_t l = 0; l < L; ++l) {
    const auto* row = t.counts().data() + (l * S + static_cast<std::size_t>(first_step)) * E;
    counts.insert(counts.end(), row, row + n * E);
  }
  std::optional<token_routing> tokens;
  if (t.tokens()) {
    const auto& src = *t.tokens();
    const auto k = static_cast<std::size_t>(src.top_k);
    const auto t0 = src.step_offsets[static_cast<std::size_t>(first_step)];
    const auto t1 = src.step_offsets[static_cast<std::size_t>(end)];
    token_routing out;
    out.top_k = src.top_k;
    out.num_tokens = t1 - t0;
    for (std::size_t l = 0; l < L; ++l) {
      const auto b = (l * static_cast<std::size_t>(src.num_tokens) + static_cast<std::size_t>(t0)) * k;
      const auto e = (l * static_cast<std::size_t>(src.num_tokens) + static_cast<std::size_t>(t1)) * k;
      out.ids.insert(out.ids.end(), src.ids.begin() + static_cast<std::ptrdiff_t>(b), src.ids.begin() + static_cast<std::ptrdiff_t>(e));
      if (!src.weights.empty())
        out.weights.insert(out.weights.end(), src.weights.begin() + static_cast<std::ptrdiff_t>(b),
                           src.weights.begin() + static_cast<std::ptrdiff_t>(e));
    }
    for (auto s = static_cast<std::size_t>(first_step); s <= static_cast<std::size_t>(end); ++s)
      out.step_offsets.push_back(src.step_offsets[s] - t0);
    tokens = std::move(out);
  }
  return routing_trace(t.num_layers(), static_cast<std::int32_t>(n), t.num_experts(), std::move(counts), std::move(tokens));
}

}  // namespace gem
