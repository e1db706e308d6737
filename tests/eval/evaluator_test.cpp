// The evaluator: per-GPU seconds and stragglers replayed by hand, summaries, the fluid lower bound
// (exact for linear models, never above a brute-force optimum or any placement's straggler), and
// the fit / held-out split.
#include <doctest/doctest.h>

#include <random>

#include "../place/place_test_models.hpp"
#include "gem/eval/evaluator.hpp"

using gem::layer_id;
using gem::placement;

namespace {

// Straggler of one step computed directly from per-GPU expert lists (independent of the evaluator).
template <class M>
double direct_straggler(const std::vector<std::vector<int>>& gpus, const std::vector<double>& counts, const M& m) {
  double worst = 0;
  for (std::size_t g = 0; g < gpus.size(); ++g) {
    std::vector<double> rows;
    for (int e : gpus[g]) rows.push_back(counts[e]);
    worst = std::max(worst, rows.empty() ? 0.0 : m.seconds(gem::gpu_id{static_cast<int>(g)}, gem::work{rows}));
  }
  return worst;
}

// Brute-force optimum of one step over every assignment of E experts to G GPUs (no slot limits,
// no replicas) — an upper bound on what the fluid bound may report.
template <class M>
double brute_force_best(int E, int G, const std::vector<double>& counts, const M& m) {
  double best = 1e300;
  std::vector<int> a(E, 0);
  while (true) {
    std::vector<std::vector<int>> gpus(G);
    for (int e = 0; e < E; ++e) gpus[a[e]].push_back(e);
    best = std::min(best, direct_straggler(gpus, counts, m));
    int i = 0;
    while (i < E && ++a[i] == G) a[i++] = 0;
    if (i == E) break;
  }
  return best;
}

}  // namespace

TEST_CASE("gpu_seconds and replay_layer give each GPU the rows of its slots, shares included") {
  // 3 experts on 2 GPUs; expert 0 replicated on both GPUs with shares 0.25 / 0.75.
  gem::layer_placement lp{.phy2log = {0, 1, 0, 2}, .slot_gpu = {0, 0, 1, 1}, .share = {0.25, 1, 0.75, 1}};
  const placement pl(gem::cluster_spec::equal(2, 2), 3, {lp});
  const gem::test::linear_speed m{.speed = {1.0, 0.5}};
  const std::vector<double> counts{8, 3, 1};
  const auto t = gem::gpu_seconds(pl.layer(layer_id{0}), 2, counts, m);
  CHECK(t[0] == doctest::Approx(0.25 * 8 + 3));          // 5
  CHECK(t[1] == doctest::Approx((0.75 * 8 + 1) / 0.5));  // 14
  const auto r = gem::replay_layer(pl, layer_id{0}, {counts, {0, 0, 0}, {4, 0, 2}}, m);
  REQUIRE(r.straggler.size() == 3);
  CHECK(r.straggler[0] == doctest::Approx(14));
  CHECK(r.straggler[1] == 0);
  CHECK(r.straggler[2] == doctest::Approx((3 + 2) / 0.5));
  CHECK(r.gpu_seconds.size() == 6);
  CHECK(r.gpu_seconds[4] == doctest::Approx(1));
  CHECK(r.summary.mean == doctest::Approx((14 + 0 + 10) / 3.0));
}

TEST_CASE("the fluid bound of a linear model is total rows over total speed") {
  const gem::test::linear_speed m{.speed = {1.0, 0.5, 2.0}};
  const std::vector<double> counts{10, 0, 25, 7};
  CHECK(gem::fluid_bound(m, 3, counts) == doctest::Approx(42.0 / 3.5).epsilon(1e-7));
  CHECK(gem::fluid_bound(m, 3, counts) <= 42.0 / 3.5);
  CHECK(gem::fluid_bound(m, 3, std::vector<double>{0, 0, 0, 0}) == 0);
}

TEST_CASE("the fluid bound counts one weight read per active expert, shared over GPUs") {
  // Pure read cost: an active expert costs 1 s on a speed-1 GPU, rows are free. 5 active experts on
  // 2 GPUs of speed 1 need ceil(5 / 2) = 3 s; with speeds 1 and 3 the fast GPU reads 3 per second:
  // at tau = 1 the GPUs hold 1 + 3 = 4 < 5, at tau = 4/3 they hold 1 + 4 = 5.
  const gem::test::read_speed m{.speed = {1, 1}, .read = 1, .row = 0, .act = 0};
  const std::vector<double> counts{1, 2, 0, 3, 1, 9};
  CHECK(gem::fluid_bound(m, 2, counts) == doctest::Approx(3));
  const gem::test::read_speed fast{.speed = {1, 3}, .read = 1, .row = 0, .act = 0};
  CHECK(gem::fluid_bound(fast, 2, counts) == doctest::Approx(4.0 / 3));
}

TEST_CASE("the fluid bound never exceeds the brute-force optimum nor any placement's straggler") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 60; ++trial) {
    const int E = 2 + trial % 5, G = 1 + trial % 3;
    std::vector<double> speed(G), counts(E);
    for (auto& s : speed) s = 0.5 + u(rng);
    for (auto& c : counts) c = u(rng) < 0.2 ? 0 : std::floor(u(rng) * 300);
    const gem::test::linear_speed lin{.speed = speed};
    const gem::test::read_speed rd{.speed = speed};
    const gem::test::read_speed tiles{.speed = speed, .read = 1.0, .row = 0.05, .act = 0.0};
    CAPTURE(trial);
    CHECK(gem::fluid_bound(lin, G, counts) <= brute_force_best(E, G, counts, lin) * (1 + 1e-12));
    CHECK(gem::fluid_bound(rd, G, counts) <= brute_force_best(E, G, counts, rd) * (1 + 1e-12));
    CHECK(gem::fluid_bound(tiles, G, counts) <= brute_force_best(E, G, counts, tiles) * (1 + 1e-12));
    // Replicated placements with uneven shares are bounded too.
    gem::layer_placement lp;
    for (int e = 0; e < E; ++e) {
      const int g1 = static_cast<int>(u(rng) * G), g2 = static_cast<int>(u(rng) * G);
      const double sh = u(rng);
      lp.phy2log.insert(lp.phy2log.end(), {e, e});
      lp.slot_gpu.insert(lp.slot_gpu.end(), {g1, g2});
      lp.share.insert(lp.share.end(), {sh, 1 - sh});
    }
    const placement pl(gem::cluster_spec::equal(G, 2 * E), E, {lp});
    const auto r = gem::replay_layer(pl, layer_id{0}, {counts}, rd);
    CHECK(r.bound[0] <= r.straggler[0] * (1 + 1e-12));
  }
}

TEST_CASE("latency_summary interpolates percentiles between order statistics") {
  std::vector<double> v;
  for (int i = 101; i >= 1; --i) v.push_back(i);
  const auto s = gem::latency_summary::of(v);
  CHECK(s.mean == doctest::Approx(51));
  CHECK(s.p50 == doctest::Approx(51));
  CHECK(s.p99 == doctest::Approx(100));
  CHECK(s.max == 101);
  const auto two = gem::latency_summary::of({1, 3});
  CHECK(two.p50 == doctest::Approx(2));
  CHECK(two.p99 == doctest::Approx(2.98));
}

TEST_CASE("evaluate sums the layers' stragglers per step over the chosen steps of a trace") {
  // 2 layers, 4 steps, 2 experts; linear on 2 GPUs of speed 1 and 0.5 (expert 0 on GPU 0).
  std::vector<std::int64_t> counts{1, 2, 3, 4, 5, 6, 7, 8,  // layer 0: steps 0..3
                                   2, 2, 0, 4, 6, 0, 1, 1};  // layer 1
  const gem::routing_trace t(2, 4, 2, counts);
  const auto pl = placement::from_phy2log(gem::cluster_spec::equal(2, 1), 2, {{0, 1}, {0, 1}});
  const gem::test::linear_speed m{.speed = {1.0, 0.5}};
  const auto split = gem::split_steps(t);
  CHECK(split.fit.first == 0);
  CHECK(split.fit.count == 2);
  CHECK(split.held_out.first == 2);
  CHECK(split.held_out.count == 2);
  const auto ev = gem::evaluate(pl, t, m, split.held_out);
  REQUIRE(ev.straggler.size() == 2);
  // step 2: layer 0 max(5, 12) + layer 1 max(6, 0) = 18; step 3: max(7, 16) + max(1, 2) = 18.
  CHECK(ev.straggler[0] == doctest::Approx(18));
  CHECK(ev.straggler[1] == doctest::Approx(18));
  CHECK(ev.summary.mean == doctest::Approx(18));
  // bound: layer 0 steps (11/1.5, 15/1.5), layer 1 (6/1.5, 2/1.5): sums 17/1.5 and 17/1.5.
  CHECK(ev.mean_bound == doctest::Approx(17 / 1.5).epsilon(1e-6));
  CHECK(ev.ratio_to_bound == doctest::Approx(18 / (17 / 1.5)).epsilon(1e-6));
  CHECK(ev.layers.size() == 2);
}

TEST_CASE("split_steps and evaluate reject what they cannot use") {
  const gem::routing_trace one(1, 1, 2, {1, 1});
  CHECK_THROWS_AS((void)gem::split_steps(one), gem::config_error);
  const gem::routing_trace t(1, 5, 2, std::vector<std::int64_t>(10, 1));
  CHECK_THROWS_AS((void)gem::split_steps(t, 1.0), gem::config_error);
  CHECK(gem::split_steps(t, 0.5).fit.count == 2);
  CHECK(gem::split_steps(t, 0.01).fit.count == 1);
  const auto pl = placement::from_phy2log(gem::cluster_spec::equal(2, 1), 2, {{0, 1}});
  CHECK_THROWS_AS((void)gem::evaluate(pl, t, gem::test::linear_speed{}, {.first = 3, .count = 5}), gem::config_error);
  CHECK_THROWS_AS((void)gem::replay_layer(pl, layer_id{0}, {{1, 2, 3}}, gem::test::linear_speed{}), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::replay_layer(pl, layer_id{0}, {{1, -2}}, gem::test::linear_speed{}),
                       doctest::Contains("expert 1"), gem::config_error);
}
