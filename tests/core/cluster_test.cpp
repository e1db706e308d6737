#include <doctest/doctest.h>

#include "gem/cluster.hpp"

using gem::cluster_spec;
using gem::gpu_id;

TEST_CASE("an equal cluster gives every GPU the same slots and groups GPUs into contiguous nodes") {
  const auto c = cluster_spec::equal(8, 4, 2);
  CHECK(c.total_slots() == 32);
  CHECK(c.equal_slots());
  CHECK(c.gpus_per_node() == 4);
  for (int g = 0; g < 8; ++g) {
    CHECK(c.slots(gpu_id{g}) == 4);
    CHECK(c.node_of(gpu_id{g}) == g / 4);
  }
}

TEST_CASE("per-GPU slot counts are honoured") {
  const cluster_spec c{.num_gpus = 3, .slots_per_gpu = {4, 2, 3}};
  c.validate();
  CHECK(c.total_slots() == 9);
  CHECK_FALSE(c.equal_slots());
  CHECK(c.slots(gpu_id{1}) == 2);
}

TEST_CASE("invalid cluster specs are rejected naming the field") {
  CHECK_THROWS_WITH_AS((cluster_spec{.num_gpus = 0, .slots_per_gpu = {1}}.validate()),
                       doctest::Contains("num_gpus"), gem::config_error);
  CHECK_THROWS_WITH_AS((cluster_spec{.num_gpus = 4, .slots_per_gpu = {1, 2}}.validate()),
                       doctest::Contains("slots_per_gpu must hold 1 or num_gpus"), gem::config_error);
  CHECK_THROWS_WITH_AS((cluster_spec{.num_gpus = 2, .slots_per_gpu = {1, -1}}.validate()),
                       doctest::Contains("slots_per_gpu[1]"), gem::config_error);
  CHECK_THROWS_WITH_AS((cluster_spec{.num_gpus = 6, .slots_per_gpu = {1}, .num_nodes = 4}.validate()),
                       doctest::Contains("num_nodes"), gem::config_error);
  CHECK_THROWS_WITH_AS((cluster_spec{.num_gpus = 2, .slots_per_gpu = {0}}.validate()),
                       doctest::Contains("no slots"), gem::config_error);
}
