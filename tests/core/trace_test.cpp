#include <doctest/doctest.h>

#include <random>

#include "gem/trace.hpp"

using gem::layer_id;
using gem::expert_id;
using gem::routing_trace;
using gem::token_routing;

namespace {

// Random top-k routing (distinct ids per token) for `layers` layers and the given step sizes.
token_routing random_tokens(std::mt19937& rng, int layers, int experts, int k, const std::vector<std::int64_t>& step_sizes) {
  token_routing t;
  t.top_k = k;
  t.step_offsets = {0};
  for (auto s : step_sizes) t.step_offsets.push_back(t.step_offsets.back() + s);
  t.num_tokens = t.step_offsets.back();
  std::vector<std::int32_t> pool(experts);
  for (int l = 0; l < layers; ++l)
    for (std::int64_t tok = 0; tok < t.num_tokens; ++tok) {
      for (int e = 0; e < experts; ++e) pool[e] = e;
      std::shuffle(pool.begin(), pool.end(), rng);
      for (int j = 0; j < k; ++j) {
        t.ids.push_back(pool[j]);
        t.weights.push_back(std::uniform_real_distribution<float>(0.f, 1.f)(rng));
      }
    }
  return t;
}

}  // namespace

TEST_CASE("counts built from tokens equal a direct tally and conserve tokens x top_k per step") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int layers = 1 + trial % 3, experts = 4 + trial, k = 1 + trial % 4;
    std::vector<std::int64_t> sizes;
    for (int s = 0; s < 5; ++s) sizes.push_back(std::uniform_int_distribution<int>(0, 9)(rng));
    auto tok = random_tokens(rng, layers, experts, k, sizes);
    const auto tr = routing_trace::from_tokens(layers, experts, tok);
    REQUIRE(tr.num_steps() == 5);
    for (int l = 0; l < layers; ++l)
      for (int s = 0; s < 5; ++s) {
        std::int64_t sum = 0;
        for (int e = 0; e < experts; ++e) {
          std::int64_t direct = 0;
          for (auto t = tok.step_offsets[s]; t < tok.step_offsets[s + 1]; ++t)
            for (int j = 0; j < k; ++j) direct += tok.ids[(l * tok.num_tokens + t) * k + j] == e;
          CHECK(tr.count(layer_id{l}, s, expert_id{e}) == direct);
          sum += direct;
        }
        CHECK(sum == sizes[s] * k);
      }
  }
}

TEST_CASE("layer totals sum each expert over steps") {
  routing_trace tr(1, 2, 3, {1, 2, 3, 10, 20, 30});
  CHECK(tr.layer_totals(layer_id{0}) == std::vector<std::int64_t>{11, 22, 33});
  CHECK(tr.step_counts(layer_id{0}, 1)[2] == 30);
}

TEST_CASE("malformed traces are rejected naming what is wrong") {
  CHECK_THROWS_WITH_AS(routing_trace(1, 2, 3, {1, 2, 3}), doctest::Contains("expected layers x steps x experts = 6"),
                       gem::config_error);
  CHECK_THROWS_WITH_AS(routing_trace(1, 1, 3, {1, -2, 3}), doctest::Contains("negative count at layer 0 step 0 expert 1"),
                       gem::config_error);
  token_routing t{.top_k = 2, .num_tokens = 1, .ids = {0, 5}, .weights = {}, .step_offsets = {0, 1}};
  CHECK_THROWS_WITH_AS(routing_trace::from_tokens(1, 4, t), doctest::Contains("expert id 5 out of range"),
                       gem::config_error);
  t.ids = {1, 1};
  CHECK_THROWS_WITH_AS(routing_trace::from_tokens(1, 4, t), doctest::Contains("token 0: expert 1 chosen twice"),
                       gem::config_error);
  t.ids = {1, 2};
  CHECK_THROWS_WITH_AS(routing_trace(1, 1, 4, {0, 1, 0, 1}, t),
                       doctest::Contains("counts disagree with token routing at layer 0 step 0 expert 2"),
                       gem::config_error);
}
