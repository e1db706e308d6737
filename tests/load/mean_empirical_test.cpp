// mean_load and empirical_load against direct float64 tallies of the counts; seeded subsampling is
// deterministic, uniform-looking and within the range.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "gem/load/coactivation.hpp"
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

namespace {

// A trace with per-token routing: `tokens_per_step[s]` tokens in step s, each choosing top_k
// distinct experts at random in every layer.
gem::routing_trace random_tokens(std::mt19937& rng, int layers, int experts, int top_k, const std::vector<int>& tokens_per_step) {
  gem::token_routing tok{.top_k = top_k};
  tok.step_offsets = {0};
  for (int n : tokens_per_step) tok.step_offsets.push_back(tok.step_offsets.back() + n);
  tok.num_tokens = tok.step_offsets.back();
  std::vector<int> pick(static_cast<std::size_t>(experts));
  for (int l = 0; l < layers; ++l)
    for (std::int64_t t = 0; t < tok.num_tokens; ++t) {
      std::iota(pick.begin(), pick.end(), 0);
      std::shuffle(pick.begin(), pick.end(), rng);
      tok.ids.insert(tok.ids.end(), pick.begin(), pick.begin() + top_k);
    }
  return gem::routing_trace::from_tokens(layers, experts, std::move(tok));
}

// Tokens of expert e at layer l among tokens [t0, t1), tallied from the ids.
double tally(const gem::routing_trace& tr, int l, int e, std::int64_t t0, std::int64_t t1) {
  const auto& tok = *tr.tokens();
  double n = 0;
  for (auto t = t0; t < t1; ++t)
    for (int j = 0; j < tok.top_k; ++j) n += tok.ids[(static_cast<std::size_t>(l) * tok.num_tokens + t) * tok.top_k + j] == e;
  return n;
}

}  // namespace

TEST_CASE("empirical_load's windows cut the range's tokens in order and sum to the range's counts") {
  std::mt19937 rng(5);
  // 10 steps of 64 tokens; the range is steps 3..8 (384 tokens), windows of about 16 tokens: 4 per step.
  const auto tr = random_tokens(rng, 2, 12, 3, std::vector<int>(10, 64));
  const gem::empirical_load m{.first_step = 3, .num_steps = 6, .window_tokens = 16};
  for (int l = 0; l < 2; ++l) {
    const auto got = m.loads(tr, gem::layer_id{l});
    CHECK(got.windows_per_step == 4);
    REQUIRE(got.windows.size() == 24u);
    for (std::size_t w = 0; w < got.windows.size(); ++w)
      for (int e = 0; e < 12; ++e) {
        const std::int64_t t0 = 3 * 64 + static_cast<std::int64_t>(w) * 16;
        CHECK(got.windows[w][e] == tally(tr, l, e, t0, t0 + 16));
      }
    for (int e = 0; e < 12; ++e) {
      double windows = 0, counts = 0;
      for (const auto& w : got.windows) windows += w[e];
      for (int s = 3; s < 9; ++s) counts += static_cast<double>(tr.count(gem::layer_id{l}, s, gem::expert_id{e}));
      CHECK(windows == counts);
    }
    // Steps and mean are what they are without windows.
    const auto plain = gem::empirical_load{.first_step = 3, .num_steps = 6}.loads(tr, gem::layer_id{l});
    CHECK(got.steps == plain.steps);
    CHECK(got.mean == plain.mean);
    CHECK(plain.windows.empty());
    CHECK(plain.windows_per_step == 0);
    // grouped_load (what the evaluation uses) passes the base model's windows on.
    const gem::grouped_load<gem::empirical_load, gem::token_pair_coactivation> grouped{
        .base = m, .coactivation = {.first_step = 3, .num_steps = 6}};
    const auto g = grouped.loads(tr, gem::layer_id{l});
    CHECK(g.windows == got.windows);
    CHECK(g.windows_per_step == 4);
  }
}

TEST_CASE("empirical_load's windows hold a whole fraction of a step and drop the range's last tokens") {
  std::mt19937 rng(6);
  // Steps of 50, 70 and 60 tokens: 180 tokens, mean 60 per step; window_tokens 25 -> 2 per step
  // (60 / 25 = 2.4), 6 windows of 30 tokens, nothing dropped. window_tokens 7 -> 9 per step
  // (8.57 rounds to 9), 27 windows of 6 tokens (162), the last 18 tokens dropped.
  const auto tr = random_tokens(rng, 1, 8, 2, {50, 70, 60});
  const auto two = gem::empirical_load{.window_tokens = 25}.loads(tr, gem::layer_id{0});
  CHECK(two.windows_per_step == 2);
  CHECK(two.windows.size() == 6u);
  const auto nine = gem::empirical_load{.window_tokens = 7}.loads(tr, gem::layer_id{0});
  CHECK(nine.windows_per_step == 9);
  REQUIRE(nine.windows.size() == 27u);
  for (std::size_t w = 0; w < nine.windows.size(); ++w)
    for (int e = 0; e < 8; ++e) CHECK(nine.windows[w][e] == tally(tr, 0, e, static_cast<std::int64_t>(w) * 6, static_cast<std::int64_t>(w + 1) * 6));
  // A window larger than a step: one window per step, of the step's mean length.
  const auto big = gem::empirical_load{.window_tokens = 1000}.loads(tr, gem::layer_id{0});
  CHECK(big.windows_per_step == 1);
  CHECK(big.windows.size() == 3u);
  double total = 0;
  for (const auto& w : big.windows)
    for (double x : w) total += x;
  CHECK(total == 180.0 * 2);
}

TEST_CASE("empirical_load rejects a negative window size, and windows of a trace without token routing") {
  std::mt19937 rng(7);
  const auto counts = random_counts(rng, 1, 4, 3);
  CHECK_THROWS_WITH_AS((void)gem::empirical_load{.window_tokens = -1}.loads(random_tokens(rng, 1, 4, 2, {8, 8}), gem::layer_id{0}),
                       doctest::Contains("window_tokens must be >= 0"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::empirical_load{.window_tokens = 16}.loads(counts, gem::layer_id{0}),
                       doctest::Contains("no per-token routing"), gem::config_error);
  CHECK(gem::empirical_load{}.loads(counts, gem::layer_id{0}).windows.empty());
}
