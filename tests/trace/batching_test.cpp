// Step batching: steps are B consecutive tokens, the partial last step follows the chosen rule, and
// assignments are preserved exactly (checked against a direct per-token tally).
#include <doctest/doctest.h>

#include <random>

#include "gem/trace/batching.hpp"

namespace {

gem::token_routing random_routing(std::mt19937& rng, int layers, int experts, int k, std::int64_t n) {
  gem::token_routing t;
  t.top_k = k;
  t.num_tokens = n;
  std::vector<std::int32_t> pool(experts);
  for (int l = 0; l < layers; ++l)
    for (std::int64_t tok = 0; tok < n; ++tok) {
      for (int e = 0; e < experts; ++e) pool[e] = e;
      std::shuffle(pool.begin(), pool.end(), rng);
      for (int j = 0; j < k; ++j) {
        t.ids.push_back(pool[j]);
        t.weights.push_back(static_cast<float>(tok) + 0.25f * j);
      }
    }
  t.step_offsets = {0, n};
  return t;
}

}  // namespace

TEST_CASE("batch offsets cut tokens into steps of B, with the partial last step kept, dropped or rejected") {
  CHECK(gem::batch_offsets(10, {.tokens_per_step = 4}) == std::vector<std::int64_t>{0, 4, 8, 10});
  CHECK(gem::batch_offsets(10, {.tokens_per_step = 4, .last_step = gem::partial_step::drop}) ==
        std::vector<std::int64_t>{0, 4, 8});
  CHECK(gem::batch_offsets(8, {.tokens_per_step = 4, .last_step = gem::partial_step::reject}) ==
        std::vector<std::int64_t>{0, 4, 8});
  CHECK_THROWS_AS((void)gem::batch_offsets(10, {.tokens_per_step = 4, .last_step = gem::partial_step::reject}),
                  gem::config_error);
  CHECK(gem::batch_offsets(0, {.tokens_per_step = 4}) == std::vector<std::int64_t>{0});
  CHECK(gem::batch_offsets(3, {.tokens_per_step = 4, .last_step = gem::partial_step::drop}) ==
        std::vector<std::int64_t>{0});
  CHECK_THROWS_AS((void)gem::batch_offsets(10, {.tokens_per_step = 0}), gem::config_error);
}

TEST_CASE("batching keeps every assignment and each step counts exactly its B tokens") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    const int layers = 1 + trial % 3, experts = 5 + trial, k = 1 + trial % 4;
    const std::int64_t n = std::uniform_int_distribution<std::int64_t>(0, 70)(rng);
    const std::int64_t B = std::uniform_int_distribution<std::int64_t>(1, 16)(rng);
    const auto tok = random_routing(rng, layers, experts, k, n);
    const auto tr = gem::batch_tokens(layers, experts, tok, {.tokens_per_step = B});
    REQUIRE(tr.num_steps() == (n + B - 1) / B);
    CHECK(tr.tokens()->ids == tok.ids);
    CHECK(tr.tokens()->weights == tok.weights);
    for (int l = 0; l < layers; ++l) {
      std::int64_t total = 0;
      for (int s = 0; s < tr.num_steps(); ++s)
        for (int e = 0; e < experts; ++e) {
          std::int64_t direct = 0;
          for (std::int64_t t = s * B; t < std::min(n, (s + 1) * B); ++t)
            for (int j = 0; j < k; ++j) direct += tok.ids[(l * n + t) * k + j] == e;
          CHECK(tr.count(gem::layer_id{l}, s, gem::expert_id{e}) == direct);
          total += direct;
        }
      CHECK(total == n * k);
    }
  }
}

TEST_CASE("dropping the partial last step removes its tokens from both counts and token routing") {
  std::mt19937 rng(5);
  const int layers = 3, experts = 7, k = 2;
  const std::int64_t n = 23, B = 5;
  const auto tok = random_routing(rng, layers, experts, k, n);
  const auto tr = gem::batch_tokens(layers, experts, tok, {.tokens_per_step = B, .last_step = gem::partial_step::drop});
  REQUIRE(tr.num_steps() == 4);
  REQUIRE(tr.tokens()->num_tokens == 20);
  for (int l = 0; l < layers; ++l)
    for (std::int64_t t = 0; t < 20; ++t)
      for (int j = 0; j < k; ++j) {
        CHECK(tr.tokens()->ids[(l * 20 + t) * k + j] == tok.ids[(l * n + t) * k + j]);
        CHECK(tr.tokens()->weights[(l * 20 + t) * k + j] == tok.weights[(l * n + t) * k + j]);
      }
  std::int64_t total = 0;
  for (auto c : tr.counts()) total += c;
  CHECK(total == layers * 20 * k);
}

TEST_CASE("rebatching a trace re-cuts its tokens, and a counts-only trace cannot be rebatched") {
  std::mt19937 rng(3);
  const auto tok = random_routing(rng, 2, 6, 3, 40);
  const auto a = gem::batch_tokens(2, 6, tok, {.tokens_per_step = 8});
  const auto b = gem::rebatch(a, {.tokens_per_step = 16});
  const auto c = gem::batch_tokens(2, 6, tok, {.tokens_per_step = 16});
  CHECK(b == c);
  const gem::routing_trace counts_only(1, 1, 2, {3, 4});
  CHECK_THROWS_AS((void)gem::rebatch(counts_only, {}), gem::config_error);
}

TEST_CASE("malformed routing handed to batching is rejected") {
  gem::token_routing t{.top_k = 2, .num_tokens = 2, .ids = {0, 1, 1, 1}, .weights = {}, .step_offsets = {}};
  CHECK_THROWS_AS((void)gem::batch_tokens(1, 3, t, {.tokens_per_step = 1}), gem::config_error);
  t.ids = {0, 1, 2, 3};
  CHECK_THROWS_AS((void)gem::batch_tokens(1, 3, t, {.tokens_per_step = 1}), gem::config_error);
}

TEST_CASE("a slice of steps is a trace of its own with the same counts and re-based token routing") {
  std::mt19937 rng(13);
  const auto tok = random_routing(rng, 3, 7, 2, 45);
  const auto t = gem::batch_tokens(3, 7, tok, {.tokens_per_step = 10});  // steps of 10,10,10,10,5
  const auto mid = gem::slice_steps(t, 1, 3);
  REQUIRE(mid.num_steps() == 3);
  for (int l = 0; l < 3; ++l)
    for (int s = 0; s < 3; ++s)
      for (int e = 0; e < 7; ++e) CHECK(mid.count(gem::layer_id{l}, s, gem::expert_id{e}) == t.count(gem::layer_id{l}, s + 1, gem::expert_id{e}));
  REQUIRE(mid.tokens()->num_tokens == 30);
  CHECK(mid.tokens()->step_offsets == std::vector<std::int64_t>{0, 10, 20, 30});
  for (int l = 0; l < 3; ++l)
    for (int i = 0; i < 30 * 2; ++i) {
      CHECK(mid.tokens()->ids[l * 60 + i] == tok.ids[(l * 45 + 10) * 2 + i]);
      CHECK(mid.tokens()->weights[l * 60 + i] == tok.weights[(l * 45 + 10) * 2 + i]);
    }
  const auto tail = gem::slice_steps(t, 4);
  CHECK(tail.num_steps() == 1);
  CHECK(tail.tokens()->num_tokens == 5);
  CHECK(gem::slice_steps(t, 0) == t);
  const gem::routing_trace counts_only(1, 3, 2, {1, 2, 3, 4, 5, 6});
  CHECK(gem::slice_steps(counts_only, 2).counts()[1] == 6);
  CHECK_THROWS_AS((void)gem::slice_steps(t, 3, 3), gem::config_error);
  CHECK_THROWS_AS((void)gem::slice_steps(t, -1), gem::config_error);
}
