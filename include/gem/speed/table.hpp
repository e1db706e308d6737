// gem/speed/table.hpp — `table`: per-GPU measured expert latency at GEMM tile boundaries plus a
// per-active-expert fixed cost, interpolated monotonically and extrapolated linearly.
// Depends on gem/speed/speed_model.hpp and gem/error.hpp. Profiles (JSON) become tables through
// gem/speed/profile.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gem/error.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// Measured latency of one GPU. Point k says: an expert that receives `rows[k]` token rows costs
/// `seconds[k]` on top of `seconds_per_active_expert` (which every expert with rows > 0 pays:
/// reading its weights, scheduling its tiles). Rows are the tile boundaries 1, BM, 2*BM, ... for the
/// GEMM's tile height BM (any strictly increasing positive rows are accepted; the regular grid is
/// looked up in O(1), others by binary search).
/// Requirements (checked by `table`): at least one point; rows finite, positive, strictly
/// increasing; seconds finite, non-negative, non-decreasing; the fixed cost finite, non-negative.
struct table_gpu {
  std::vector<double> rows{};
  std::vector<double> seconds{};
  double seconds_per_active_expert = 0;
};

/// How `table` reads between two points.
enum class table_interpolation {
  /// Straight line between neighbouring points (and from (0, 0) to the first point): continuous,
  /// monotone, and for the usual concave GEMM latency curve never above the measured step function.
  linear,
  /// The value of the next point at or above: a GEMM with rows in (k*BM, (k+1)*BM] runs k+1 row
  /// tiles, so it costs what the (k+1)*BM point costs. Monotone, captures tile quantization.
  tile_ceiling,
};

/// Table speed model. GPU g's step time is additive over its local experts:
///   seconds(g, w) = sum over e with rows_e > 0 of (c_g + f_g(rows_e))
/// with c_g the GPU's per-active-expert cost and f_g the interpolated point latency. Additive
/// because a GPU runs its experts' GEMMs back to back (or as one grouped launch whose time grows
/// with each expert's weight read and row tiles); each expert pads its own rows to whole tiles, so
/// f is evaluated per expert, not on the GPU's total rows.
/// f_g(r):
///   - r <= rows[0]: linear from (0, 0) to the first point, or seconds[0] in tile_ceiling mode
///     (fractional rows come from replica shares of an expected load);
///   - between points: see table_interpolation;
///   - beyond the last point: linear extrapolation with the slope of the last two points (the
///     per-row cost at the largest measured size, where GEMMs are compute bound and time grows
///     linearly with rows); with a single point, the slope seconds[0] / rows[0] (proportional).
/// Predictions depend on c_g + f_g only; how a profiler splits a measured per-expert time between
/// the fixed cost and the points changes nothing but f's shape below the first point.
/// Concave tables (per-row cost not growing with rows) also keep seconds from rising when two of a
/// GPU's experts' rows are merged into one, which the evaluator's fluid bound relies on.
class table {
 public:
  /// Throws config_error naming gpus[g] and the field (rows[k], seconds[k],
  /// seconds_per_active_expert) when a requirement of table_gpu does not hold, or when `gpus` is empty.
  explicit table(std::vector<table_gpu> gpus, table_interpolation mode = table_interpolation::linear)
      : gpus_(std::move(gpus)), mode_(mode) {
    if (gpus_.empty()) throw config_error("table: gpus is empty (one point table per GPU is needed)");
    lookup_.reserve(gpus_.size());
    for (std::size_t g = 0; g < gpus_.size(); ++g) {
      const auto& t = gpus_[g];
      const std::string at = "table: gpus[" + std::to_string(g) + "].";
      if (t.rows.empty()) throw config_error(at + "rows is empty (at least one point is needed)");
      if (t.seconds.size() != t.rows.size())
        throw config_error(at + "seconds holds " + std::to_string(t.seconds.size()) + " values for " +
                           std::to_string(t.rows.size()) + " rows");
      if (!std::isfinite(t.seconds_per_active_expert) || t.seconds_per_active_expert < 0)
        throw config_error(at + "seconds_per_active_expert must be finite and non-negative, got " +
                           std::to_string(t.seconds_per_active_expert));
      for (std::size_t k = 0; k < t.rows.size(); ++k) {
        const std::string rk = "[" + std::to_string(k) + "]";
        if (!std::isfinite(t.rows[k]) || !(t.rows[k] > 0))
          throw config_error(at + "rows" + rk + " must be finite and positive, got " + std::to_string(t.rows[k]));
        if (k > 0 && !(t.rows[k] > t.rows[k - 1]))
          throw config_error(at + "rows" + rk + " = " + std::to_string(t.rows[k]) +
                             " must be greater than the previous point's rows " + std::to_string(t.rows[k - 1]));
        if (!std::isfinite(t.seconds[k]) || t.seconds[k] < 0)
          throw config_error(at + "seconds" + rk + " must be finite and non-negative, got " +
                             std::to_string(t.seconds[k]));
        if (k > 0 && t.seconds[k] < t.seconds[k - 1])
          throw config_error(at + "seconds" + rk + " = " + std::to_string(t.seconds[k]) +
                             " is less than the previous point's " + std::to_string(t.seconds[k - 1]) +
                             " (latency must not decrease with rows)");
      }
      lookup_.push_back(make_lookup(t));
    }
  }

  /// Seconds GPU `gpu` takes for `w`: O(local experts) (times log points off the regular grid),
  /// allocation-free. Precondition: 0 <= gpu.value < num_gpus() (see require_gpus).
  [[nodiscard]] double seconds(gpu_id gpu, const work& w) const noexcept {
    const auto g = static_cast<std::size_t>(gpu.value);
    const auto& t = gpus_[g];
    const auto& lk = lookup_[g];
    double total = 0;
    for (const double r : w.rows)
      if (r > 0) total += t.seconds_per_active_expert + point_seconds(t, lk, r);
    return total;
  }

  /// Seconds one expert with `rows` rows costs on GPU `gpu`: c + f(rows), 0 for rows <= 0.
  [[nodiscard]] double expert_seconds(gpu_id gpu, double rows) const noexcept {
    if (!(rows > 0)) return 0.0;
    const auto g = static_cast<std::size_t>(gpu.value);
    return gpus_[g].seconds_per_active_expert + point_seconds(gpus_[g], lookup_[g], rows);
  }

  [[nodiscard]] std::int32_t num_gpus() const noexcept { return static_cast<std::int32_t>(gpus_.size()); }
  [[nodiscard]] std::span<const table_gpu> gpus() const noexcept { return gpus_; }
  [[nodiscard]] table_interpolation interpolation() const noexcept { return mode_; }

 private:
  struct lookup {
    double step = 0;            // grid spacing when rows are {r0, step, 2*step, ...}, else 0
    double last_slope = 0;      // extrapolation slope beyond the last point
    std::vector<double> slope;  // slope[k]: between point k and k+1
  };

  static lookup make_lookup(const table_gpu& t) {
    lookup lk;
    const std::size_t n = t.rows.size();
    lk.slope.resize(n > 1 ? n - 1 : 0);
    for (std::size_t k = 0; k + 1 < n; ++k)
      lk.slope[k] = (t.seconds[k + 1] - t.seconds[k]) / (t.rows[k + 1] - t.rows[k]);
    lk.last_slope = n > 1 ? lk.slope.back() : t.seconds[0] / t.rows[0];
    if (n >= 2) {
      const double step = t.rows[1];
      bool regular = t.rows[0] < step;
      for (std::size_t k = 1; k < n && regular; ++k) regular = t.rows[k] == static_cast<double>(k) * step;
      if (regular) lk.step = step;
    }
    return lk;
  }

  // Index of the first point with rows >= r (n when r is beyond the last point).
  [[nodiscard]] static std::size_t first_at_or_above(const table_gpu& t, const lookup& lk, double r) noexcept {
    const std::size_t n = t.rows.size();
    if (r <= t.rows[0]) return 0;
    if (lk.step > 0) {
      // Points k >= 1 sit at k * step; exact division keeps r == k * step on point k.
      const double k = std::ceil(r / lk.step);
      return k >= static_cast<double>(n) ? n : static_cast<std::size_t>(k);
    }
    return static_cast<std::size_t>(std::lower_bound(t.rows.begin(), t.rows.end(), r) - t.rows.begin());
  }

  [[nodiscard]] double point_seconds(const table_gpu& t, const lookup& lk, double r) const noexcept {
    const std::size_t n = t.rows.size();
    const std::size_t j = first_at_or_above(t, lk, r);
    if (j == n) return t.seconds[n - 1] + lk.last_slope * (r - t.rows[n - 1]);
    if (mode_ == table_interpolation::tile_ceiling || r == t.rows[j]) return t.seconds[j];
    if (j == 0) return t.seconds[0] * (r / t.rows[0]);
    return t.seconds[j - 1] + lk.slope[j - 1] * (r - t.rows[j - 1]);
  }

  std::vector<table_gpu> gpus_;
  std::vector<lookup> lookup_;
  table_interpolation mode_;
};
static_assert(speed_model<table>);

}  // namespace gem
