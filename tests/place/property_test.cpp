// Property tests over 1000 random instances: every strategy's output is a valid placement that fits
// the cluster it was given (engine-compatible modes) or keeps its total (extended), and the same
// seed gives identical bytes, for any thread count.
#include <doctest/doctest.h>

#include <random>

#include "gem/place/strategies.hpp"
#include "place_test_models.hpp"

namespace {

void check_fits(const gem::placement& pl, const gem::placement_problem& p, bool same_cluster) {
  REQUIRE(pl.num_layers() == static_cast<int>(p.layers.size()));
  CHECK(pl.num_experts() == p.num_experts);
  if (same_cluster) {
    CHECK(pl.cluster().num_gpus == p.cluster.num_gpus);
    for (int g = 0; g < p.cluster.num_gpus; ++g) CHECK(pl.cluster().slots(gem::gpu_id{g}) == p.cluster.slots(gem::gpu_id{g}));
  } else {
    CHECK(pl.cluster().total_slots() <= p.cluster.total_slots());
  }
  // Rebuilding from the layers re-runs every invariant check of placement.
  CHECK_NOTHROW((void)gem::placement(pl.cluster(), pl.num_experts(), pl.layers()));
}

}  // namespace

TEST_CASE("every strategy's output is valid on 1000 random instances and repeats byte for byte") {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 1000; ++trial) {
    CAPTURE(trial);
    const int G = 1 + static_cast<int>(rng() % 6);
    const int nodes = G % 2 == 0 && rng() % 2 ? 2 : 1;
    const int E = 1 + static_cast<int>(rng() % 12);
    const int per = (E + G - 1) / G + static_cast<int>(rng() % 3);
    auto p = gem::test::random_problem(rng, 1 + static_cast<int>(rng() % 2), E, G, per, static_cast<int>(rng() % 6), nodes);
    if (rng() % 3 == 0) p.layers[0].groups = {{0, E - 1}};
    std::vector<double> speed(G);
    for (auto& s : speed) s = 0.4 + 0.6 * static_cast<double>(rng() % 1000) / 1000.0;
    const gem::test::read_speed m{.speed = speed, .read = 1.0 + static_cast<double>(rng() % 4)};
    const std::uint64_t seed = rng();

    check_fits(gem::linear{}.place(p, m), p, true);
    check_fits(gem::round_robin{}.place(p, m), p, true);
    check_fits(gem::eplb{}.place(p, m), p, true);
    check_fits(gem::speed_proportional{}.place(p, m), p, true);
    check_fits(gem::speed_proportional{.mode = gem::slot_mode::extended}.place(p, m), p, false);
    // A light search budget: validity and determinism do not depend on search quality.
    const gem::gem_search engine{.seed = seed, .restarts = trial % 4 == 0 ? 1 : 0, .kicks = 1, .max_step_evals = 300,
                                 .node_hierarchy = nodes > 1};
    const auto a = engine.place(p, m);
    check_fits(a, p, true);
    auto threaded = engine;
    threaded.threads = 3;
    CHECK(threaded.place(p, m) == a);
    const gem::gem_search ext{.mode = gem::slot_mode::extended, .seed = seed, .kicks = 0, .max_step_evals = 300,
                              .max_redundant = static_cast<int>(rng() % 3) - 1};
    const auto x = ext.place(p, m);
    check_fits(x, p, false);
    if (trial % 4 == 0) CHECK(ext.place(p, m) == x);
    if (E <= 7 && G <= 4) check_fits(gem::exact{}.place(p, m), p, true);
  }
}
