// vLLM's linear and round_robin layouts, checked against hand-written layouts.
#include <doctest/doctest.h>

#include "gem/place/baselines.hpp"
#include "place_test_models.hpp"

using gem::layer_id;

TEST_CASE("linear gives each GPU a contiguous block and repeats experts in extra slots") {
  gem::placement_problem p{.cluster = gem::cluster_spec::equal(4, 2), .num_experts = 8};
  p.layers.assign(2, gem::layer_loads{.mean = std::vector<double>(8, 1.0)});
  const auto pl = gem::linear{}.place(p, gem::test::linear_speed{});
  CHECK(pl.layer(layer_id{1}).phy2log == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(pl.layer(layer_id{1}).slot_gpu == std::vector<std::int32_t>{0, 0, 1, 1, 2, 2, 3, 3});
  p.cluster = gem::cluster_spec::equal(2, 5);  // 10 slots for 8 experts
  const auto rep = gem::linear{}.place(p, gem::test::linear_speed{});
  CHECK(rep.layer(layer_id{0}).phy2log == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1});
  CHECK(rep.logcnt(layer_id{0}) == std::vector<std::int32_t>{2, 2, 1, 1, 1, 1, 1, 1});
}

TEST_CASE("round_robin puts expert e on GPU e mod G") {
  gem::placement_problem p{.cluster = gem::cluster_spec::equal(4, 2), .num_experts = 8};
  p.layers.assign(1, gem::layer_loads{.mean = std::vector<double>(8, 1.0)});
  const auto pl = gem::round_robin{}.place(p, gem::test::linear_speed{});
  CHECK(pl.layer(layer_id{0}).phy2log == std::vector<std::int32_t>{0, 4, 1, 5, 2, 6, 3, 7});
  CHECK(pl.layer(layer_id{0}).slot_gpu == std::vector<std::int32_t>{0, 0, 1, 1, 2, 2, 3, 3});
  // Unequal slots: GPU 0 has 1, GPU 1 has 3: 0 -> g0, 1 -> g1, 2 -> g0 full -> g1, 3 -> g1.
  p.cluster = gem::cluster_spec{.num_gpus = 2, .slots_per_gpu = {1, 3}};
  p.num_experts = 4;
  p.layers.assign(1, gem::layer_loads{.mean = std::vector<double>(4, 1.0)});
  const auto un = gem::round_robin{}.place(p, gem::test::linear_speed{});
  CHECK(un.layer(layer_id{0}).phy2log == std::vector<std::int32_t>{0, 1, 2, 3});
  CHECK(un.layer(layer_id{0}).slot_gpu == std::vector<std::int32_t>{0, 1, 1, 1});
}
