// gem/detail/trace_access.hpp — small helpers shared by gem's load models, classes, co-activation
// and statistics: layer/step-range checks and a portable seeded random source (splitmix64, so the
// same seed gives the same numbers on every platform, unlike std:: distributions).
// Depends on gem/trace.hpp. Not part of the public API.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "gem/error.hpp"
#include "gem/trace.hpp"

namespace gem::detail {

/// Throws config_error naming `who` when `l` is not a layer of `t`.
inline void check_layer(const routing_trace& t, layer_id l, const char* who) {
  if (l.value < 0 || l.value >= t.num_layers())
    throw config_error(std::string(who) + ": layer " + std::to_string(l.value) + " is not in [0, " +
                       std::to_string(t.num_layers()) + ")");
}

/// The half-open step range [first, first + count) of `t` (count 0 = to the end), checked.
inline std::pair<std::int32_t, std::int32_t> step_range(const routing_trace& t, std::int32_t first, std::int32_t count,
                                                        const char* who) {
  if (first < 0 || count < 0)
    throw config_error(std::string(who) + ": first_step and num_steps must be non-negative");
  const std::int32_t end = count == 0 ? t.num_steps() : first + count;
  if (end > t.num_steps() || first > end)
    throw config_error(std::string(who) + ": steps [" + std::to_string(first) + ", " + std::to_string(end) +
                       ") are not within the trace's " + std::to_string(t.num_steps()) + " steps");
  if (end == first) throw config_error(std::string(who) + ": the step range is empty (the trace has no steps?)");
  return {first, end};
}

/// splitmix64: a tiny, fully specified generator (same stream on every platform and compiler).
struct trace_rng {
  std::uint64_t state;

  explicit trace_rng(std::uint64_t seed) noexcept : state(seed ^ 0x6a09e667f3bcc909ULL) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n > 0 (rejection, so exactly uniform).
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t limit = (~std::uint64_t{0}) - (~std::uint64_t{0}) % n;
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
};

}  // namespace gem::detail
