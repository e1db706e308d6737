// gem/speed/speed_model.hpp — `work` (what one GPU receives in one step) and the `speed_model`
// concept: seconds a given GPU takes for given work. Models live beside this file.
// Depends on gem/ids.hpp and the standard library.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>

#include "gem/ids.hpp"

namespace gem {

/// What one GPU receives in one step of one layer: token rows per local expert (one entry per
/// expert slot on the GPU; fractional when a replica takes a share of an expert's expected load).
/// Rows of 0 mean the expert is resident but receives nothing (its weights are not read).
struct work {
  std::span<const double> rows{};

  /// Total token rows.
  [[nodiscard]] double tokens() const noexcept {
    double t = 0;
    for (double r : rows) t += r;
    return t;
  }
  /// Experts with at least one row (each costs a full read of its weights).
  [[nodiscard]] std::int32_t active_experts() const noexcept {
    std::int32_t n = 0;
    for (double r : rows) n += r > 0;
    return n;
  }
  /// GEMM row tiles of height `bm` over all experts: sum of ceil(rows_e / bm).
  [[nodiscard]] std::int64_t tiles(std::int32_t bm) const noexcept {
    std::int64_t n = 0;
    for (double r : rows) n += static_cast<std::int64_t>(std::ceil(r / bm));
    return n;
  }
};

/// A speed model maps (GPU, work) to predicted seconds. It is a small copyable value; `seconds`
/// is const, deterministic and non-negative, and 0 for empty work.
template <class M>
concept speed_model = std::copy_constructible<M> && requires(const M& m, gpu_id g, work w) {
  { m.seconds(g, w) } -> std::convertible_to<double>;
};

}  // namespace gem
