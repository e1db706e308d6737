// gem/place/detail/common.hpp — pieces the speed-aware strategies share: a GPU's relative speed
// probed from a speed model, EPLB's replica choice (largest load per replica first), per-expert
// step statistics, and a splitmix64 generator (same numbers on every platform).
// Depends on gem/place/problem.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "gem/place/problem.hpp"

namespace gem::detail {

/// splitmix64: a tiny generator whose output is fixed by its seed on every platform.
struct splitmix64 {
  std::uint64_t state = 0;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [0, n).
  std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }
};

/// Relative speed of each GPU under `model`: 1 / seconds of a reference step (`per_gpu` experts,
/// each with `rows` rows), normalised so that the fastest GPU is 1. A GPU that reports 0 seconds
/// gets speed 1.
template <speed_model M>
std::vector<double> probe_speeds(const M& model, std::int32_t num_gpus, std::int32_t per_gpu, double rows) {
  per_gpu = std::max(per_gpu, 1);
  rows = rows > 0 ? rows : 1.0;
  const std::vector<double> ref(static_cast<std::size_t>(per_gpu), rows);
  std::vector<double> v(static_cast<std::size_t>(num_gpus), 1.0);
  double best = 0;
  for (std::int32_t g = 0; g < num_gpus; ++g) {
    const double t = static_cast<double>(model.seconds(gpu_id{g}, work{ref}));
    v[g] = t > 0 && std::isfinite(t) ? 1.0 / t : 0.0;
    best = std::max(best, v[g]);
  }
  for (auto& x : v) x = best > 0 && x > 0 ? x / best : 1.0;
  return v;
}

/// Replica counts after adding `redundant` replicas one at a time to the expert with the largest
/// load per replica (EPLB's rule, in double; first expert on ties).
inline std::vector<std::int32_t> replica_counts(std::span<const double> load, std::int32_t redundant) {
  std::vector<std::int32_t> cnt(load.size(), 1);
  if (load.empty()) return cnt;
  // per[e] = load[e] / cnt[e], updated when cnt[e] changes: the quotients the rule compares.
  std::vector<double> per(load.begin(), load.end());
  for (std::int32_t r = 0; r < redundant; ++r) {
    std::size_t best = 0;
    double top = per[0];
    for (std::size_t e = 1; e < per.size(); ++e)
      if (per[e] > top) top = per[e], best = e;
    ++cnt[best];
    per[best] = load[best] / cnt[best];
  }
  return cnt;
}

/// `total` split into integers in proportion to `weight` (largest remainder; ties to the lower
/// index), each at least 1 when total >= the number of weights.
inline std::vector<std::int32_t> proportional_counts(std::span<const double> weight, std::int32_t total) {
  const auto n = static_cast<std::int32_t>(weight.size());
  std::vector<std::int32_t> out(weight.size(), 0);
  if (n == 0) return out;
  const std::int32_t floor_each = total >= n ? 1 : 0;
  double sum = 0;
  for (double w : weight) sum += w;
  const std::int32_t rest = total - floor_each * n;
  std::vector<double> frac(weight.size());
  std::int32_t given = 0;
  for (std::int32_t g = 0; g < n; ++g) {
    const double want = sum > 0 ? rest * weight[g] / sum : static_cast<double>(rest) / n;
    out[g] = floor_each + static_cast<std::int32_t>(std::floor(want));
    frac[g] = want - std::floor(want);
    given += out[g];
  }
  std::vector<std::int32_t> order(weight.size());
  for (std::int32_t g = 0; g < n; ++g) order[g] = g;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return frac[a] > frac[b]; });
  for (std::int32_t k = 0; given < total; ++k, ++given) ++out[order[k % n]];
  return out;
}

/// Per expert: mean and standard deviation of its load over `steps`.
inline void step_stats(const std::vector<std::vector<double>>& steps, std::size_t E, std::vector<double>& mean,
                       std::vector<double>& sd) {
  mean.assign(E, 0.0);
  sd.assign(E, 0.0);
  if (steps.empty()) return;
  for (const auto& row : steps)
    for (std::size_t e = 0; e < E; ++e) mean[e] += row[e];
  for (auto& m : mean) m /= static_cast<double>(steps.size());
  for (const auto& row : steps)
    for (std::size_t e = 0; e < E; ++e) sd[e] += (row[e] - mean[e]) * (row[e] - mean[e]);
  for (auto& s : sd) s = std::sqrt(s / static_cast<double>(steps.size()));
}

}  // namespace gem::detail
