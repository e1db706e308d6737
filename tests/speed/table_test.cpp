// Tests of the `table` speed model: exact at the points, linear (or tile-ceiling) in between,
// linear extrapolation beyond the last point, monotone everywhere, additive over experts with the
// per-active-expert cost; the O(1) regular-grid lookup checked against a brute-force reference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gem/speed/gpu_count.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/table.hpp"

using gem::gpu_id;
using gem::table;
using gem::table_gpu;
using gem::table_interpolation;
using gem::work;

namespace {

double one(const table& t, int g, double r) {
  const std::vector<double> rows{r};
  return t.seconds(gpu_id{g}, work{rows});
}

// Reference f(r) by a linear scan over the points, written from the documentation.
double reference_point_seconds(const table_gpu& t, table_interpolation mode, double r) {
  const auto& x = t.rows;
  const auto& y = t.seconds;
  const std::size_t n = x.size();
  if (r > x[n - 1]) {
    const double slope = n == 1 ? y[0] / x[0] : (y[n - 1] - y[n - 2]) / (x[n - 1] - x[n - 2]);
    return y[n - 1] + slope * (r - x[n - 1]);
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (r == x[k]) return y[k];
    if (r < x[k]) {
      if (mode == table_interpolation::tile_ceiling) return y[k];
      const double x0 = k == 0 ? 0.0 : x[k - 1];
      const double y0 = k == 0 ? 0.0 : y[k - 1];
      return y0 + (y[k] - y0) * (r - x0) / (x[k] - x0);
    }
  }
  return y[n - 1];
}

table_gpu random_table(std::mt19937_64& rng, bool regular) {
  table_gpu t;
  const int n = 1 + static_cast<int>(rng() % 12);
  const double bm = regular ? static_cast<double>(16 << (rng() % 4)) : 0;
  double r = 0, s = static_cast<double>(rng() % 100) * 1e-6;
  for (int k = 0; k < n; ++k) {
    r = regular ? (k == 0 ? 1.0 : k * bm) : r + 1 + static_cast<double>(rng() % 200) / 3.0;
    s += static_cast<double>(rng() % 50) * 1e-6 * (rng() % 5 == 0 ? 0 : 1);  // flat stretches too
    t.rows.push_back(r);
    t.seconds.push_back(s);
  }
  t.seconds_per_active_expert = static_cast<double>(rng() % 30) * 1e-6;
  return t;
}

const table_gpu h200_like{.rows = {1, 128, 256, 384, 512},
                          .seconds = {4e-6, 6e-6, 10e-6, 13e-6, 17e-6},
                          .seconds_per_active_expert = 20e-6};

}  // namespace

TEST_CASE("a table is exact at its points and linear between them") {
  const table t({h200_like});
  for (std::size_t k = 0; k < h200_like.rows.size(); ++k)
    CHECK(one(t, 0, h200_like.rows[k]) == 20e-6 + h200_like.seconds[k]);
  // Hand-computed: 192 rows are halfway between 128 (6 us) and 256 (10 us).
  CHECK(one(t, 0, 192) == doctest::Approx(20e-6 + 8e-6).epsilon(1e-12));
  // 64.5 rows: 4 + (6 - 4) * (63.5 / 127) = 5 us.
  CHECK(one(t, 0, 64.5) == doctest::Approx(20e-6 + 5e-6).epsilon(1e-12));
  // 400 rows: 13 + 4 * 16 / 128 = 13.5 us.
  CHECK(one(t, 0, 400) == doctest::Approx(20e-6 + 13.5e-6).epsilon(1e-12));
  // Below the first point: from (0, 0) to (1, 4 us); an expert with rows > 0 pays the fixed cost.
  CHECK(one(t, 0, 0.25) == doctest::Approx(20e-6 + 1e-6).epsilon(1e-12));
  CHECK(one(t, 0, 0) == 0.0);
  CHECK(t.expert_seconds(gpu_id{0}, 192) == one(t, 0, 192));
  CHECK(t.expert_seconds(gpu_id{0}, -3) == 0.0);
}

TEST_CASE("in tile-ceiling mode a table charges the next tile boundary's latency") {
  const table t({h200_like}, table_interpolation::tile_ceiling);
  CHECK(t.interpolation() == table_interpolation::tile_ceiling);
  CHECK(one(t, 0, 0.5) == 20e-6 + 4e-6);
  CHECK(one(t, 0, 2) == 20e-6 + 6e-6);
  CHECK(one(t, 0, 128) == 20e-6 + 6e-6);
  CHECK(one(t, 0, 129) == 20e-6 + 10e-6);
  CHECK(one(t, 0, 511.5) == 20e-6 + 17e-6);
}

TEST_CASE("a table extrapolates beyond its last point with the last segment's slope") {
  for (auto mode : {table_interpolation::linear, table_interpolation::tile_ceiling}) {
    const table t({h200_like}, mode);
    // Slope of the last two points: 4 us per 128 rows.
    CHECK(one(t, 0, 640) == doctest::Approx(20e-6 + 21e-6).epsilon(1e-12));
    CHECK(one(t, 0, 4096) == doctest::Approx(20e-6 + 17e-6 + 4e-6 * (4096.0 - 512) / 128).epsilon(1e-12));
  }
  // A single point extrapolates proportionally: 3 us at 64 rows -> 6 us at 128.
  const table single({table_gpu{.rows = {64}, .seconds = {3e-6}, .seconds_per_active_expert = 0}});
  CHECK(one(single, 0, 128) == doctest::Approx(6e-6).epsilon(1e-12));
  CHECK(one(single, 0, 32) == doctest::Approx(1.5e-6).epsilon(1e-12));
}

TEST_CASE("a table sums its experts' latencies and the fixed cost of each active expert") {
  const table_gpu slow{.rows = {1, 64}, .seconds = {2e-6, 8e-6}, .seconds_per_active_expert = 1e-6};
  const table t({h200_like, slow});
  const std::vector<double> rows{128, 0, 1, 256};
  CHECK(t.seconds(gpu_id{0}, work{rows}) == doctest::Approx(3 * 20e-6 + 6e-6 + 4e-6 + 10e-6).epsilon(1e-12));
  // GPU 1 extrapolates 128 and 256 rows with 6 us / 63 rows.
  const double f128 = 8e-6 + 6e-6 / 63 * 64, f256 = 8e-6 + 6e-6 / 63 * 192;
  CHECK(t.seconds(gpu_id{1}, work{rows}) == doctest::Approx(3 * 1e-6 + f128 + 2e-6 + f256).epsilon(1e-12));
  CHECK(t.seconds(gpu_id{1}, work{}) == 0.0);
  CHECK(t.num_gpus() == 2);
  CHECK(gem::model_gpus(t) == 2);
}

TEST_CASE("table lookups match a brute-force reference on random regular and irregular grids") {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 400; ++trial) {
    const bool regular = trial % 2 == 0;
    const auto tg = random_table(rng, regular);
    for (auto mode : {table_interpolation::linear, table_interpolation::tile_ceiling}) {
      const table t({tg}, mode);
      const double top = tg.rows.back() * 1.5 + 10;
      for (int q = 0; q < 40; ++q) {
        // Probe points, tile boundaries and arbitrary rows.
        double r = q < 10 ? tg.rows[rng() % tg.rows.size()] : static_cast<double>(rng() % 100000) / 100000.0 * top;
        if (q % 7 == 0) r = std::floor(r);
        const double want = r > 0 ? tg.seconds_per_active_expert + reference_point_seconds(tg, mode, r) : 0.0;
        CHECK(one(t, 0, r) == doctest::Approx(want).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("table time never decreases when an expert's rows grow") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 300; ++trial) {
    const auto tg = random_table(rng, trial % 3 != 0);
    for (auto mode : {table_interpolation::linear, table_interpolation::tile_ceiling}) {
      const table t({tg}, mode);
      std::vector<double> probes;
      for (int q = 0; q < 60; ++q) probes.push_back(static_cast<double>(rng() % 200000) / 100.0);
      for (double r : tg.rows) probes.insert(probes.end(), {r, std::nextafter(r, 0.0), std::nextafter(r, 1e9)});
      std::sort(probes.begin(), probes.end());
      for (std::size_t k = 1; k < probes.size(); ++k) CHECK(one(t, 0, probes[k - 1]) <= one(t, 0, probes[k]));
    }
  }
}

TEST_CASE("scaled over a table multiplies its latencies") {
  const table t({h200_like, h200_like});
  const auto s = gem::scale(t, {1.0, 1.277});
  const std::vector<double> rows{100, 300};
  CHECK(s.seconds(gpu_id{1}, work{rows}) == 1.277 * t.seconds(gpu_id{1}, work{rows}));
  CHECK_THROWS_AS((void)gem::scale(t, {1.0, 1.0, 1.0}), gem::config_error);
}

TEST_CASE("invalid tables are rejected naming the GPU and the field") {
  using T = std::vector<table_gpu>;
  CHECK_THROWS_WITH_AS(table(T{}), doctest::Contains("gpus is empty"), gem::config_error);
  CHECK_THROWS_WITH_AS(table(T{h200_like, table_gpu{}}), doctest::Contains("gpus[1].rows is empty"), gem::config_error);
  auto bad = h200_like;
  bad.seconds.pop_back();
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].seconds holds 4 values for 5 rows"), gem::config_error);
  bad = h200_like;
  bad.rows[2] = 128;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].rows[2]"), gem::config_error);
  bad = h200_like;
  bad.rows[0] = 0;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].rows[0] must be finite and positive"), gem::config_error);
  bad = h200_like;
  bad.seconds[3] = 9e-6;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].seconds[3]"), gem::config_error);
  bad = h200_like;
  bad.seconds[1] = NAN;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].seconds[1] must be finite"), gem::config_error);
  bad = h200_like;
  bad.seconds[0] = -1e-6;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].seconds[0]"), gem::config_error);
  bad = h200_like;
  bad.rows[4] = INFINITY;
  CHECK_THROWS_WITH_AS(table(T{bad}), doctest::Contains("gpus[0].rows[4]"), gem::config_error);
  bad = h200_like;
  bad.seconds_per_active_expert = -1;
  CHECK_THROWS_WITH_AS(table(T{h200_like, bad}), doctest::Contains("gpus[1].seconds_per_active_expert"),
                       gem::config_error);
}

// The evaluator's fluid bound needs: merging two of a GPU's experts into one never increases its
// time. A table whose latency is concave in rows (per-row cost not growing), read linearly, has it.
TEST_CASE("merging two experts' rows never increases a concave table's time") {
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 200; ++trial) {
    table_gpu tg;
    const double bm = 64.0 * static_cast<double>(1 + rng() % 4);
    double slope = 1e-6 * static_cast<double>(1 + rng() % 100);
    double s = 0, prev = 0;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 10); ++k) {
      const double r = k == 0 ? 1.0 : k * bm;
      s += slope * (r - prev);
      prev = r;
      tg.rows.push_back(r);
      tg.seconds.push_back(s);
      slope *= static_cast<double>(rng() % 101) / 100.0;  // non-increasing slopes
    }
    tg.seconds_per_active_expert = static_cast<double>(rng() % 3) * 1e-5;
    const table t({tg});
    for (int q = 0; q < 50; ++q) {
      const double a = static_cast<double>(1 + rng() % 5000) / (q % 2 ? 1.0 : 8.0);
      const double b = static_cast<double>(1 + rng() % 5000) / (q % 3 ? 1.0 : 8.0);
      const std::vector<double> apart{a, b};
      const std::vector<double> merged{a + b, 0};
      CHECK(t.seconds(gpu_id{0}, work{merged}) <= t.seconds(gpu_id{0}, work{apart}) * (1 + 1e-12));
    }
  }
}
