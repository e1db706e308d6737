// decayed_load and decayed_load_tracker against a brute-force float64 weighted mean.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "gem/load/decayed_load.hpp"
#include "gem/load/mean_load.hpp"

namespace {

gem::routing_trace random_counts(std::mt19937& rng, int layers, int steps, int experts) {
  std::vector<std::int64_t> c(static_cast<std::size_t>(layers) * steps * experts);
  for (auto& x : c) x = std::uniform_int_distribution<int>(0, 40)(rng);
  return {layers, steps, experts, std::move(c)};
}

}  // namespace

TEST_CASE("decayed load is the weighted mean with weight one half per half life of age") {
  std::mt19937 rng(8);
  for (int trial = 0; trial < 20; ++trial) {
    const int L = 2, S = 5 + trial, E = 3 + trial % 4;
    const double h = 0.5 + trial * 0.7;
    const auto tr = random_counts(rng, L, S, E);
    const auto got = gem::decayed_load{.half_life_steps = h}.loads(tr, gem::layer_id{1});
    CHECK(got.steps.empty());
    for (int e = 0; e < E; ++e) {
      double num = 0, den = 0;
      for (int s = 0; s < S; ++s) {
        const double w = std::pow(2.0, -(S - 1 - s) / h);  // age (S-1-s) steps
        num += w * static_cast<double>(tr.count(gem::layer_id{1}, s, gem::expert_id{e}));
        den += w;
      }
      CHECK(got.mean[e] == doctest::Approx(num / den).epsilon(1e-12));
    }
  }
}

TEST_CASE("the online tracker reaches the model's loads step by step, and a huge half life gives the mean") {
  std::mt19937 rng(9);
  const auto tr = random_counts(rng, 1, 30, 6);
  gem::decayed_load_tracker tracker(6, 4.0);
  CHECK(tracker.mean() == std::vector<double>(6, 0.0));
  for (int s = 0; s < 30; ++s) {
    tracker.observe(tr.step_counts(gem::layer_id{0}, s));
    const auto model = gem::decayed_load{.half_life_steps = 4.0, .num_steps = s + 1}.loads(tr, gem::layer_id{0});
    for (int e = 0; e < 6; ++e) CHECK(tracker.mean()[e] == doctest::Approx(model.mean[e]).epsilon(1e-12));
  }
  CHECK(tracker.steps() == 30);
  const auto flat = gem::decayed_load{.half_life_steps = 1e12}.loads(tr, gem::layer_id{0}).mean;
  const auto mean = gem::mean_load{}.loads(tr, gem::layer_id{0}).mean;
  for (int e = 0; e < 6; ++e) CHECK(flat[e] == doctest::Approx(mean[e]).epsilon(1e-9));
}

TEST_CASE("decayed load keeps the most recent steps on request and rejects bad arguments") {
  std::mt19937 rng(10);
  const auto tr = random_counts(rng, 1, 10, 3);
  const auto got = gem::decayed_load{.first_step = 2, .num_steps = 6, .recent_steps = 3}.loads(tr, gem::layer_id{0});
  REQUIRE(got.steps.size() == 3u);
  for (int i = 0; i < 3; ++i)
    for (int e = 0; e < 3; ++e) CHECK(got.steps[i][e] == static_cast<double>(tr.count(gem::layer_id{0}, 5 + i, gem::expert_id{e})));
  CHECK_THROWS_AS((void)gem::decayed_load{.half_life_steps = 0}.loads(tr, gem::layer_id{0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::decayed_load{.half_life_steps = -1}.loads(tr, gem::layer_id{0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::decayed_load{}.loads(tr, gem::layer_id{1}), gem::config_error);
  CHECK_THROWS_AS(gem::decayed_load_tracker(0, 1.0), gem::config_error);
  gem::decayed_load_tracker t(3, 2.0);
  const std::vector<std::int64_t> wrong(4, 1);
  CHECK_THROWS_AS(t.observe(wrong), gem::config_error);
}
