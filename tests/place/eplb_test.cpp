// EPLB parity: `rebalance_experts` and the `eplb` strategy reproduce DeepSeek's reference outputs
// (../shared/eplb-vectors) exactly, and reject EPLB's invalid arguments.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gem/place/eplb.hpp"
#include "place_test_models.hpp"
#include "shared_data.hpp"

namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::vector<std::filesystem::path> vector_files() {
  const auto dir = gem::test::shared_path("eplb-vectors");
  std::vector<std::filesystem::path> files;
  if (dir.empty()) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("rebalance_experts equals DeepSeek EPLB on every reference vector") {
  const auto files = vector_files();
  if (files.empty()) return;
  CHECK(files.size() >= 8);
  for (const auto& f : files) {
    CAPTURE(f.filename().string());
    const auto j = read_json(f);
    const auto weight = j.at("weight").get<std::vector<std::vector<double>>>();
    const auto r = gem::rebalance_experts(weight, j.at("num_replicas").get<int>(), j.at("num_groups").get<int>(),
                                          j.at("num_nodes").get<int>(), j.at("num_gpus").get<int>());
    CHECK(r.phy2log == j.at("phy2log").get<std::vector<std::vector<std::int32_t>>>());
    CHECK(r.log2phy_nested() == j.at("log2phy").get<std::vector<std::vector<std::vector<std::int32_t>>>>());
    CHECK(r.logcnt == j.at("logcnt").get<std::vector<std::vector<std::int32_t>>>());
  }
}

TEST_CASE("the eplb strategy builds a placement whose phy2log, log2phy and logcnt equal the reference") {
  const auto files = vector_files();
  if (files.empty()) return;
  for (const auto& f : files) {
    CAPTURE(f.filename().string());
    const auto j = read_json(f);
    const auto weight = j.at("weight").get<std::vector<std::vector<double>>>();
    const int P = j.at("num_replicas").get<int>(), G = j.at("num_gpus").get<int>();
    const int groups = j.at("num_groups").get<int>(), nodes = j.at("num_nodes").get<int>();
    // EPLB takes the global policy when groups % nodes != 0; the strategy is told so explicitly
    // (its cluster cannot always express the node count, e.g. 64 GPUs on 3 nodes).
    const bool global = groups % nodes != 0;
    const auto E = static_cast<std::int32_t>(weight[0].size());
    gem::placement_problem prob{.cluster = gem::cluster_spec::equal(G, P / G, global ? 1 : nodes),
                                .num_experts = E,
                                .num_groups = global && E % groups != 0 ? 1 : groups};
    for (const auto& w : weight) prob.layers.push_back(gem::layer_loads{.mean = w});
    const auto strategy = gem::eplb{.policy = global ? gem::eplb::policy_kind::global : gem::eplb::policy_kind::automatic};
    const auto pl = strategy.place(prob, gem::test::linear_speed{});
    const auto p2l = j.at("phy2log").get<std::vector<std::vector<std::int32_t>>>();
    const auto l2p = j.at("log2phy").get<std::vector<std::vector<std::vector<std::int32_t>>>>();
    const auto cnt = j.at("logcnt").get<std::vector<std::vector<std::int32_t>>>();
    for (int l = 0; l < pl.num_layers(); ++l) {
      CAPTURE(l);
      CHECK(pl.layer(gem::layer_id{l}).phy2log == p2l[l]);
      CHECK(pl.logcnt(gem::layer_id{l}) == cnt[l]);
      std::vector<std::int32_t> flat;
      for (const auto& row : l2p[l]) flat.insert(flat.end(), row.begin(), row.end());
      CHECK(pl.log2phy(gem::layer_id{l}, static_cast<std::int32_t>(l2p[l][0].size())) == flat);
    }
  }
}

TEST_CASE("rebalance_experts reproduces a global case worked by hand") {
  // Loads 8, 4, 2, 1 -> 6 slots on 2 GPUs. Replication: 8/1 is largest -> expert 0 gets a second
  // replica; then 8/2 = 4 ties expert 1's 4 and the first index wins -> a third. Replica loads
  // (slot order 0..5 = experts 0,1,2,3,0,0): 8/3, 4, 2, 1, 8/3, 8/3. Packing heaviest first into
  // the lightest pack with room: slot1->A(4), slot0->B(2.67), slot4->B(5.33), slot5->A(6.67),
  // slot2->B(7.33, full), slot3->A(7.67). A = GPU 0 holds slots {1,5,3}, B = GPU 1 holds {0,4,2}.
  const auto r = gem::rebalance_experts({{8, 4, 2, 1}}, 6, 1, 1, 2);
  CHECK(r.logcnt[0] == std::vector<std::int32_t>{3, 1, 1, 1});
  CHECK(r.phy2log[0] == std::vector<std::int32_t>{1, 0, 3, 0, 0, 2});
  CHECK(r.max_replicas == 3);
  CHECK(r.log2phy_nested()[0][0] == std::vector<std::int32_t>{3, 4, 1});  // replica ranks 0, 1, 2
  CHECK(r.log2phy_nested()[0][1] == std::vector<std::int32_t>{0, -1, -1});
  CHECK(r.log2phy_at(0, 0, 2) == 1);
  CHECK(r.log2phy_at(0, 3, 0) == 2);
}

TEST_CASE("rebalance_experts rejects arguments that break EPLB's preconditions") {
  const std::vector<std::vector<double>> w{{1, 2, 3, 4}};
  CHECK_THROWS_AS((void)gem::rebalance_experts(w, 3, 1, 1, 1), gem::config_error);   // fewer slots than experts
  CHECK_THROWS_AS((void)gem::rebalance_experts(w, 6, 1, 1, 4), gem::config_error);   // 6 % 4 != 0
  CHECK_THROWS_AS((void)gem::rebalance_experts(w, 4, 3, 1, 2), gem::config_error);   // 4 % 3 groups
  CHECK_THROWS_AS((void)gem::rebalance_experts({{1, 2, 3, 4, 5, 6}}, 6, 3, 3, 2), gem::config_error);  // 2 GPUs on 3 nodes
  CHECK_NOTHROW((void)gem::rebalance_experts(w, 4, 1, 3, 2));  // groups % nodes != 0: global policy, nodes unused
  CHECK_THROWS_AS((void)gem::rebalance_experts({{1, -1, 2, 3}}, 4, 1, 1, 2), gem::config_error);
  CHECK_THROWS_AS((void)gem::rebalance_experts({{1, 2}, {1}}, 2, 1, 1, 1), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::rebalance_experts(w, 6, 1, 1, 4), doctest::Contains("num_gpus"), gem::config_error);
}
