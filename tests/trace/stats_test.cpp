// Trace statistics against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "gem/trace/batching.hpp"
#include "gem/trace/stats.hpp"

TEST_CASE("skew statistics: max and min over mean, and the Zipf exponent of an exact power law") {
  // One step; expert r (0-based) gets round(1e6 * (r+1)^-0.7) tokens.
  const int E = 16;
  std::vector<std::int64_t> c(E);
  double sum = 0;
  for (int r = 0; r < E; ++r) sum += static_cast<double>(c[r] = std::llround(1e6 * std::pow(r + 1.0, -0.7)));
  const gem::routing_trace t(1, 1, E, c);
  const auto st = gem::compute_layer_stats(t, gem::layer_id{0});
  CHECK(st.max_over_mean == doctest::Approx(1e6 / (sum / E)));
  CHECK(st.min_over_mean == doctest::Approx(static_cast<double>(c[E - 1]) / (sum / E)));
  CHECK(st.zipf_exponent == doctest::Approx(0.7).epsilon(1e-4));
  CHECK_FALSE(st.top_pair_share.has_value());
}

TEST_CASE("hot-set persistence is the mean Jaccard of consecutive hot sets") {
  // 4 experts, steps of 40 tokens (hot at >= 15): hot sets {0,1}, {0,2}, {0,2}, {3}.
  const gem::routing_trace t(1, 4, 4, {15, 15, 5, 5, 15, 5, 15, 5, 20, 0, 20, 0, 5, 5, 5, 25});
  const auto st = gem::compute_layer_stats(t, gem::layer_id{0});
  CHECK(st.hot_set_persistence == doctest::Approx((1.0 / 3 + 1.0 + 0.0) / 3));
  CHECK(st.hot_per_step == doctest::Approx((2 + 2 + 2 + 1) / 4.0));
}

TEST_CASE("pair concentration is the share of pair counts in the top pairs") {
  // 4 experts, top-2: pairs {0,1} x5, {2,3} x2, {0,2} x1 -> pair counts 5, 2, 1, 0, 0, 0.
  gem::token_routing tok{.top_k = 2, .num_tokens = 8, .ids = {0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 2, 3, 3, 2, 0, 2}};
  const auto t = gem::batch_tokens(1, 4, tok, {.tokens_per_step = 8});
  const auto st = gem::compute_layer_stats(t, gem::layer_id{0}, {.top_pair_fraction = 2.0 / 6});
  REQUIRE(st.top_pair_share.has_value());
  CHECK(*st.top_pair_share == doctest::Approx(7.0 / 8));
  const auto all = gem::compute_stats(t, {.top_pair_fraction = 1.0 / 6});
  CHECK(*all.layers[0].top_pair_share == doctest::Approx(5.0 / 8));
  CHECK(*all.mean.top_pair_share == doctest::Approx(5.0 / 8));
  std::ostringstream out;
  const std::int32_t names[] = {7};
  gem::write_stats(out, all, names);
  CHECK(out.str().find("\n    7  ") != std::string::npos);
  CHECK(out.str().find(" mean  ") != std::string::npos);
}
