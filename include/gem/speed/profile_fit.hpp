// gem/speed/profile_fit.hpp — fits a profiled GPU's table (fixed cost per step, per-active-expert
// cost, monotone points at given rows) to measured expert phases with uneven rows per expert, and draws such
// uneven row mixes. Host only; depends on gem/speed/profile.hpp and gem/detail/trace_access.hpp.
//
// Why: a real step gives a device's experts very different rows (a few with hundreds beside many
// with ten), and a grouped GEMM's time for such a mix is not what the same rows spread evenly
// cost (the kernel and its tiles follow the mix). Timing uniform rows and reading the table off
// them mispredicts real steps (bench/RESULTS.md, issue 8: -11% at 256 tokens per step, -44% at
// 1024). Timing skewed mixes and fitting the additive table to them predicts what a step costs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/error.hpp"
#include "gem/speed/profile.hpp"

namespace gem {

/// One measured expert phase: the rows each expert received (0 = idle) and the seconds it took.
struct profile_observation {
  std::vector<double> rows{};
  double seconds = 0;
};

/// How well a fitted table reproduces its observations: |predicted - measured| / measured.
struct profile_fit_quality {
  double median_error = 0;
  double p95_error = 0;
  double max_error = 0;
};

namespace detail {

// Feature j >= 1 of one expert with r rows: the share of the knot interval (k[j-1], k[j]] that r
// covers (1 beyond it), except the last interval, which extrapolates linearly (the table's rule).
inline double knot_feature(std::span<const double> k, std::size_t j, double r) {
  const double x = (r - k[j - 1]) / (k[j] - k[j - 1]);
  if (x <= 0) return 0;
  return j + 1 == k.size() ? x : std::min(x, 1.0);
}

// Solves min ||A x - b|| subject to x >= 0 (Lawson and Hanson's active-set method) for a small
// dense A (rows x cols, row-major). Columns that are all zero stay at 0.
inline std::vector<double> nnls(const std::vector<double>& A, const std::vector<double>& b, std::size_t rows,
                                std::size_t cols) {
  std::vector<double> x(cols, 0.0), w(cols), z(cols);
  std::vector<char> in_p(cols, 0);
  const auto gradient = [&] {
    for (std::size_t j = 0; j < cols; ++j) {
      double s = 0;
      for (std::size_t i = 0; i < rows; ++i) {
        double r = b[i];
        for (std::size_t q = 0; q < cols; ++q) r -= A[i * cols + q] * x[q];
        s += A[i * cols + j] * r;
      }
      w[j] = s;
    }
  };
  // Least squares on the passive columns (normal equations, Gaussian elimination with pivoting;
  // the systems here have at most a dozen columns, scaled to unit norm by the caller).
  const auto solve_passive = [&] {
    std::vector<std::size_t> p;
    for (std::size_t j = 0; j < cols; ++j)
      if (in_p[j]) p.push_back(j);
    const std::size_t n = p.size();
    std::vector<double> M(n * (n + 1), 0.0);
    for (std::size_t a = 0; a < n; ++a) {
      for (std::size_t c = 0; c < n; ++c) {
        double s = 0;
        for (std::size_t i = 0; i < rows; ++i) s += A[i * cols + p[a]] * A[i * cols + p[c]];
        M[a * (n + 1) + c] = s;
      }
      double s = 0;
      for (std::size_t i = 0; i < rows; ++i) s += A[i * cols + p[a]] * b[i];
      M[a * (n + 1) + n] = s;
      M[a * (n + 1) + a] += 1e-12;  // keeps a rank-deficient passive set solvable
    }
    for (std::size_t c = 0; c < n; ++c) {
      std::size_t piv = c;
      for (std::size_t r = c + 1; r < n; ++r)
        if (std::abs(M[r * (n + 1) + c]) > std::abs(M[piv * (n + 1) + c])) piv = r;
      for (std::size_t q = 0; q <= n; ++q) std::swap(M[c * (n + 1) + q], M[piv * (n + 1) + q]);
      const double d = M[c * (n + 1) + c];
      if (d == 0) continue;
      for (std::size_t r = 0; r < n; ++r) {
        if (r == c) continue;
        const double f = M[r * (n + 1) + c] / d;
        for (std::size_t q = c; q <= n; ++q) M[r * (n + 1) + q] -= f * M[c * (n + 1) + q];
      }
    }
    std::fill(z.begin(), z.end(), 0.0);
    for (std::size_t a = 0; a < n; ++a) {
      const double d = M[a * (n + 1) + a];
      z[p[a]] = d != 0 ? M[a * (n + 1) + n] / d : 0.0;
    }
  };
  constexpr double tol = 1e-12;
  for (std::size_t outer = 0; outer < 4 * cols + 8; ++outer) {
    gradient();
    std::size_t t = cols;
    for (std::size_t j = 0; j < cols; ++j)
      if (!in_p[j] && w[j] > tol && (t == cols || w[j] > w[t])) t = j;
    if (t == cols) break;
    in_p[t] = 1;
    for (std::size_t inner = 0; inner < 4 * cols + 8; ++inner) {
      solve_passive();
      bool feasible = true;
      for (std::size_t j = 0; j < cols; ++j)
        if (in_p[j] && z[j] <= 0) feasible = false;
      if (feasible) {
        x = z;
        break;
      }
      double alpha = 1;
      for (std::size_t j = 0; j < cols; ++j)
        if (in_p[j] && z[j] <= 0) alpha = std::min(alpha, x[j] / (x[j] - z[j]));
      for (std::size_t j = 0; j < cols; ++j) {
        x[j] += alpha * (z[j] - x[j]);
        if (in_p[j] && x[j] <= tol) in_p[j] = 0, x[j] = 0;
      }
    }
  }
  return x;
}

}  // namespace detail

/// Fits the table of one GPU to `observations`: seconds ~ s + sum over experts with rows > 0 of
/// (c + f(rows)), with s the fixed cost of the step (seconds_per_step), c the per-active-expert
/// cost, f linear between `knots` (f = 0 at knots[0], linear extrapolation beyond the last);
/// s, c >= 0 and f non-decreasing; minimising the squared *relative* error (each observation
/// weighted by 1 / its seconds, so short and long phases count alike). s and c are told apart by
/// observations with different numbers of active experts. Knots no observed expert
/// reaches past are dropped (their value would be unconstrained), keeping at least two.
/// Throws config_error when observations are empty or hold non-finite or negative values, when a
/// phase has no active expert or non-positive seconds, or when knots are not positive and strictly
/// increasing (at least two).
[[nodiscard]] inline profile_gpu fit_profile_gpu(std::span<const profile_observation> observations,
                                                 std::span<const double> knots) {
  if (observations.empty()) throw config_error("fit_profile_gpu: no observations");
  if (knots.size() < 2) throw config_error("fit_profile_gpu: needs at least two knots");
  for (std::size_t k = 0; k < knots.size(); ++k)
    if (!std::isfinite(knots[k]) || knots[k] <= 0 || (k > 0 && knots[k] <= knots[k - 1]))
      throw config_error("fit_profile_gpu: knots must be positive and strictly increasing (knot " + std::to_string(k) + ")");
  double most = 0;
  for (std::size_t i = 0; i < observations.size(); ++i) {
    const auto& o = observations[i];
    if (!std::isfinite(o.seconds) || o.seconds <= 0)
      throw config_error("fit_profile_gpu: observation " + std::to_string(i) + " has seconds " + std::to_string(o.seconds) +
                         " (must be finite and positive)");
    bool any = false;
    for (const double r : o.rows) {
      if (!std::isfinite(r) || r < 0)
        throw config_error("fit_profile_gpu: observation " + std::to_string(i) + " has rows " + std::to_string(r) +
                           " (must be finite and non-negative)");
      any = any || r > 0;
      most = std::max(most, r);
    }
    if (!any) throw config_error("fit_profile_gpu: observation " + std::to_string(i) + " has no expert with rows");
  }
  std::vector<double> k;
  for (const double v : knots)
    if (k.size() < 2 || k.back() < most) k.push_back(v);
  // Columns: c, one increment per knot interval, then s.
  const std::size_t n = observations.size(), cols = k.size() + 1;
  std::vector<double> A(n * cols, 0.0), b(n, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& o = observations[i];
    for (const double r : o.rows) {
      if (!(r > 0)) continue;
      A[i * cols] += 1;
      for (std::size_t j = 1; j < k.size(); ++j) A[i * cols + j] += detail::knot_feature(k, j, r);
    }
    A[i * cols + cols - 1] = 1;
    for (std::size_t j = 0; j < cols; ++j) A[i * cols + j] /= o.seconds;
  }
  std::vector<double> scale(cols, 0.0);
  for (std::size_t j = 0; j < cols; ++j) {
    for (std::size_t i = 0; i < n; ++i) scale[j] += A[i * cols + j] * A[i * cols + j];
    scale[j] = scale[j] > 0 ? std::sqrt(scale[j]) : 1.0;
    for (std::size_t i = 0; i < n; ++i) A[i * cols + j] /= scale[j];
  }
  auto x = detail::nnls(A, b, n, cols);
  for (std::size_t j = 0; j < cols; ++j) x[j] /= scale[j];
  profile_gpu g;
  g.seconds_per_active_expert = x[0];
  g.seconds_per_step = x[cols - 1];
  double v = 0;
  g.points.push_back({k[0], 0.0});
  for (std::size_t j = 1; j < k.size(); ++j) g.points.push_back({k[j], v += x[j]});
  return g;
}

/// How well `g` (read linearly, as gem::table does by default) predicts `observations`.
[[nodiscard]] inline profile_fit_quality fit_quality(const profile_gpu& g, std::span<const profile_observation> observations) {
  table_gpu tg{.rows = {}, .seconds = {}, .seconds_per_active_expert = g.seconds_per_active_expert,
               .seconds_per_step = g.seconds_per_step};
  for (const auto& pt : g.points) {
    tg.rows.push_back(pt.rows);
    tg.seconds.push_back(pt.seconds);
  }
  const table t(std::vector<table_gpu>{std::move(tg)});
  std::vector<double> err;
  for (const auto& o : observations)
    err.push_back(std::abs(t.seconds(gpu_id{0}, work{o.rows}) - o.seconds) / o.seconds);
  std::sort(err.begin(), err.end());
  profile_fit_quality q;
  if (err.empty()) return q;
  const auto at = [&](double f) { return err[std::min(err.size() - 1, static_cast<std::size_t>(f * static_cast<double>(err.size() - 1) + 0.5))]; };
  q.median_error = at(0.5);
  q.p95_error = at(0.95);
  q.max_error = err.back();
  return q;
}

/// `count` uneven row mixes over up to `max_experts` experts, like a device's share of real
/// routing: active experts uniform in [max(1, max_experts / 2), max_experts], total rows
/// log-uniform in [active, active * max_mean_rows], split in proportion to lognormal weights
/// (sigma 1, the spread of expert loads in the ESFT traces), every active expert >= 1 row.
/// Deterministic in `seed` on every platform. Throws config_error for a non-positive argument.
[[nodiscard]] inline std::vector<std::vector<std::int32_t>> profile_mixes(std::int32_t count, std::int32_t max_experts,
                                                                           std::int32_t max_mean_rows, std::uint64_t seed) {
  if (count < 0 || max_experts <= 0 || max_mean_rows <= 0)
    throw config_error("profile_mixes: count must be >= 0 and max_experts, max_mean_rows positive");
  detail::trace_rng rng(seed);
  std::vector<std::vector<std::int32_t>> mixes;
  const auto lo = std::max(1, max_experts / 2);
  for (std::int32_t m = 0; m < count; ++m) {
    const auto active = lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(max_experts - lo + 1)));
    const double total_d = active * std::exp(rng.uniform() * std::log(static_cast<double>(max_mean_rows)));
    const auto total = std::max<std::int64_t>(active, std::llround(total_d));
    std::vector<double> w(static_cast<std::size_t>(active));
    double sum = 0;
    for (auto& v : w) {
      // Box-Muller from two uniforms (1 - u keeps the log finite).
      const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
      v = std::exp(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
      sum += v;
    }
    std::vector<std::int32_t> rows(static_cast<std::size_t>(max_experts), 0);
    std::int64_t given = 0;
    for (std::int32_t e = 0; e < active; ++e) {
      const auto spare = static_cast<double>(total - active);
      rows[static_cast<std::size_t>(e)] = 1 + static_cast<std::int32_t>(std::floor(spare * w[static_cast<std::size_t>(e)] / sum));
      given += rows[static_cast<std::size_t>(e)];
    }
    for (std::int64_t r = given; r < total; ++r) ++rows[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(active)))];
    mixes.push_back(std::move(rows));
  }
  return mixes;
}

}  // namespace gem
