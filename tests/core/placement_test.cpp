#include <doctest/doctest.h>

#include <random>

#include "gem/placement.hpp"

using gem::cluster_spec;
using gem::layer_id;
using gem::layer_placement;
using gem::placement;

TEST_CASE("from_phy2log puts slot p on GPU p / (P / G) and derives EPLB's log2phy and logcnt") {
  // 4 experts, 6 slots on 3 GPUs; expert 0 has three replicas, expert 1 two.
  const auto pl = placement::from_phy2log(cluster_spec::equal(3, 2), 4, {{0, 1, 0, 2, 3, 1}, {3, 2, 1, 0, 0, 0}});
  CHECK(pl.layer(layer_id{0}).slot_gpu == std::vector<std::int32_t>{0, 0, 1, 1, 2, 2});
  CHECK(pl.logcnt(layer_id{0}) == std::vector<std::int32_t>{2, 2, 1, 1});
  CHECK(pl.max_replicas() == 3);  // layer 1: expert 0 three times
  CHECK(pl.log2phy(layer_id{0}) == std::vector<std::int32_t>{0, 2, -1, 1, 5, -1, 3, -1, -1, 4, -1, -1});
  CHECK(pl.layer(layer_id{1}).share[4] == doctest::Approx(1.0 / 3));
  CHECK(pl.gpu_slots(layer_id{1}, gem::gpu_id{2}) == std::vector<std::int32_t>{4, 5});
}

TEST_CASE("replica ranks order log2phy the way EPLB does") {
  const auto pl = placement::from_phy2log(cluster_spec::equal(2, 2), 3, {{0, 1, 2, 0}}, {{1, 0, 0, 0}});
  CHECK(pl.log2phy(layer_id{0}) == std::vector<std::int32_t>{3, 0, 1, -1, 2, -1});
}

TEST_CASE("every property of a random valid placement round-trips through logcnt and log2phy") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int G = 1 + trial % 8, E = 1 + trial % 13, extra = trial % 5;
    const int per_gpu = (E + extra + G - 1) / G;
    const auto c = cluster_spec::equal(G, per_gpu);
    layer_placement lp;
    for (int e = 0; e < E; ++e) lp.phy2log.push_back(e);
    for (int r = 0; r < extra; ++r) lp.phy2log.push_back(std::uniform_int_distribution<int>(0, E - 1)(rng));
    std::shuffle(lp.phy2log.begin(), lp.phy2log.end(), rng);
    for (std::size_t p = 0; p < lp.phy2log.size(); ++p) lp.slot_gpu.push_back(static_cast<int>(p) / per_gpu);
    const placement pl(c, E, {lp});
    const auto cnt = pl.logcnt(layer_id{0});
    const auto w = pl.max_replicas();
    const auto l2p = pl.log2phy(layer_id{0});
    for (int e = 0; e < E; ++e) {
      int listed = 0;
      for (int r = 0; r < w; ++r)
        if (auto p = l2p[e * w + r]; p >= 0) {
          CHECK(lp.phy2log[p] == e);
          ++listed;
        }
      CHECK(listed == cnt[e]);
    }
  }
}

TEST_CASE("invalid placements are rejected naming layer, expert, slot or GPU") {
  const auto c = cluster_spec::equal(2, 2);
  auto make = [&](layer_placement lp) { return placement(c, 3, {layer_placement{{0, 1, 2}, {0, 0, 1}, {}, {}}, lp}); };
  CHECK_THROWS_WITH_AS(make({{0, 1}, {0, 1}, {}, {}}), doctest::Contains("layer 1: expert 2 has no replica"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2}, {0, 0, 0}, {}, {}}), doctest::Contains("layer 1: GPU 0 holds 3 slots but has only 2"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2, 2}, {0, 0, 1, 1}, {1, 1, 0.5, 0.49}, {}}),
                       doctest::Contains("layer 1: shares of expert 2 sum to"), gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2}, {0, 0}, {}, {}}), doctest::Contains("slot_gpu holds 2 values but phy2log holds 3"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 7}, {0, 0, 1}, {}, {}}), doctest::Contains("slot 2 holds expert 7"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2}, {0, 0, 5}, {}, {}}), doctest::Contains("slot 2 is on GPU 5"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2}, {0, 0, 1}, {1, 1, std::nan("")}, {}}), doctest::Contains("slot 2 (expert 2) has share"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(make({{0, 1, 2, 2}, {0, 0, 1, 1}, {}, {0, 0, 1, 1}}),
                       doctest::Contains("slot 3 (expert 2) has replica rank 1"), gem::placement_error);
  CHECK_THROWS_WITH_AS(placement(c, 3, {}), doctest::Contains("no layers"), gem::placement_error);
  CHECK_THROWS_WITH_AS(placement::from_phy2log(c, 3, {{0, 1, 2}}), doctest::Contains("do not divide evenly"),
                       gem::placement_error);
}

TEST_CASE("speed-weighted shares within 1e-9 of one are accepted") {
  const placement pl(cluster_spec{.num_gpus = 2, .slots_per_gpu = {2, 1}}, 2,
                     {layer_placement{{0, 1, 1}, {0, 0, 1}, {1.0, 0.7, 0.3 + 5e-10}, {}}});
  CHECK(pl.layer(layer_id{0}).share[2] == doctest::Approx(0.3));
}
