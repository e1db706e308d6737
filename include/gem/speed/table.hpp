// gem/speed/table.hpp — `table`: per-GPU measured expert latency at GEMM tile boundaries plus a
// per-active-expert fixed cost, interpolated monotonically and extrapolated linearly.
// Depends on gem/speed/speed_model.hpp and gem/error.hpp. Profiles (JSON) become tables through
// gem/speed/profile.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
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
  /// Fixed cost of a step in which the GPU runs any expert (group sizes up, rows in and out,
  /// launches): paid once per GPU, not per expert; 0 when a profile does not say.
  double seconds_per_step = 0;
};

/// How `table` reads between two points.
enum class table_interpolation {
  /// Straight line between neighbouring points (and from (0, 0) to the first point): continuous,
  /// monotone, and never above the tile_ceiling reading of the same points.
  linear,
  /// The value of the next point at or above: a GEMM with rows in (k*BM, (k+1)*BM] runs k+1 row
  /// tiles, so it costs what the (k+1)*BM point costs. Monotone, captures tile quantization.
  tile_ceiling,
};

/// Table speed model. GPU g's step time is additive over its local experts:
///   seconds(g, w) = s_g [if any rows_e > 0] + sum over e with rows_e > 0 of (c_g + f_g(rows_e))
/// with s_g the GPU's fixed cost per step (seconds_per_step),
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
/// Concave tables (per-row cost not growing with rows) read linearly also keep seconds from rising
/// when two of a GPU's experts' rows are merged into one, which the evaluator's fluid bound relies
/// on; tile_ceiling mode can break that (two 1-row experts may cost less than one 2-row expert
/// whose next point is a whole tile) unless the per-active-expert cost covers the difference.
class table {
 public:
  /// Throws config_error naming gpus[g] and the field (rows[k], seconds[k],
  /// seconds_per_active_expert) when a requirement of table_gpu does not hold, or when `gpus` is empty.
  explicit table(std::vector<table_gpu> gpus, table_interpolation mode = table_interpolation::linear)
      : gpus_(std::move(gpus)), mode_(mode) {
    if (gpus_.empty()) throw config_error("table: gpus is empty (one point table per GPU is needed)");
    heads_.reserve(gpus_.size());
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
      if (!std::isfinite(t.seconds_per_step) || t.seconds_per_step < 0)
        throw config_error(at + "seconds_per_step must be finite and non-negative, got " +
                           std::to_string(t.seconds_per_step));
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
      add_segments(t);
    }
  }

  /// Seconds GPU `gpu` takes for `w`: O(local experts) (times log points off the regular grid),
  /// allocation-free.
  /// Precondition: 0 <= gpu.value < num_gpus() (see require_gpus).
  [[nodiscard]] double seconds(gpu_id gpu, const work& w) const noexcept {
    const head& h = heads_[static_cast<std::size_t>(gpu.value)];
    const segment* seg = segments_.data() + h.first_segment;
    double total = 0, any = 0;
    if (h.step > 0) {
      for (const double r : w.rows) {
        const double active = r > 0 ? 1.0 : 0.0;  // inactive experts cost nothing
        any = std::max(any, active);
        total += active * (h.seconds_per_active_expert + regular_value(h, seg, r));
      }
    } else {
      const double* knots = knots_.data() + h.first_knot;
      for (const double r : w.rows) {
        const double active = r > 0 ? 1.0 : 0.0;
        any = std::max(any, active);
        total += active * (h.seconds_per_active_expert + value(seg, search(knots, h.points, r), r));
      }
    }
    return total + any * h.seconds_per_step;
  }

  /// Seconds one expert with `rows` rows costs on GPU `gpu`: c + f(rows), 0 for rows <= 0 (the
  /// GPU's fixed cost per step, step_seconds, is not in it).
  [[nodiscard]] double expert_seconds(gpu_id gpu, double rows) const noexcept {
    if (!(rows > 0)) return 0.0;
    const head& h = heads_[static_cast<std::size_t>(gpu.value)];
    const segment* seg = segments_.data() + h.first_segment;
    return h.seconds_per_active_expert +
           (h.step > 0 ? regular_value(h, seg, rows)
                       : value(seg, search(knots_.data() + h.first_knot, h.points, rows), rows));
  }

  /// GPU `gpu`'s fixed cost of a step in which it runs any expert.
  [[nodiscard]] double step_seconds(gpu_id gpu) const noexcept {
    return heads_[static_cast<std::size_t>(gpu.value)].seconds_per_step;
  }

  [[nodiscard]] std::int32_t num_gpus() const noexcept { return static_cast<std::int32_t>(gpus_.size()); }
  [[nodiscard]] std::span<const table_gpu> gpus() const noexcept { return gpus_; }
  [[nodiscard]] table_interpolation interpolation() const noexcept { return mode_; }

 private:
  // Segment j (j = 0 .. n) covers rows in (rows[j-1], rows[j]] (rows[-1] = 0, rows[n] = infinity):
  // f(r) = min(y0 + slope * (r - x0), cap). The cap keeps f at or below the next point despite
  // rounding, so f stays monotone across points.
  struct segment {
    double x0, y0, slope, cap;
  };
  struct head {
    std::size_t first_segment = 0;  // n + 1 segments
    std::size_t first_knot = 0;     // n points' rows
    std::size_t points = 0;         // n
    double first_rows = 0;          // rows[0]
    double step = 0;                // grid spacing when rows are {rows[0], step, 2*step, ...}, else 0
    double seconds_per_active_expert = 0;
    double seconds_per_step = 0;
  };

  void add_segments(const table_gpu& t) {
    const std::size_t n = t.rows.size();
    head h;
    h.first_segment = segments_.size();
    h.first_knot = knots_.size();
    h.points = n;
    h.first_rows = t.rows[0];
    h.seconds_per_active_expert = t.seconds_per_active_expert;
    h.seconds_per_step = t.seconds_per_step;
    if (n >= 2) {
      const double step = t.rows[1];
      bool regular = t.rows[0] < step;
      for (std::size_t k = 1; k < n && regular; ++k) regular = t.rows[k] == static_cast<double>(k) * step;
      if (regular) h.step = step;
    }
    const bool ceiling = mode_ == table_interpolation::tile_ceiling;
    for (std::size_t j = 0; j < n; ++j) {
      const double x0 = j == 0 ? 0.0 : t.rows[j - 1];
      const double y0 = j == 0 ? 0.0 : t.seconds[j - 1];
      if (ceiling) segments_.push_back({x0, t.seconds[j], 0.0, t.seconds[j]});
      else segments_.push_back({x0, y0, (t.seconds[j] - y0) / (t.rows[j] - x0), t.seconds[j]});
    }
    const double last_slope = n > 1 ? (t.seconds[n - 1] - t.seconds[n - 2]) / (t.rows[n - 1] - t.rows[n - 2])
                                    : t.seconds[0] / t.rows[0];
    segments_.push_back({t.rows[n - 1], t.seconds[n - 1], last_slope, std::numeric_limits<double>::infinity()});
    knots_.insert(knots_.end(), t.rows.begin(), t.rows.end());
    heads_.push_back(h);
  }

  [[nodiscard]] static double value(const segment* seg, std::size_t j, double r) noexcept {
    const segment& s = seg[j];
    return std::min(s.y0 + s.slope * (r - s.x0), s.cap);
  }

  // Regular grid: points k >= 1 sit at k * step, so the first point at or above r > rows[0] is
  // ceil(r / step) (exact division keeps r == k * step on point k). Written as selects and bool
  // arithmetic (and without std::ceil, branchy on baseline x86-64) so that the compiler need not
  // branch on the rows, which are data.
  [[nodiscard]] static double regular_value(const head& h, const segment* seg, double r) noexcept {
    const double rr = r > 0 ? r : 0.0;  // also maps NaN to 0
    const double x = std::min(rr / h.step, static_cast<double>(h.points));
    const auto whole = static_cast<std::int64_t>(x);  // x in [0, points]: truncation is floor
    // ceil(x), minus one for rows in (0, rows[0]] (the segment from the origin), as bool arithmetic.
    const std::int64_t j = whole + static_cast<std::int64_t>(static_cast<double>(whole) < x) -
                           static_cast<std::int64_t>(rr > 0) * static_cast<std::int64_t>(rr <= h.first_rows);
    return value(seg, static_cast<std::size_t>(j), r);
  }

  // Index of the first of n knots at or above r (n when r is beyond the last), written with selects.
  [[nodiscard]] static std::size_t search(const double* knots, std::size_t n, double r) noexcept {
    const double* first = knots;
    std::size_t len = n;
    while (len > 0) {
      const std::size_t half = len / 2;
      const bool below = first[half] < r;
      first = below ? first + half + 1 : first;
      len = below ? len - half - 1 : half;
    }
    return static_cast<std::size_t>(first - knots);
  }

  std::vector<table_gpu> gpus_;
  table_interpolation mode_;
  std::vector<head> heads_{};
  std::vector<segment> segments_{};
  std::vector<double> knots_{};
};
static_assert(speed_model<table>);

}  // namespace gem
