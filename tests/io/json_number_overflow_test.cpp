// Found by the loads and placement fuzzers: a number too large for a double made nlohmann-json throw
// an exception that was not a gem::error, which ended the command as an "internal error".
#include <doctest/doctest.h>

#include "gem/io/loads.hpp"
#include "gem/io/placement_formats.hpp"

TEST_CASE("a JSON number too large for a double is a parse error naming the file and line") {
  CHECK_THROWS_WITH_AS(gem::io::parse_loads_json("{\"weight\": [[1, 2],\n [1e999, 3]]}", "loads.json"),
                       doctest::Contains("loads.json:2: not valid JSON: number overflow parsing '1e999'"),
                       gem::parse_error);
  CHECK_THROWS_WITH_AS(gem::io::read_placement_sglang("{\"physical_to_logical_map\": 7E7777}", "loc.json", nullptr, "",
                                                      {.num_gpus = 2, .num_nodes = 0, .num_experts = 0}),
                       doctest::Contains("loc.json:1: not valid JSON: number overflow"), gem::parse_error);
}
