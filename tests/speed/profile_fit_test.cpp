// Tests of gem/speed/profile_fit.hpp: the non-negative least-squares solver against brute force
// over every active set, recovery of a known additive table from skewed mixes (exact and with
// measurement noise), valid monotone profiles from non-additive timings, the mix generator's
// invariants and determinism, and errors naming bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gem/speed/profile_fit.hpp"

using gem::profile_observation;

namespace {

// The additive truth: c + piecewise-linear f through (knot, value) pairs, f(knots[0]) = 0, linear
// extrapolation beyond the last knot (written from the table's documentation, not its code).
struct truth {
  double c;
  std::vector<double> knots, values;
  double step = 0;  // fixed cost of a phase with any active expert
  double expert(double r) const {
    if (!(r > 0)) return 0;
    if (r <= knots[0]) return c + values[0] * r / knots[0];
    for (std::size_t k = 1; k < knots.size(); ++k)
      if (r <= knots[k])
        return c + values[k - 1] + (values[k] - values[k - 1]) * (r - knots[k - 1]) / (knots[k] - knots[k - 1]);
    const auto n = knots.size();
    return c + values[n - 1] + (values[n - 1] - values[n - 2]) / (knots[n - 1] - knots[n - 2]) * (r - knots[n - 1]);
  }
  double phase(const std::vector<double>& rows) const {
    double s = 0;
    bool any = false;
    for (double r : rows) s += expert(r), any = any || r > 0;
    return s + (any ? step : 0.0);
  }
};

std::vector<double> as_double(const std::vector<std::int32_t>& v) { return {v.begin(), v.end()}; }

const std::vector<double> knots{1, 8, 16, 32, 64, 128, 256, 384, 512};

truth h200_like() {  // weight read ~14 us per expert, then ~0.1 us per row from a knee
  return {.c = 14e-6, .knots = knots, .values = {0, 0.2e-6, 0.5e-6, 1.2e-6, 3e-6, 9e-6, 21e-6, 33e-6, 45e-6},
          .step = 30e-6};
}

double lcg_uniform(std::uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<double>(s >> 11) * 0x1.0p-53;
}

}  // namespace

TEST_CASE("nnls matches brute force over every active set") {
  std::uint64_t s = 12345;
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t rows = 6 + trial % 7, cols = 1 + trial % 5;
    std::vector<double> A(rows * cols), b(rows);
    for (auto& v : A) v = lcg_uniform(s) * 2 - 0.5;
    for (auto& v : b) v = lcg_uniform(s) * 2 - 1;
    const auto x = gem::detail::nnls(A, b, rows, cols);
    const auto residual = [&](const std::vector<double>& y) {
      double r = 0;
      for (std::size_t i = 0; i < rows; ++i) {
        double e = -b[i];
        for (std::size_t j = 0; j < cols; ++j) e += A[i * cols + j] * y[j];
        r += e * e;
      }
      return r;
    };
    // Reference: every subset of free columns, unconstrained least squares by normal equations
    // (Cramer-free Gaussian elimination written here), kept when feasible.
    double best = residual(std::vector<double>(cols, 0.0));
    for (std::uint32_t mask = 1; mask < (1u << cols); ++mask) {
      std::vector<std::size_t> p;
      for (std::size_t j = 0; j < cols; ++j)
        if (mask >> j & 1) p.push_back(j);
      const auto n = p.size();
      std::vector<std::vector<double>> M(n, std::vector<double>(n + 1, 0.0));
      for (std::size_t a = 0; a < n; ++a) {
        for (std::size_t c = 0; c < n; ++c)
          for (std::size_t i = 0; i < rows; ++i) M[a][c] += A[i * cols + p[a]] * A[i * cols + p[c]];
        for (std::size_t i = 0; i < rows; ++i) M[a][n] += A[i * cols + p[a]] * b[i];
      }
      bool ok = true;
      for (std::size_t c = 0; c < n && ok; ++c) {
        std::size_t piv = c;
        for (std::size_t r = c + 1; r < n; ++r)
          if (std::abs(M[r][c]) > std::abs(M[piv][c])) piv = r;
        std::swap(M[c], M[piv]);
        if (std::abs(M[c][c]) < 1e-12) ok = false;
        for (std::size_t r = 0; r < n && ok; ++r)
          if (r != c) {
            const double f = M[r][c] / M[c][c];
            for (std::size_t q = c; q <= n; ++q) M[r][q] -= f * M[c][q];
          }
      }
      if (!ok) continue;
      std::vector<double> y(cols, 0.0);
      bool feasible = true;
      for (std::size_t a = 0; a < n; ++a) {
        y[p[a]] = M[a][n] / M[a][a];
        feasible = feasible && y[p[a]] >= 0;
      }
      if (feasible) best = std::min(best, residual(y));
    }
    for (double v : x) CHECK(v >= 0);
    CHECK(residual(x) <= best * (1 + 1e-7) + 1e-12);
  }
}

TEST_CASE("fit_profile_gpu recovers an additive table from skewed mixes") {
  const auto t = h200_like();
  std::vector<profile_observation> obs;
  for (const auto& m : gem::profile_mixes(96, 18, 256, 7)) obs.push_back({as_double(m), t.phase(as_double(m))});
  const auto g = gem::fit_profile_gpu(obs, knots);
  // Knots beyond the largest row any mix gave are dropped; the rest must come back.
  double most = 0;
  for (const auto& o : obs) most = std::max(most, *std::max_element(o.rows.begin(), o.rows.end()));
  REQUIRE(g.points.size() >= 2);
  CHECK(g.seconds_per_active_expert == doctest::Approx(t.c).epsilon(1e-6));
  CHECK(g.seconds_per_step == doctest::Approx(t.step).epsilon(1e-6));
  for (const auto& p : g.points) {
    if (p.rows > most) continue;
    CHECK(g.seconds_per_active_expert + p.seconds == doctest::Approx(t.expert(p.rows)).epsilon(1e-5));
  }
  const auto q = gem::fit_quality(g, obs);
  CHECK(q.max_error < 1e-6);
}

TEST_CASE("fit_profile_gpu under measurement noise predicts fresh mixes") {
  const auto t = h200_like();
  std::uint64_t s = 99;
  std::vector<profile_observation> fit, fresh;
  for (const auto& m : gem::profile_mixes(64, 18, 256, 1)) {
    const auto r = as_double(m);
    fit.push_back({r, t.phase(r) * (1 + 0.04 * (lcg_uniform(s) - 0.5))});  // +-2% noise
  }
  for (const auto& m : gem::profile_mixes(64, 18, 256, 2)) fresh.push_back({as_double(m), t.phase(as_double(m))});
  const auto g = gem::fit_profile_gpu(fit, knots);
  const auto q = gem::fit_quality(g, fresh);
  CHECK(q.median_error < 0.01);
  CHECK(q.p95_error < 0.03);
  for (std::size_t k = 1; k < g.points.size(); ++k) CHECK(g.points[k].seconds >= g.points[k - 1].seconds);
}

TEST_CASE("fit_profile_gpu gives a valid monotone profile for non-additive timings") {
  // A grouped launch dominated by its largest group: time = 5 us + 0.3 us * max rows * active / 4.
  std::vector<profile_observation> obs;
  for (const auto& m : gem::profile_mixes(48, 12, 128, 3)) {
    const auto r = as_double(m);
    const double active = static_cast<double>(std::count_if(r.begin(), r.end(), [](double v) { return v > 0; }));
    obs.push_back({r, 5e-6 + 0.3e-6 * *std::max_element(r.begin(), r.end()) * active / 4});
  }
  auto g = gem::fit_profile_gpu(obs, knots);
  g.sm_count = 1;
  gem::profile p;
  p.shape = {.hidden = 2048, .intermediate = 1408, .num_experts = 64, .top_k = 6};
  p.tile_rows = 128;
  p.gpus = {g};
  CHECK_NOTHROW(gem::validate_profile(p, "test"));
  CHECK(g.seconds_per_active_expert >= 0);
}

TEST_CASE("profile_mixes: skewed, bounded, deterministic") {
  const auto a = gem::profile_mixes(200, 18, 256, 5);
  CHECK(a == gem::profile_mixes(200, 18, 256, 5));
  CHECK(a != gem::profile_mixes(200, 18, 256, 6));
  REQUIRE(a.size() == 200);
  double skew_sum = 0;
  for (const auto& m : a) {
    REQUIRE(m.size() == 18);
    const auto active = std::count_if(m.begin(), m.end(), [](auto v) { return v > 0; });
    CHECK(active >= 9);
    CHECK(active <= 18);
    std::int64_t total = 0;
    for (auto v : m) {
      CHECK(v >= 0);
      total += v;
    }
    CHECK(total >= active);
    CHECK(total <= active * 256 + 1);
    // Active experts come first; every one of them has at least one row.
    for (std::int64_t e = 0; e < active; ++e) CHECK(m[static_cast<std::size_t>(e)] >= 1);
    skew_sum += static_cast<double>(*std::max_element(m.begin(), m.end())) / (static_cast<double>(total) / static_cast<double>(active));
  }
  CHECK(skew_sum / 200 > 2.0);  // the largest expert carries well over the mean, as in real steps
}

TEST_CASE("fit_profile_gpu names bad input") {
  const std::vector<profile_observation> good{{{3, 4}, 1e-5}};
  const auto message = [](auto f) {
    try {
      f();
    } catch (const gem::config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message([&] { (void)gem::fit_profile_gpu({}, knots); }).find("no observations") != std::string::npos);
  const std::vector<double> one{1};
  CHECK(message([&] { (void)gem::fit_profile_gpu(good, one); }).find("two knots") != std::string::npos);
  const std::vector<double> down{1, 8, 4};
  CHECK(message([&] { (void)gem::fit_profile_gpu(good, down); }).find("knot 2") != std::string::npos);
  const std::vector<profile_observation> nan_rows{{{std::numeric_limits<double>::quiet_NaN()}, 1e-5}};
  CHECK(message([&] { (void)gem::fit_profile_gpu(nan_rows, knots); }).find("observation 0 has rows") != std::string::npos);
  const std::vector<profile_observation> zero_time{{{3}, 1e-5}, {{3}, 0.0}};
  CHECK(message([&] { (void)gem::fit_profile_gpu(zero_time, knots); }).find("observation 1 has seconds") != std::string::npos);
  const std::vector<profile_observation> idle{{{0, 0}, 1e-5}};
  CHECK(message([&] { (void)gem::fit_profile_gpu(idle, knots); }).find("no expert with rows") != std::string::npos);
  CHECK(message([&] { (void)gem::profile_mixes(1, 0, 8, 1); }).find("max_experts") != std::string::npos);
}
