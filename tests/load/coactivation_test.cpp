// Co-activation: pair counts and step co-hotness against brute force, the excess score by hand,
// clustering on planted blocks, grouped_load with library and user-written models, and recovery of
// the generator's planted groups (precision and recall >= 0.9 over 20 seeds) by both models.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "gem/load/coactivation.hpp"
#include "gem/load/decayed_load.hpp"
#include "gem/trace/batching.hpp"
#include "gem/trace/synthetic.hpp"
#include "planted_traces.hpp"

namespace {

gem::routing_trace random_token_trace(std::mt19937& rng, int layers, int experts, int k, std::int64_t n, std::int64_t B) {
  gem::token_routing t;
  t.top_k = k;
  t.num_tokens = n;
  std::vector<std::int32_t> pool(experts);
  for (int l = 0; l < layers; ++l)
    for (std::int64_t i = 0; i < n; ++i) {
      std::iota(pool.begin(), pool.end(), 0);
      std::shuffle(pool.begin(), pool.end(), rng);
      t.ids.insert(t.ids.end(), pool.begin(), pool.begin() + k);
    }
  return gem::batch_tokens(layers, experts, std::move(t), {.tokens_per_step = B});
}

using pair_set = std::set<std::pair<std::int32_t, std::int32_t>>;
pair_set same_group_pairs(const std::vector<std::vector<std::int32_t>>& groups) {
  pair_set p;
  for (const auto& g : groups)
    for (std::size_t i = 0; i < g.size(); ++i)
      for (std::size_t j = i + 1; j < g.size(); ++j) p.insert({std::min(g[i], g[j]), std::max(g[i], g[j])});
  return p;
}

// A user-written co-activation model: experts i and j co-activate when i + j == E - 1.
struct mirror_coactivation {
  gem::coactivation_matrix scores(const gem::routing_trace& t, gem::layer_id) const {
    const auto E = t.num_experts();
    gem::coactivation_matrix m{E, std::vector<double>(static_cast<std::size_t>(E * E), 0.0)};
    for (int i = 0; i < E; ++i) m.score[i * E + (E - 1 - i)] = i == E - 1 - i ? 0.0 : 1.0;
    return m;
  }
};
static_assert(gem::coactivation_model<mirror_coactivation>);

// A user-written load model: every expert gets load 1.
struct flat_load {
  gem::layer_loads loads(const gem::routing_trace& t, gem::layer_id) const {
    return {.mean = std::vector<double>(static_cast<std::size_t>(t.num_experts()), 1.0)};
  }
};
static_assert(gem::load_model<flat_load>);

}  // namespace

TEST_CASE("token pair counts equal a brute-force tally of the top-k ids") {
  std::mt19937 rng(31);
  for (int trial = 0; trial < 10; ++trial) {
    const int L = 2, E = 5 + trial, k = 1 + trial % 4;
    const auto t = random_token_trace(rng, L, E, k, 50, 16);
    const auto& ids = t.tokens()->ids;
    for (int l = 0; l < L; ++l) {
      const auto pc = gem::token_pair_counts(t, gem::layer_id{l});
      for (int i = 0; i < E; ++i)
        for (int j = 0; j < E; ++j) {
          std::int64_t direct = 0;
          for (int tok = 0; tok < 50; ++tok) {
            bool hi = false, hj = false;
            for (int a = 0; a < k; ++a) {
              hi = hi || ids[(l * 50 + tok) * k + a] == i;
              hj = hj || ids[(l * 50 + tok) * k + a] == j;
            }
            direct += hi && hj;
          }
          CHECK(pc[i * E + j] == direct);
        }
      const auto part = gem::token_pair_counts(t, gem::layer_id{l}, 10, 20);
      std::int64_t diag = 0;
      for (int i = 0; i < E; ++i) diag += part[i * E + i];
      CHECK(diag == 10 * k);
    }
  }
  const gem::routing_trace counts_only(1, 1, 2, {1, 1});
  CHECK_THROWS_AS((void)gem::token_pair_counts(counts_only, gem::layer_id{0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::token_pair_coactivation{}.scores(counts_only, gem::layer_id{0}), gem::config_error);
}

TEST_CASE("token pair scores are the shrunk excess over chance, symmetric and within [0, 1]") {
  // 4 experts, top-2, 8 tokens: {0,1} x4, {2,3} x2, {0,2} x1, {1,3} x1.
  gem::token_routing tok{.top_k = 2, .num_tokens = 8, .ids = {0, 1, 0, 1, 1, 0, 0, 1, 2, 3, 3, 2, 0, 2, 1, 3}};
  const auto t = gem::batch_tokens(1, 4, tok, {.tokens_per_step = 8});
  const auto m = gem::token_pair_coactivation{.prior_tokens = 2}.scores(t, gem::layer_id{0});
  // n0 = 5, n1 = 5, n01 = 4, chance e01 = 5*5*(2-1)/(8*2) = 1.5625 -> (4 - 1.5625) / (4 + 2).
  CHECK(m(0, 1) == doctest::Approx((4 - 1.5625) / 6.0));
  CHECK(m(1, 0) == m(0, 1));
  // n2 = 3, n3 = 3, n23 = 2, e = 9/16 -> (2 - 0.5625) / 4.
  CHECK(m(2, 3) == doctest::Approx((2 - 0.5625) / 4.0));
  // n02 = 1, e = 15/16 -> (1 - 0.9375) / 3.
  CHECK(m(0, 2) == doctest::Approx((1 - 0.9375) / 3.0));
  CHECK(m(0, 3) == 0.0);
  for (int i = 0; i < 4; ++i) CHECK(m(i, i) == 0.0);
  CHECK(gem::no_coactivation{}.scores(t, gem::layer_id{0}).score == std::vector<double>(16, 0.0));
}

TEST_CASE("step co-hotness scores match brute-force Jaccard and excess over the hot-step sets") {
  std::mt19937 rng(41);
  for (int trial = 0; trial < 10; ++trial) {
    const int S = 12, E = 6;
    std::vector<std::int64_t> c(S * E);
    for (auto& x : c) x = std::uniform_int_distribution<int>(0, 10)(rng);
    const gem::routing_trace t(1, S, E, c);
    const auto hot = gem::hot_steps(t, gem::layer_id{0}, 1.5);
    const auto jac = gem::step_cohot_coactivation{.measure = gem::cohot_measure::jaccard}.scores(t, gem::layer_id{0});
    const auto exc = gem::step_cohot_coactivation{.prior_steps = 1}.scores(t, gem::layer_id{0});
    for (int i = 0; i < E; ++i)
      for (int j = 0; j < E; ++j) {
        if (i == j) continue;
        int both = 0, any = 0, ni = 0, nj = 0;
        for (int s = 0; s < S; ++s) {
          const std::int64_t total = [&] { std::int64_t x = 0; for (int e = 0; e < E; ++e) x += c[s * E + e]; return x; }();
          const bool hi = total > 0 && c[s * E + i] * E >= 1.5 * total, hj = total > 0 && c[s * E + j] * E >= 1.5 * total;
          CHECK(static_cast<bool>(hot[s * E + i]) == hi);
          both += hi && hj;
          any += hi || hj;
          ni += hi;
          nj += hj;
        }
        CHECK(jac(i, j) == doctest::Approx(any ? double(both) / any : 0.0));
        const double expected = double(ni) * nj / S;
        CHECK(exc(i, j) == doctest::Approx(both ? std::max(0.0, (both - expected) / (both + 1.0)) : 0.0));
      }
  }
}

TEST_CASE("clustering joins planted blocks, honours candidates and group size, and leaves weak links alone") {
  const int E = 9;
  gem::coactivation_matrix m{E, std::vector<double>(E * E, 0.05)};
  auto set = [&](int i, int j, double v) { m.score[i * E + j] = m.score[j * E + i] = v; };
  for (int i = 0; i < E; ++i) m.score[i * E + i] = 0;
  for (int a : {1, 4, 7})
    for (int b : {1, 4, 7})
      if (a != b) set(a, b, 0.8);
  set(2, 5, 0.6);
  set(0, 8, 0.2);  // below min_score
  CHECK(gem::cluster_groups(m) == std::vector<std::vector<std::int32_t>>{{1, 4, 7}, {2, 5}});
  CHECK(gem::cluster_groups(m, {.min_score = 0.7}) == std::vector<std::vector<std::int32_t>>{{1, 4, 7}});
  CHECK(gem::cluster_groups(m, {.max_group_size = 2}) == std::vector<std::vector<std::int32_t>>{{1, 4}, {2, 5}});
  CHECK(gem::cluster_groups(m, {.candidates = {1, 2, 4, 5}}) == std::vector<std::vector<std::int32_t>>{{1, 4}, {2, 5}});
  CHECK_THROWS_AS((void)gem::cluster_groups(m, {.candidates = {1, 9}}), gem::config_error);
  CHECK_THROWS_AS((void)gem::cluster_groups(m, {.candidates = {1, 1}}), gem::config_error);
  CHECK_THROWS_AS((void)gem::cluster_groups(m, {.max_group_size = -1}), gem::config_error);
}

TEST_CASE("grouped_load adds groups from library or user-written models to any load model") {
  const auto g = gem::generate_synthetic({.num_layers = 1, .num_experts = 16, .num_steps = 4, .consistent_experts = 2,
                                          .temporal_groups = 2});
  const gem::grouped_load<flat_load, mirror_coactivation> user{.clustering = {.min_score = 0.5}};
  const auto loads = user.loads(g.trace, gem::layer_id{0});
  CHECK(loads.mean == std::vector<double>(16, 1.0));
  REQUIRE(loads.groups.size() == 8u);
  for (const auto& grp : loads.groups) CHECK(grp[0] + grp[1] == 15);
  const gem::grouped_load<gem::decayed_load, gem::no_coactivation> none{};
  CHECK(none.loads(g.trace, gem::layer_id{0}).groups.empty());
  static_assert(gem::load_model<gem::grouped_load<flat_load, mirror_coactivation>>);
}

TEST_CASE("clustering recovers the planted temporal groups over 20 seeds, from token pairs and from step co-hotness") {
  double tp[2] = {0, 0}, fp[2] = {0, 0}, fn[2] = {0, 0};
  for (const auto& g : gem::test::planted_traces()) {
    for (int l = 0; l < 2; ++l) {
      const auto truth = same_group_pairs(g.plant.groups[l]);
      const gem::grouped_load<gem::mean_load, gem::token_pair_coactivation> token{.clustering = {.min_score = 0.5},
                                                                                  .temporal_only = true};
      const gem::grouped_load<gem::mean_load, gem::step_cohot_coactivation> step{.clustering = {.min_score = 0.4}};
      const pair_set got[2] = {same_group_pairs(token.loads(g.trace, gem::layer_id{l}).groups),
                               same_group_pairs(step.loads(g.trace, gem::layer_id{l}).groups)};
      for (int m = 0; m < 2; ++m) {
        for (const auto& p : got[m]) (truth.count(p) ? tp[m] : fp[m]) += 1;
        for (const auto& p : truth) fn[m] += !got[m].count(p);
      }
    }
  }
  for (int m = 0; m < 2; ++m) {
    const double P = tp[m] / (tp[m] + fp[m]), R = tp[m] / (tp[m] + fn[m]);
    MESSAGE(std::string(m == 0 ? "token pairs" : "step co-hotness") << ": precision " << P << " recall " << R);
    CHECK(P >= 0.9);
    CHECK(R >= 0.9);
  }
}

TEST_CASE("co-activation over a step range equals co-activation of that slice of the trace") {
  const auto g = gem::generate_synthetic({.num_layers = 2, .num_steps = 20, .tokens_per_step = 64, .seed = 4});
  const auto part = gem::slice_steps(g.trace, 5, 10);
  for (int l = 0; l < 2; ++l) {
    CHECK(gem::token_pair_coactivation{.first_step = 5, .num_steps = 10}.scores(g.trace, gem::layer_id{l}).score ==
          gem::token_pair_coactivation{}.scores(part, gem::layer_id{l}).score);
    CHECK(gem::step_cohot_coactivation{.first_step = 5, .num_steps = 10}.scores(g.trace, gem::layer_id{l}).score ==
          gem::step_cohot_coactivation{}.scores(part, gem::layer_id{l}).score);
  }
  CHECK_THROWS_AS((void)gem::token_pair_coactivation{.first_step = 30}.scores(g.trace, gem::layer_id{0}), gem::config_error);
}
