// The loads reader: JSON {"weight": [[...]]} as in ../shared/eplb-vectors, long CSV, malformed input.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "gem/io/loads.hpp"
#include "shared_data.hpp"

namespace io = gem::io;

TEST_CASE("loads JSON reads the weight field of every eplb-vector exactly") {
  const auto dir = gem::test::shared_path("eplb-vectors");
  if (dir.empty()) return;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    const auto j = nlohmann::json::parse(in);
    const auto loads = io::read_loads_file(entry.path());
    CHECK(loads.weight == j["weight"].get<std::vector<std::vector<double>>>());
  }
}

TEST_CASE("loads CSV round-trips random loads exactly, rows in any order and extra columns ignored") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 30; ++trial) {
    io::expert_loads loads;
    const int L = 1 + trial % 4, E = 1 + trial % 9;
    for (int l = 0; l < L; ++l) {
      auto& row = loads.weight.emplace_back();
      for (int e = 0; e < E; ++e) row.push_back(std::uniform_real_distribution<double>(0, 1e4)(rng));
    }
    CHECK(io::parse_loads_csv(io::loads_to_csv(loads), "x.csv").weight == loads.weight);
  }
  const auto shuffled = io::parse_loads_csv("task,load,expert,layer\r\nx,3.5,1,0\r\nx,2,0,1\r\nx,1,0,0\r\nx,4,1,1\r\n", "s.csv");
  CHECK(shuffled.weight == std::vector<std::vector<double>>{{1, 3.5}, {2, 4}});
}

TEST_CASE("malformed loads are rejected naming file, line and field") {
  CHECK_THROWS_WITH_AS((void)io::parse_loads_json("{\"weight\": [[1, 2],\n [3, -4]]}", "w.json"),
                       doctest::Contains("w.json:2: field 'weight[1][1]': negative load"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_json("{\"weight\": [[1, 2],\n [3]]}", "w.json"),
                       doctest::Contains("w.json:2: field 'weight[1]': holds 1 values, expected 2"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_json("{\"weight\": [[1, 2],\n [3, \"a\"]]}", "w.json"),
                       doctest::Contains("w.json:2: field 'weight[1][1]': expected a number, got string"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_json("{\"weights\": []}", "w.json"), doctest::Contains("field 'weight': missing"),
                       gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_json("{\"weight\": [[1, 2]", "w.json"), doctest::Contains("w.json:1: not valid JSON"),
                       gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert,load\n0,0,1\n0,1,x\n", "l.csv"),
                       doctest::Contains("l.csv:3: field 'load': 'x' is not a finite number"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert,load\n0,0,1\n0,0,2\n", "l.csv"),
                       doctest::Contains("l.csv:3: field 'expert': layer 0 expert 0 given twice (first on line 2)"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert,load\n0,0,1\n1,1,2\n0,1,1\n1,2,1\n", "l.csv"),
                       doctest::Contains("rows cannot cover 2 layers x 3 experts"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert,load\n0,0,1\n0,1\n", "l.csv"),
                       doctest::Contains("l.csv:3: row has 2 fields, the header 3"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert\n0,0\n", "l.csv"), doctest::Contains("l.csv:1: field 'load'"),
                       gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("layer,expert,load\n0,-1,1\n", "l.csv"),
                       doctest::Contains("l.csv:2: field 'expert'"), gem::parse_error);
  CHECK_THROWS_WITH_AS((void)io::parse_loads_csv("", "l.csv"), doctest::Contains("l.csv:1: empty file"), gem::parse_error);
  CHECK_THROWS_AS((void)io::read_loads_file("/nonexistent/loads.json"), gem::io_error);
}
