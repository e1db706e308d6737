// gem/trace.hpp — routing_trace: per layer, step and expert token counts, optionally with the
// per-token top-k expert ids and gate weights they came from. Depends on gem/error.hpp, gem/ids.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gem/error.hpp"
#include "gem/ids.hpp"

namespace gem {

/// Per-token top-k routing behind a trace. All arrays are row-major.
/// - `ids[(l * num_tokens + t) * top_k + j]`: j-th expert chosen by token t at layer l.
/// - `weights`: same layout, gate weight of that choice; empty when the source had none.
/// - `step_offsets[s] .. step_offsets[s+1]`: the tokens that make up step s (num_steps + 1 values,
///   first 0, last num_tokens).
struct token_routing {
  std::int32_t top_k = 0;
  std::int64_t num_tokens = 0;
  std::vector<std::int32_t> ids{};
  std::vector<float> weights{};
  std::vector<std::int64_t> step_offsets{};
};

/// Token counts `count(l, s, e)` for every layer l, step s and expert e of a routing log.
/// Immutable once built; the constructor validates sizes, signs and, when token routing is given,
/// that it is well formed (ids in range, no expert twice in one token) and agrees with the counts.
class routing_trace {
 public:
  routing_trace() = default;

  /// `counts` is [num_layers][num_steps][num_experts] row-major. Throws config_error on any
  /// inconsistency, naming the layer, step, expert or token.
  routing_trace(std::int32_t num_layers, std::int32_t num_steps, std::int32_t num_experts,
                std::vector<std::int64_t> counts, std::optional<token_routing> tokens = std::nullopt)
      : num_layers_(num_layers),
        num_steps_(num_steps),
        num_experts_(num_experts),
        counts_(std::move(counts)),
        tokens_(std::move(tokens)) {
    validate();
  }

  /// Builds the counts from per-token routing (each token adds 1 to each of its top-k experts in
  /// its step).
  [[nodiscard]] static routing_trace from_tokens(std::int32_t num_layers, std::int32_t num_experts,
                                                 token_routing tokens) {
    const auto num_steps = static_cast<std::int32_t>(tokens.step_offsets.empty() ? 0 : tokens.step_offsets.size() - 1);
    check_token_shape(num_layers, num_experts, tokens);
    std::vector<std::int64_t> counts(static_cast<std::size_t>(num_layers) * num_steps * num_experts, 0);
    for (std::int32_t l = 0; l < num_layers; ++l)
      for (std::int32_t s = 0; s < num_steps; ++s)
        for (auto t = tokens.step_offsets[s]; t < tokens.step_offsets[s + 1]; ++t)
          for (std::int32_t j = 0; j < tokens.top_k; ++j) {
            const auto e = tokens.ids[(static_cast<std::size_t>(l) * tokens.num_tokens + t) * tokens.top_k + j];
            if (e >= 0 && e < num_experts)
              ++counts[(static_cast<std::size_t>(l) * num_steps + s) * num_experts + e];
          }
    // The counts come from the tokens, so only the counts' own checks remain to be done.
    return routing_trace(counted_from_tokens{}, num_layers, num_steps, num_experts, std::move(counts), std::move(tokens));
  }

  [[nodiscard]] std::int32_t num_layers() const noexcept { return num_layers_; }
  [[nodiscard]] std::int32_t num_steps() const noexcept { return num_steps_; }
  [[nodiscard]] std::int32_t num_experts() const noexcept { return num_experts_; }

  /// Tokens routed to expert `e` at layer `l` in step `s`.
  [[nodiscard]] std::int64_t count(layer_id l, std::int32_t s, expert_id e) const {
    return counts_[index(l.value, s, e.value)];
  }
  /// The `num_experts` counts of layer `l`, step `s`.
  [[nodiscard]] std::span<const std::int64_t> step_counts(layer_id l, std::int32_t s) const {
    return {counts_.data() + index(l.value, s, 0), static_cast<std::size_t>(num_experts_)};
  }
  /// All counts, [layer][step][expert] row-major.
  [[nodiscard]] std::span<const std::int64_t> counts() const noexcept { return counts_; }
  /// Per-expert totals of layer `l` over all steps.
  [[nodiscard]] std::vector<std::int64_t> layer_totals(layer_id l) const {
    std::vector<std::int64_t> total(static_cast<std::size_t>(num_experts_), 0);
    for (std::int32_t s = 0; s < num_steps_; ++s)
      for (std::int32_t e = 0; e < num_experts_; ++e) total[e] += counts_[index(l.value, s, e)];
    return total;
  }
  /// The per-token routing the counts came from, when known.
  [[nodiscard]] const std::optional<token_routing>& tokens() const noexcept { return tokens_; }

  friend bool operator==(const routing_trace& a, const routing_trace& b) {
    const bool same_tokens =
        a.tokens_.has_value() == b.tokens_.has_value() &&
        (!a.tokens_ || (a.tokens_->top_k == b.tokens_->top_k && a.tokens_->num_tokens == b.tokens_->num_tokens &&
                        a.tokens_->ids == b.tokens_->ids && a.tokens_->weights == b.tokens_->weights &&
                        a.tokens_->step_offsets == b.tokens_->step_offsets));
    return a.num_layers_ == b.num_layers_ && a.num_steps_ == b.num_steps_ &&
           a.num_experts_ == b.num_experts_ && a.counts_ == b.counts_ && same_tokens;
  }

 private:
  struct counted_from_tokens {};
  routing_trace(counted_from_tokens, std::int32_t num_layers, std::int32_t num_steps, std::int32_t num_experts,
                std::vector<std::int64_t> counts, token_routing tokens)
      : num_layers_(num_layers),
        num_steps_(num_steps),
        num_experts_(num_experts),
        counts_(std::move(counts)),
        tokens_(std::move(tokens)) {
    validate_counts();
  }

  [[nodiscard]] std::size_t index(std::int32_t l, std::int32_t s, std::int32_t e) const {
    return (static_cast<std::size_t>(l) * num_steps_ + s) * num_experts_ + e;
  }

  static void check_token_shape(std::int32_t num_layers, std::int32_t num_experts, const token_routing& t) {
    if (num_layers <= 0) throw config_error("routing_trace: num_layers must be positive");
    if (num_experts <= 0) throw config_error("routing_trace: num_experts must be positive");
    if (t.top_k <= 0 || t.top_k > num_experts)
      throw config_error("token_routing.top_k must be in [1, num_experts], got " + std::to_string(t.top_k));
    if (t.num_tokens < 0) throw config_error("token_routing.num_tokens must be non-negative");
    const auto n = static_cast<std::size_t>(num_layers) * t.num_tokens * t.top_k;
    if (t.ids.size() != n)
      throw config_error("token_routing.ids holds " + std::to_string(t.ids.size()) +
                         " values, expected layers x tokens x top_k = " + std::to_string(n));
    if (!t.weights.empty() && t.weights.size() != n)
      throw config_error("token_routing.weights holds " + std::to_string(t.weights.size()) +
                         " values, expected 0 or " + std::to_string(n));
    if (t.step_offsets.empty() || t.step_offsets.front() != 0 || t.step_offsets.back() != t.num_tokens)
      throw config_error("token_routing.step_offsets must start at 0 and end at num_tokens");
    for (std::size_t s = 1; s < t.step_offsets.size(); ++s)
      if (t.step_offsets[s] < t.step_offsets[s - 1])
        throw config_error("token_routing.step_offsets must not decrease (step " + std::to_string(s - 1) + ")");
    for (std::int32_t l = 0; l < num_layers; ++l)
      for (std::int64_t tok = 0; tok < t.num_tokens; ++tok) {
        const auto* row = t.ids.data() + (static_cast<std::size_t>(l) * t.num_tokens + tok) * t.top_k;
        for (std::int32_t j = 0; j < t.top_k; ++j) {
          if (row[j] < 0 || row[j] >= num_experts)
            throw config_error("token_routing: layer " + std::to_string(l) + " token " + std::to_string(tok) +
                               ": expert id " + std::to_string(row[j]) + " out of range [0, " +
                               std::to_string(num_experts) + ")");
          for (std::int32_t i = 0; i < j; ++i)
            if (row[i] == row[j])
              throw config_error("token_routing: layer " + std::to_string(l) + " token " + std::to_string(tok) +
                                 ": expert " + std::to_string(row[j]) + " chosen twice");
        }
      }
    for (float w : t.weights)
      if (!std::isfinite(w)) throw config_error("token_routing.weights holds a non-finite gate weight");
  }

  void validate() const {
    validate_counts();
    if (!tokens_) return;
    validate_tokens();
  }

  void validate_counts() const {
    if (num_layers_ <= 0) throw config_error("routing_trace: num_layers must be positive, got " + std::to_string(num_layers_));
    if (num_steps_ < 0) throw config_error("routing_trace: num_steps must be non-negative, got " + std::to_string(num_steps_));
    if (num_experts_ <= 0) throw config_error("routing_trace: num_experts must be positive, got " + std::to_string(num_experts_));
    const auto n = static_cast<std::size_t>(num_layers_) * num_steps_ * num_experts_;
    if (counts_.size() != n)
      throw config_error("routing_trace: counts holds " + std::to_string(counts_.size()) +
                         " values, expected layers x steps x experts = " + std::to_string(n));
    for (std::size_t i = 0; i < n; ++i)
      if (counts_[i] < 0) {
        const auto e = i % num_experts_, s = (i / num_experts_) % num_steps_, l = i / num_experts_ / num_steps_;
        throw config_error("routing_trace: negative count at layer " + std::to_string(l) + " step " +
                           std::to_string(s) + " expert " + std::to_string(e));
      }
  }

  void validate_tokens() const {
    const auto n = counts_.size();
    check_token_shape(num_layers_, num_experts_, *tokens_);
    if (tokens_->step_offsets.size() != static_cast<std::size_t>(num_steps_) + 1)
      throw config_error("token_routing.step_offsets holds " + std::to_string(tokens_->step_offsets.size()) +
                         " values, expected num_steps + 1 = " + std::to_string(num_steps_ + 1));
    std::vector<std::int64_t> expect(n, 0);
    for (std::int32_t l = 0; l < num_layers_; ++l)
      for (std::int32_t s = 0; s < num_steps_; ++s)
        for (auto t = tokens_->step_offsets[s]; t < tokens_->step_offsets[s + 1]; ++t)
          for (std::int32_t j = 0; j < tokens_->top_k; ++j)
            ++expect[index(l, s, tokens_->ids[(static_cast<std::size_t>(l) * tokens_->num_tokens + t) * tokens_->top_k + j])];
    for (std::size_t i = 0; i < n; ++i)
      if (expect[i] != counts_[i]) {
        const auto e = i % num_experts_, s = (i / num_experts_) % num_steps_, l = i / num_experts_ / num_steps_;
        throw config_error("routing_trace: counts disagree with token routing at layer " + std::to_string(l) +
                           " step " + std::to_string(s) + " expert " + std::to_string(e) + " (" +
                           std::to_string(counts_[i]) + " vs " + std::to_string(expect[i]) + ")");
      }
  }

  std::int32_t num_layers_ = 0;
  std::int32_t num_steps_ = 0;
  std::int32_t num_experts_ = 0;
  std::vector<std::int64_t> counts_{};
  std::optional<token_routing> tokens_{};
};

}  // namespace gem
