// mean_load and empirical_load against direct float64 tallies of the counts; seeded subsampling is
// deterministic, uniform-looking and within the range.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "gem/load/empirical_load.hpp"
#include "gem/load/mean_load.hpp"

namespace {

gem::routing_trace random_counts(std::mt19937& rng, int layers, int steps, int experts) {
  std::vector<std::int64_t> c(static_cast<std::size_t>(layers) * steps * experts);
  for (auto& x : c) x = std::uniform_int_distribution<int>(0, 50)(rng);
  return {layers, steps, experts, std::move(c)};
}

}  // namespace

TEST_CASE("mean_load is the per-expert mean over the chosen step range") {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    const int L = 1 + trial % 3, S = 3 + trial, E = 4 + trial % 5;
    const auto tr = random_counts(rng, L, S, E);
    const int first = trial % 3, count = trial % 2 ? 0 : 2;
    const int end = count ? first + count : S;
    for (int l = 0; l < L; ++l) {
      const auto got = gem::mean_load{.first_step = first, .num_steps = count}.loads(tr, gem::layer_id{l});
      REQUIRE(got.mean.size() == static_cast<std::size_t>(E));
      CHECK(got.steps.empty());
      CHECK(got.groups.empty());
      for (int e = 0; e < E; ++e) {
        double sum = 0;
        for (int s = first; s < end; ++s) sum += static_cast<double>(tr.count(gem::layer_id{l}, s, gem::expert_id{e}));
        CHECK(got.mean[e] == doctest::Approx(sum / (end - first)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("mean_load and empirical_load reject a layer or step range outside the trace") {
  std::mt19937 rng(2);
  const auto tr = random_counts(rng, 2, 5, 3);
  CHECK_THROWS_AS((void)gem::mean_load{}.loads(tr, gem::layer_id{2}), gem::config_error);
  const gem::mean_load past_end{.first_step = 4, .num_steps = 2};
  CHECK_THROWS_AS((void)past_end.loads(tr, gem::layer_id{0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::empirical_load{}.loads(tr, gem::layer_id{-1}), gem::config_error);
  CHECK_THROWS_AS((void)gem::empirical_load{.first_step = 6}.loads(tr, gem::layer_id{0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::empirical_load{.max_steps = -1}.loads(tr, gem::layer_id{0}), gem::config_error);
}

TEST_CASE("empirical_load returns every step of the range in order, with the range mean") {
  std::mt19937 rng(3);
  const auto tr = random_counts(rng, 2, 9, 4);
  const auto got = gem::empirical_load{.first_step = 2, .num_steps = 5}.loads(tr, gem::layer_id{1});
  REQUIRE(got.steps.size() == 5u);
  for (int i = 0; i < 5; ++i)
    for (int e = 0; e < 4; ++e)
      CHECK(got.steps[i][e] == static_cast<double>(tr.count(gem::layer_id{1}, 2 + i, gem::expert_id{e})));
  const auto mean = gem::mean_load{.first_step = 2, .num_steps = 5}.loads(tr, gem::layer_id{1}).mean;
  CHECK(got.mean == mean);
}

TEST_CASE("empirical_load subsamples distinct steps, deterministic in the seed and covering the range evenly") {
  std::mt19937 rng(4);
  const auto tr = random_counts(rng, 1, 40, 3);
  const gem::empirical_load m{.first_step = 10, .max_steps = 7, .seed = 99};
  const auto a = m.selected_steps(tr);
  CHECK(a == m.selected_steps(tr));
  REQUIRE(a.size() == 7u);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::set<std::int32_t>(a.begin(), a.end()).size() == 7u);
  for (auto s : a) CHECK((s >= 10 && s < 40));
  const auto loads = m.loads(tr, gem::layer_id{0});
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(loads.steps[i][1] == static_cast<double>(tr.count(gem::layer_id{0}, a[i], gem::expert_id{1})));
  // Over many seeds every step of the range is drawn about equally often (7/30 of the time).
  std::vector<int> hits(40, 0);
  const int seeds = 3000;
  for (int seed = 0; seed < seeds; ++seed)
    for (auto s : gem::empirical_load{.first_step = 10, .max_steps = 7, .seed = static_cast<std::uint64_t>(seed)}
                      .selected_steps(tr))
      ++hits[s];
  for (int s = 0; s < 10; ++s) CHECK(hits[s] == 0);
  for (int s = 10; s < 40; ++s) CHECK(std::abs(hits[s] / double(seeds) - 7.0 / 30.0) < 0.04);
  CHECK(gem::empirical_load{.max_steps = 100}.selected_steps(tr).size() == 40u);
}
