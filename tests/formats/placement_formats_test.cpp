// Round trips of every placement format, what "same placement" means for the engine formats that
// cannot carry everything, engine constraint checks, and malformed files.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "gem/io/placement_formats.hpp"
#include "shared_data.hpp"

using gem::cluster_spec;
using gem::layer_id;
using gem::layer_placement;
using gem::placement;
namespace io = gem::io;

namespace {

// A random valid placement: every expert has a replica; shares random (or even); replica ranks a
// random permutation per expert; slots scattered over GPUs (not rank-major). `equal_used` makes
// every GPU use the same number of slots (what engine formats need); `spare` adds unused capacity.
placement random_placement(std::mt19937& rng, bool equal_used, bool even_shares, int spare = 0) {
  std::uniform_int_distribution<int> pick(1, 8);
  const int G = pick(rng), E = pick(rng) + 1, L = 1 + pick(rng) % 4;
  const int per_gpu = (E + G - 1) / G + pick(rng) % 3;
  std::vector<std::int32_t> slots_per_gpu;
  for (int g = 0; g < G; ++g) slots_per_gpu.push_back(per_gpu + (equal_used ? 0 : pick(rng) % 2) + spare);
  cluster_spec c{.num_gpus = G, .slots_per_gpu = slots_per_gpu, .num_nodes = G % 2 == 0 ? 2 : 1};
  std::vector<layer_placement> layers;
  for (int l = 0; l < L; ++l) {
    layer_placement lp;
    for (int g = 0; g < G; ++g)
      for (int s = 0; s < slots_per_gpu[g] - spare; ++s) lp.slot_gpu.push_back(g);
    const auto P = lp.slot_gpu.size();
    for (int e = 0; e < E; ++e) lp.phy2log.push_back(e);
    while (lp.phy2log.size() < P) lp.phy2log.push_back(std::uniform_int_distribution<int>(0, E - 1)(rng));
    std::shuffle(lp.phy2log.begin(), lp.phy2log.end(), rng);
    std::shuffle(lp.slot_gpu.begin(), lp.slot_gpu.end(), rng);
    std::vector<std::vector<std::size_t>> slots_of(static_cast<std::size_t>(E));
    for (std::size_t p = 0; p < P; ++p) slots_of[lp.phy2log[p]].push_back(p);
    lp.share.assign(P, 0.0);
    lp.replica_rank.assign(P, 0);
    for (auto& v : slots_of) {
      std::vector<int> ranks(v.size());
      std::iota(ranks.begin(), ranks.end(), 0);
      std::shuffle(ranks.begin(), ranks.end(), rng);
      double sum = 0;
      std::vector<double> w(v.size());
      for (auto& x : w) sum += (x = even_shares ? 1.0 : std::uniform_real_distribution<double>(0.1, 1.0)(rng));
      for (std::size_t i = 0; i < v.size(); ++i) {
        lp.replica_rank[v[i]] = ranks[i];
        lp.share[v[i]] = even_shares ? 1.0 / static_cast<double>(v.size()) : w[i] / sum;
      }
      if (!even_shares) {  // make the sum exactly 1 within tolerance by construction of the last one
        double rest = 1.0;
        for (std::size_t i = 0; i + 1 < v.size(); ++i) rest -= lp.share[v[i]];
        lp.share[v.back()] = rest;
      }
    }
    layers.push_back(std::move(lp));
  }
  return placement(c, E, std::move(layers));
}

// Independent reference of the engine convention: GPU by GPU, that GPU's slots in slot order.
placement rank_major_reference(const placement& p, bool keep_shares, bool keep_ranks) {
  std::vector<layer_placement> layers;
  int per_gpu = 0;
  for (int l = 0; l < p.num_layers(); ++l) {
    const auto& src = p.layer(layer_id{l});
    layer_placement lp;
    for (int g = 0; g < p.num_gpus(); ++g) {
      int n = 0;
      for (std::size_t s = 0; s < src.phy2log.size(); ++s)
        if (src.slot_gpu[s] == g) {
          lp.phy2log.push_back(src.phy2log[s]);
          lp.slot_gpu.push_back(g);
          if (keep_shares) lp.share.push_back(src.share[s]);
          if (keep_ranks) lp.replica_rank.push_back(src.replica_rank[s]);
          ++n;
        }
      per_gpu = n;
    }
    layers.push_back(std::move(lp));
  }
  return placement(cluster_spec::equal(p.num_gpus(), per_gpu, p.cluster().num_nodes), p.num_experts(), std::move(layers));
}

io::placement_document round_trip(io::placement_format f, const placement& p, const io::placement_metadata& m,
                                  io::placement_read_options opt) {
  std::ostringstream main, lp;
  switch (f) {
    case io::placement_format::gem: io::write_placement_gem(main, p, m); return io::read_placement_gem(main.str(), "mem.json");
    case io::placement_format::eplb: io::write_placement_eplb(main, p); return io::read_placement_eplb(main.str(), "mem.json", opt);
    case io::placement_format::sglang: {
      io::write_placement_sglang(main, &lp, p, m);
      const auto lp_text = lp.str();
      return io::read_placement_sglang(main.str(), "mem.json", &lp_text, "mem.lp.json", opt);
    }
    case io::placement_format::trtllm: io::write_placement_trtllm(main, p, m); return io::read_placement_trtllm(main.str(), "mem.yaml", opt);
  }
  return {};
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("the gem format round-trips every placement exactly, with its metadata") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 150; ++trial) {
    const auto p = random_placement(rng, trial % 2 == 0, trial % 3 == 0, trial % 4 == 0 ? 2 : 0);
    io::placement_metadata m;
    if (trial % 2) {
      m.strategy = "gem";
      for (int l = 0; l < p.num_layers(); ++l) {
        m.layer_ids.push_back(3 + 2 * l);
        std::vector<double> t;
        for (int g = 0; g < p.num_gpus(); ++g) t.push_back(std::uniform_real_distribution<double>(1e-6, 1e-3)(rng));
        m.predicted_gpu_seconds.push_back(t);
      }
    }
    const auto back = round_trip(io::placement_format::gem, p, m, {});
    CHECK(back.placement == p);
    CHECK(back.placement.cluster().slots_per_gpu == p.cluster().slots_per_gpu);
    CHECK(back.metadata == m);
  }
}

TEST_CASE("the eplb format keeps phy2log, log2phy (replica ranks) and logcnt, GPUs rank-major, shares even") {
  std::mt19937 rng(8);
  for (int trial = 0; trial < 150; ++trial) {
    const auto p = random_placement(rng, true, trial % 2 == 0);
    const auto back = round_trip(io::placement_format::eplb, p, {}, {.num_gpus = p.num_gpus(), .num_nodes = p.cluster().num_nodes});
    const auto want = rank_major_reference(p, false, true);
    CHECK(back.placement == want);
    // Same triple as the library derives from the original placement.
    const auto a = io::to_eplb_tables(p), b = io::to_eplb_tables(back.placement);
    CHECK(a.phy2log == b.phy2log);
    CHECK(a.log2phy == b.log2phy);
    CHECK(a.logcnt == b.logcnt);
  }
}

TEST_CASE("the sglang format keeps the map, the replica shares and the model layer ids, GPUs rank-major, replicas in slot order") {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 150; ++trial) {
    const auto p = random_placement(rng, true, false);
    io::placement_metadata m;
    if (trial % 2)  // model layers with gaps, e.g. dense layers in between
      for (int l = 0; l < p.num_layers(); ++l) m.layer_ids.push_back(1 + 2 * l + trial % 3);
    const auto back = round_trip(io::placement_format::sglang, p, m, {});
    CHECK(back.placement == rank_major_reference(p, true, false));
    CHECK(back.metadata.layer_ids == m.layer_ids);
    // Without the LP file (or an explicit --gpus), the EP size is unknown.
    std::ostringstream main;
    io::write_placement_sglang(main, nullptr, p, m);
    CHECK_THROWS_AS((void)io::read_placement_sglang(main.str(), "m.json", nullptr, {}, {}), gem::config_error);
    // SGLang indexes rows by model layer: max(layer_ids) + 1 rows, the others its trivial map.
    const auto map = nlohmann::json::parse(main.str())["physical_to_logical_map"];
    const auto P = p.layer(layer_id{0}).phy2log.size();
    CHECK(map.size() == (m.layer_ids.empty() ? static_cast<std::size_t>(p.num_layers()) : static_cast<std::size_t>(m.layer_ids.back()) + 1));
    for (std::size_t row = 0; row < map.size(); ++row) {
      const auto it = std::find(m.layer_ids.begin(), m.layer_ids.end(), static_cast<std::int32_t>(row));
      if (!m.layer_ids.empty() && it == m.layer_ids.end())
        for (std::size_t s = 0; s < P; ++s) CHECK(map[row][s] == static_cast<int>(s) % p.num_experts());
    }
    if (m.layer_ids.empty()) {
      const auto bare = io::read_placement_sglang(main.str(), "m.json", nullptr, {}, {.num_gpus = p.num_gpus(), .num_nodes = p.cluster().num_nodes});
      CHECK(bare.placement == rank_major_reference(p, false, false));
    }
  }
}

TEST_CASE("the trtllm format keeps the expert of every slot and the model layer ids, GPUs rank-major") {
  std::mt19937 rng(10);
  for (int trial = 0; trial < 150; ++trial) {
    const auto p = random_placement(rng, true, false);
    io::placement_metadata m;
    if (trial % 2)
      for (int l = 0; l < p.num_layers(); ++l) m.layer_ids.push_back(3 + l * (trial % 3 + 1));
    const auto back = round_trip(io::placement_format::trtllm, p, m, {});  // EP size from the "# gem:" comment
    CHECK(back.placement == rank_major_reference(p, false, false));
    CHECK(back.metadata.layer_ids == m.layer_ids);
  }
}

TEST_CASE("format_losses says what each engine format drops") {
  std::mt19937 rng(3);
  const auto p = random_placement(rng, true, false);
  const io::placement_metadata m{.strategy = "gem"};
  CHECK(io::format_losses(p, m, io::placement_format::gem).empty());
  const auto eplb = io::format_losses(p, m, io::placement_format::eplb);
  CHECK(std::any_of(eplb.begin(), eplb.end(), [](const std::string& s) { return s.find("shares") != std::string::npos; }));
  const auto sg = io::format_losses(p, m, io::placement_format::sglang);
  CHECK(std::none_of(sg.begin(), sg.end(), [](const std::string& s) { return s.find("shares") != std::string::npos; }));
  const auto rm = io::to_rank_major(placement::from_phy2log(cluster_spec::equal(2, 2), 3, {{0, 1, 2, 0}}));
  CHECK(io::format_losses(rm, {}, io::placement_format::trtllm).empty());
}

TEST_CASE("engine formats refuse placements with different slot counts per GPU, naming layer and GPU") {
  const placement p(cluster_spec{.num_gpus = 2, .slots_per_gpu = {3, 1}}, 3, {layer_placement{{0, 1, 2, 0}, {0, 0, 0, 1}, {}, {}}});
  std::ostringstream os;
  CHECK_THROWS_WITH_AS(io::write_placement_eplb(os, p), doctest::Contains("layer 0: GPU 1 holds 1 slots, GPU 0 holds 3"),
                       gem::placement_error);
  CHECK_THROWS_AS(io::write_placement_trtllm(os, p), gem::placement_error);
  CHECK_THROWS_AS(io::write_placement_sglang(os, nullptr, p), gem::placement_error);
  io::write_placement_gem(os, p);  // the gem format carries it
}

TEST_CASE("every eplb-vector file reads as a placement and writes back the vector's exact triple") {
  const auto dir = gem::test::shared_path("eplb-vectors");
  if (dir.empty()) return;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const auto vec = nlohmann::json::parse(read_text(entry.path()));
    const int gpus = vec["num_gpus"].get<int>(), nodes = vec["num_nodes"].get<int>();
    const auto doc = io::read_placement_file(entry.path(), io::placement_format::eplb,
                                             {.num_gpus = gpus, .num_nodes = gpus % nodes == 0 ? nodes : 1});
    std::ostringstream os;
    io::write_placement_eplb(os, doc.placement);
    const auto out = nlohmann::json::parse(os.str());
    CHECK_MESSAGE(out.size() == 3, entry.path().filename());
    CHECK_MESSAGE(out["phy2log"] == vec["phy2log"], entry.path().filename());
    CHECK_MESSAGE(out["log2phy"] == vec["log2phy"], entry.path().filename());
    CHECK_MESSAGE(out["logcnt"] == vec["logcnt"], entry.path().filename());
  }
  CHECK(files == 8);
}

TEST_CASE("check_eplb_tables rejects tables whose logcnt, log2phy and phy2log disagree") {
  const auto good = io::to_eplb_tables(placement::from_phy2log(cluster_spec::equal(2, 2), 3, {{0, 1, 2, 0}}));
  io::check_eplb_tables(good, 2);
  auto t = good;
  t.logcnt[0][0] = 1;
  CHECK_THROWS_WITH_AS(io::check_eplb_tables(t), doctest::Contains("expert 0: logcnt says 1 replicas, phy2log holds 2"), gem::placement_error);
  t = good;
  t.log2phy[0][1][0] = 0;  // slot 0 holds expert 0, not 1
  CHECK_THROWS_WITH_AS(io::check_eplb_tables(t), doctest::Contains("phy2log says that slot holds expert 0"), gem::placement_error);
  t = good;
  std::swap(t.log2phy[0][0][0], t.log2phy[0][0][1]);
  io::check_eplb_tables(t);  // replica order is free
  t.log2phy[0][1] = {-1, 1};
  CHECK_THROWS_WITH_AS(io::check_eplb_tables(t), doctest::Contains("after -1 padding"), gem::placement_error);
  CHECK_THROWS_WITH_AS(io::check_eplb_tables(good, 3), doctest::Contains("4 slots do not divide over 3 GPUs"), gem::placement_error);
}

TEST_CASE("sglang output satisfies SGLang's constraints: EP size divides P, P - E redundant, LP map as SGLang derives it") {
  std::mt19937 rng(12);
  for (int trial = 0; trial < 50; ++trial) {
    const auto p = random_placement(rng, true, false);
    std::ostringstream main, lp;
    io::write_placement_sglang(main, &lp, p);
    const auto loc = nlohmann::json::parse(main.str());
    REQUIRE(loc.size() == 1);  // SGLang passes every key to init_by_mapping: nothing else allowed
    const auto& map = loc["physical_to_logical_map"];
    const auto P = map[0].size();
    CHECK(P % static_cast<std::size_t>(p.num_gpus()) == 0);
    CHECK(P - static_cast<std::size_t>(p.num_experts()) == static_cast<std::size_t>(p.layer(layer_id{0}).phy2log.size()) - p.num_experts());
    const auto prob = nlohmann::json::parse(lp.str());
    for (std::size_t l = 0; l < map.size(); ++l) {
      CHECK(map[l].size() == P);
      // Independent derivation of SGLang's logical_to_all_physical_map: ascending slots per expert.
      for (int e = 0; e < p.num_experts(); ++e) {
        std::vector<int> slots;
        for (std::size_t s = 0; s < P; ++s)
          if (map[l][s] == e) slots.push_back(static_cast<int>(s));
        CHECK(!slots.empty());
        const auto row = prob["logical_to_all_physical_map"][l][e].get<std::vector<int>>();
        const auto pr = prob["log2phy_prob"][l][e].get<std::vector<double>>();
        double sum = 0;
        for (std::size_t r = 0; r < row.size(); ++r) {
          CHECK(row[r] == (r < slots.size() ? slots[r] : -1));
          sum += pr[r];
        }
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-12));
      }
    }
  }
  io::sglang_tables t{.physical_to_logical_map = {{0, 1, 2, 0, 1, 2}}};
  io::check_sglang_tables(t, 3, 3, 3);
  CHECK_THROWS_WITH_AS(io::check_sglang_tables(t, 4, 3), doctest::Contains("EP size (4) must divide the 6"), gem::placement_error);
  CHECK_THROWS_WITH_AS(io::check_sglang_tables(t, 3, 3, 2), doctest::Contains("P - E = 3 but --ep-num-redundant-experts is 2"),
                       gem::placement_error);
  CHECK_THROWS_WITH_AS(io::check_sglang_tables(t, 3, 4), doctest::Contains("expert 3 has no physical slot"), gem::placement_error);
  t.logical_to_all_physical_map = {{{0, 3}, {1, 4}, {2, 5}}};
  t.log2phy_prob = {{{0.5, 0.5}, {0.25, 0.75}, {1.0, 0.5}}};
  CHECK_THROWS_WITH_AS(io::check_sglang_tables(t, 3, 3), doctest::Contains("expert 2: log2phy_prob sums to 1.5"), gem::placement_error);
  t.log2phy_prob[0][2] = {0.5, 0.5};
  io::check_sglang_tables(t, 3, 3);
  t.logical_to_all_physical_map[0][0] = {3, 0};
  CHECK_THROWS_WITH_AS(io::check_sglang_tables(t, 3, 3), doctest::Contains("SGLang derives 0"), gem::placement_error);
}

TEST_CASE("trtllm output satisfies TRT-LLM's constraints: num_slots = P, each layer lists P ids, rank-major") {
  std::mt19937 rng(13);
  for (int trial = 0; trial < 50; ++trial) {
    const auto p = random_placement(rng, true, true);
    std::ostringstream os;
    io::write_placement_trtllm(os, p);
    // Independent reading of the flow lists gem writes ("  <layer>: [a, b, ...]").
    std::istringstream in(os.str());
    std::string line;
    int num_slots = -1, layers = 0;
    while (std::getline(in, line)) {
      if (line.rfind("num_slots: ", 0) == 0) num_slots = std::stoi(line.substr(11));
      const auto b = line.find('[');
      if (b == std::string::npos || line[0] == '#') continue;
      const int layer = std::stoi(line.substr(0, line.find(':')));
      std::vector<int> ids;
      std::stringstream ss(line.substr(b + 1, line.find(']') - b - 1));
      for (std::string tok; std::getline(ss, tok, ',');) ids.push_back(std::stoi(tok));
      CHECK(static_cast<int>(ids.size()) == num_slots);
      // Rank-major: the ids of rank r are the experts the placement puts on GPU r.
      const auto per = num_slots / p.num_gpus();
      for (int g = 0; g < p.num_gpus(); ++g) {
        std::multiset<int> want, got(ids.begin() + g * per, ids.begin() + (g + 1) * per);
        for (auto s : p.gpu_slots(layer_id{layer}, gem::gpu_id{g})) want.insert(p.layer(layer_id{layer}).phy2log[s]);
        CHECK(want == got);
      }
      ++layers;
    }
    CHECK(num_slots == static_cast<int>(p.layer(layer_id{0}).phy2log.size()));
    CHECK(num_slots % p.num_gpus() == 0);
    CHECK(layers == p.num_layers());
  }
  io::trtllm_config c{.num_slots = 4, .initial_global_assignments = {{3, {0, 1, 2, 0}}}};
  io::check_trtllm_config(c, 2, 3);
  CHECK_THROWS_WITH_AS(io::check_trtllm_config(c, 3, 3), doctest::Contains("multiple of the EP size (3)"), gem::placement_error);
  CHECK_THROWS_WITH_AS(io::check_trtllm_config(c, 2, 5), doctest::Contains("num_slots (4) must be at least the 5 experts"), gem::placement_error);
  c.initial_global_assignments[4] = {0, 1, 2};
  CHECK_THROWS_WITH_AS(io::check_trtllm_config(c, 2, 3), doctest::Contains("layer 4: lists 3 expert ids, num_slots is 4"), gem::placement_error);
}

TEST_CASE("the trtllm reader takes PyYAML's block style, flow mappings, comments and quoted keys") {
  const std::string block =
      "---\n# from generate_eplb_config.py\ninitial_global_assignments:\n  3:\n  - 0\n  - 1\n  - 2\n  - 0\n"
      "  '4':\n    - 2\n    - 1\n    - 0\n    - 1   # trailing comment\nlayer_updates_per_iter: 0\nnum_slots: 4\n";
  const auto a = io::read_placement_trtllm(block, "b.yaml", {.num_gpus = 2});
  CHECK(a.metadata.layer_ids == std::vector<std::int32_t>{3, 4});
  CHECK(a.placement.layer(layer_id{1}).phy2log == std::vector<std::int32_t>{2, 1, 0, 1});
  const std::string flow = "num_slots: 4\ninitial_global_assignments: {3: [0, 1,\n   2, 0], 4: [2, 1, 0, 1]}\n";
  const auto b = io::read_placement_trtllm(flow, "f.yaml", {.num_gpus = 2});
  CHECK(b.placement == a.placement);
  CHECK(b.metadata.layer_ids == a.metadata.layer_ids);
}

TEST_CASE("malformed placement files are rejected naming file, line and field") {
  SUBCASE("gem JSON") {
    CHECK_THROWS_WITH_AS((void)io::read_placement_gem("{\n \"format\": \"gem.placement\",\n \"version\": 1,\n", "g.json"),
                         doctest::Contains("g.json:4: not valid JSON"), gem::parse_error);
    const std::string text =
        "{\"format\": \"gem.placement\", \"version\": 1, \"num_experts\": 2,\n"
        " \"cluster\": {\"num_gpus\": 2, \"slots_per_gpu\": [1], \"num_nodes\": 1},\n"
        " \"layers\": [\n  {\"phy2log\": [0, 1], \"slot_gpu\": [0, 1], \"share\": [1, 1], \"replica_rank\": [0, 0]},\n"
        "  {\"phy2log\": [0, 1], \"slot_gpu\": [0, 2], \"share\": [1, 1], \"replica_rank\": [0, 0]}]}\n";
    CHECK_THROWS_WITH_AS((void)io::read_placement_gem(text, "g.json"),
                         doctest::Contains("g.json:5: field 'layers[1].slot_gpu[1]': value 2 outside [0, 1]"), gem::parse_error);
    auto wrong_type = text;
    wrong_type.replace(wrong_type.find("\"share\": [1, 1]"), 15, "\"share\": [1, \"x\"]");
    CHECK_THROWS_WITH_AS((void)io::read_placement_gem(wrong_type, "g.json"),
                         doctest::Contains("g.json:4: field 'layers[0].share[1]': expected a number, got string"), gem::parse_error);
    auto no_cluster = text;
    no_cluster.replace(no_cluster.find("\"cluster\""), 9, "\"clusterX\"");
    CHECK_THROWS_WITH_AS((void)io::read_placement_gem(no_cluster, "g.json"), doctest::Contains("field 'cluster': missing"), gem::parse_error);
  }
  SUBCASE("eplb JSON") {
    const std::string t = "{\"phy2log\": [[0, 1, 0, 1]],\n \"log2phy\": [[[0, 2], [1, 3]]],\n \"logcnt\": [[2, 1]]}";
    CHECK_THROWS_WITH_AS((void)io::read_placement_eplb(t, "e.json", {.num_gpus = 2}),
                         doctest::Contains("e.json: field 'phy2log/log2phy/logcnt': eplb: layer 0: expert 1: logcnt says 1"),
                         gem::parse_error);
    const std::string f = "{\"phy2log\": [[0, 1.5]], \"log2phy\": [[[0], [1]]], \"logcnt\": [[1, 1]]}";
    CHECK_THROWS_WITH_AS((void)io::read_placement_eplb(f, "e.json", {.num_gpus = 2}),
                         doctest::Contains("field 'phy2log[0][1]': expected an integer, got number 1.5"), gem::parse_error);
  }
  SUBCASE("sglang JSON") {
    CHECK_THROWS_WITH_AS((void)io::read_placement_sglang("{\"physical_to_logical_map\": [[0, 1, 2]]}", "s.json", nullptr, {}, {.num_gpus = 2}),
                         doctest::Contains("EP size (2) must divide the 3"), gem::parse_error);
    CHECK_THROWS_WITH_AS((void)io::read_placement_sglang("{\"logical_count\": [[1]]}", "s.json", nullptr, {}, {.num_gpus = 1}),
                         doctest::Contains("field 'physical_to_logical_map': missing"), gem::parse_error);
  }
  SUBCASE("trtllm YAML") {
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("num_slots: 4\ninitial_global_assignments:\n  3: [0, 1, x, 0]\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("t.yaml:3: field 'initial_global_assignments.3[2]': expected an integer, got 'x'"),
                         gem::parse_error);
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("num_slots: 4\ninitial_global_assignments:\n  3: [0, 1, 2\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("t.yaml:3: unterminated flow collection"), gem::parse_error);
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("num_slots: 4\ninitial_global_assignments:\n  3: [0, 1, 2]\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("t.yaml:3: field 'initial_global_assignments.3': lists 3 expert ids, num_slots is 4"),
                         gem::parse_error);
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("initial_global_assignments:\n  3: [0, 1]\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("field 'num_slots': missing"), gem::parse_error);
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("num_slots: 2\n\tinitial_global_assignments: {}\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("t.yaml:2: tab in indentation"), gem::parse_error);
    // Hostile nesting is refused before it can exhaust the stack.
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm("num_slots: " + std::string(100000, '[') + std::string(100000, ']') + "\n", "t.yaml", {.num_gpus = 2}),
                         doctest::Contains("nested deeper than 64"), gem::parse_error);
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
    CHECK_THROWS_WITH_AS((void)io::read_placement_trtllm(deep, "t.yaml", {.num_gpus = 2}), doctest::Contains("nested deeper than 64"),
                         gem::parse_error);
  }
  SUBCASE("unknown content") {
    CHECK_THROWS_WITH_AS((void)io::detect_placement_format("{\"weight\": [[1]]}", "w.json"),
                         doctest::Contains("not a placement file gem knows"), gem::parse_error);
    CHECK(io::detect_placement_format("num_slots: 3", "x.yaml") == io::placement_format::trtllm);
  }
}

TEST_CASE("placement files: sglang writes the LP file beside the location file, detection picks the format") {
  std::mt19937 rng(21);
  const auto p = io::to_rank_major(random_placement(rng, true, false));
  const auto dir = std::filesystem::temp_directory_path() / ("gem_formats_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (auto f : {io::placement_format::gem, io::placement_format::eplb, io::placement_format::sglang, io::placement_format::trtllm}) {
    const auto path = dir / (std::string(io::format_name(f)) + (f == io::placement_format::trtllm ? ".yaml" : ".json"));
    const auto written = io::write_placement_file(path, f, p);
    CHECK(written.size() == (f == io::placement_format::sglang ? 2u : 1u));
    CHECK(io::detect_placement_format(read_text(path), path.string()) == f);
    const auto back = io::read_placement_file(path, {.num_gpus = p.num_gpus(), .num_nodes = p.cluster().num_nodes});
    CHECK(io::to_eplb_tables(back.placement).phy2log == io::to_eplb_tables(p).phy2log);
    if (f == io::placement_format::gem || f == io::placement_format::sglang) CHECK(back.placement.layers()[0].share == p.layers()[0].share);
  }
  CHECK_THROWS_AS((void)io::read_placement_file(dir / "missing.json", io::placement_format::gem), gem::io_error);
  std::filesystem::remove_all(dir);
}
