// Runs the built `gem` command: help on every subcommand, exit codes (0 ok, 2 bad usage or input,
// 1 internal), EPLB parity through `gem place`, engine constraints of what it writes, conversions,
// evaluate's JSON and SVG, the demo, and malformed traces, loads and profiles.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "gem/io/placement_formats.hpp"
#include "shared_data.hpp"

namespace fs = std::filesystem;
namespace io = gem::io;

namespace {

struct result {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch folder, removed at the end of the test.
struct scratch {
  fs::path dir;
  scratch() {
    static int n = 0;
    dir = fs::temp_directory_path() / ("gem_cli_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(dir);
  }
  ~scratch() { fs::remove_all(dir); }
  [[nodiscard]] std::string operator/(const std::string& name) const { return (dir / name).string(); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(dir / name, std::ios::binary) << text; }
};

result run(const std::string& args) {
  static int n = 0;
  const auto base = fs::temp_directory_path() / ("gem_cli_run_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  const auto cmd = std::string(GEM_CLI_PATH) + " " + args + " >" + base.string() + ".out 2>" + base.string() + ".err";
  const int status = std::system(cmd.c_str());
  result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(base.string() + ".out");
  r.err = slurp(base.string() + ".err");
  fs::remove(base.string() + ".out");
  fs::remove(base.string() + ".err");
  return r;
}

std::string shared(const std::string& rel) { return gem::test::shared_path(rel).string(); }

}  // namespace

TEST_CASE("gem --help and every subcommand's --help exit 0 and show an example") {
  const auto top = run("--help");
  CHECK(top.rc == 0);
  CHECK(top.out.find("Examples:") != std::string::npos);
  for (const char* sub : {"stats", "place", "evaluate", "convert", "demo"}) {
    const auto r = run(std::string(sub) + " --help");
    CHECK_MESSAGE(r.rc == 0, sub);
    CHECK_MESSAGE(r.out.find("Example") != std::string::npos, sub);
    CHECK_MESSAGE(r.out.find("  gem " + std::string(sub)) != std::string::npos, sub);
  }
  const auto v = run("--version");
  CHECK(v.rc == 0);
  CHECK(v.out.find("gem 0.") != std::string::npos);
  CHECK(run("").rc == 0);
}

TEST_CASE("bad usage exits 2 with a message on stderr naming the option") {
  auto r = run("place --gpus 8 -o x.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--trace or --loads") != std::string::npos);
  r = run("place --loads x.json --gpus 8");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--output is required") != std::string::npos);
  r = run("evaluate --trace x --gpus zero");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--gpus") != std::string::npos);
  r = run("place --loads x.json -o y --strategy fastest");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--strategy") != std::string::npos);
  r = run("frobnicate");
  CHECK(r.rc == 2);
  r = run("place --loads x.json -o y --speeds 1,1 --variability high");
  CHECK(r.rc == 2);
  CHECK(r.err.find("excludes") != std::string::npos);
}

TEST_CASE("gem place --strategy eplb on every eplb-vector input gives the vector's phy2log, log2phy and logcnt") {
  const auto dir = gem::test::shared_path("eplb-vectors");
  if (dir.empty()) return;
  scratch tmp;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const auto vec = nlohmann::json::parse(slurp(entry.path()));
    const auto out = tmp / "eplb.json";
    const auto args = "place --loads " + entry.path().string() + " --strategy eplb --format eplb -o " + out +
                      " --gpus " + std::to_string(vec["num_gpus"].get<int>()) + " --replicas " +
                      std::to_string(vec["num_replicas"].get<int>()) + " --groups " + std::to_string(vec["num_groups"].get<int>()) +
                      " --nodes " + std::to_string(vec["num_nodes"].get<int>());
    const auto r = run(args);
    REQUIRE_MESSAGE(r.rc == 0, (entry.path().filename().string() + ": " + r.err));
    const auto got = nlohmann::json::parse(slurp(out));
    CHECK_MESSAGE(got.size() == 3, entry.path().filename());
    CHECK_MESSAGE(got["phy2log"] == vec["phy2log"], entry.path().filename());
    CHECK_MESSAGE(got["log2phy"] == vec["log2phy"], entry.path().filename());
    CHECK_MESSAGE(got["logcnt"] == vec["logcnt"], entry.path().filename());
  }
  CHECK(files == 8);
}

TEST_CASE("gem place writes sglang and trtllm files that meet the engines' constraints, and gem files that read back") {
  const auto vec_path = shared("eplb-vectors/small_hier.json");  // 4 layers x 16 experts
  if (vec_path.empty() || !fs::exists(vec_path)) return;
  scratch tmp;
  for (const char* strategy : {"linear", "round_robin", "eplb", "speed_proportional", "gem"}) {
    CAPTURE(strategy);
    auto r = run("place --loads " + vec_path + " --gpus 4 --replicas 24 --variability high --strategy " + strategy +
                 " --format gem -o " + tmp / "p.json");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const auto g = io::read_placement_file(tmp / "p.json", io::placement_format::gem);
    CHECK(g.metadata.strategy == strategy);
    CHECK(g.metadata.predicted_gpu_seconds.size() == static_cast<std::size_t>(g.placement.num_layers()));
    r = run("convert " + tmp / "p.json" + " --to sglang -o " + tmp / "loc.json");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const auto loc = nlohmann::json::parse(slurp(tmp / "loc.json"));
    CHECK(loc.size() == 1);  // SGLang passes every key to init_by_mapping
    const auto lp = nlohmann::json::parse(slurp(tmp / "loc.lp.json"));
    io::sglang_tables t{.physical_to_logical_map = loc["physical_to_logical_map"].get<std::vector<std::vector<std::int32_t>>>(),
                        .logical_to_all_physical_map = lp["logical_to_all_physical_map"].get<std::vector<std::vector<std::vector<std::int32_t>>>>(),
                        .log2phy_prob = lp["log2phy_prob"].get<std::vector<std::vector<std::vector<double>>>>()};
    io::check_sglang_tables(t, 4, 16, 8);  // EP 4 divides P = 24, P - E = 8 redundant
    r = run("convert " + tmp / "p.json" + " --to trtllm --first-layer 1 -o " + tmp / "lb.yaml");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const auto doc = io::read_placement_trtllm(slurp(tmp / "lb.yaml"), "lb.yaml", {.num_gpus = 4});
    CHECK(doc.metadata.layer_ids.front() == 1);
    io::check_trtllm_config(io::to_trtllm_config(doc.placement, doc.metadata.layer_ids), 4, 16);
    CHECK(slurp(tmp / "lb.yaml").find("num_slots: 24\n") != std::string::npos);
    // The engine files hold the same experts per GPU as the full placement.
    CHECK(io::to_eplb_tables(g.placement).phy2log == io::to_eplb_tables(doc.placement).phy2log);
  }
  // Extended slot counts cannot be written for an engine; the message says what to do instead.
  auto r = run("place --loads " + vec_path + " --gpus 4 --replicas 24 --variability degraded --strategy gem --slot-mode extended "
               "--format sglang -o " + tmp / "x.json");
  CHECK(r.rc == 2);  // a 2.2x slower GPU 0 gets fewer slots
  CHECK(r.err.find("GPU 0 holds") != std::string::npos);
  CHECK(r.err.find("--format gem") != std::string::npos);
}

TEST_CASE("gem convert chains gem -> trtllm -> eplb -> sglang -> gem keeping which expert sits on which GPU") {
  const auto vec_path = shared("eplb-vectors/small_hier.json");
  if (vec_path.empty() || !fs::exists(vec_path)) return;
  scratch tmp;
  REQUIRE(run("place --loads " + vec_path + " --gpus 4 --replicas 24 --groups 4 --nodes 2 --strategy eplb -o " + tmp / "a.json").rc == 0);
  auto r = run("convert " + tmp / "a.json" + " -o " + tmp / "b.yaml");  // format from the extension
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  r = run("convert " + tmp / "b.yaml" + " --to eplb -o " + tmp / "c.json");  // EP size from gem's comment
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  r = run("convert " + tmp / "c.json" + " --to sglang -o " + tmp / "d.json");
  CHECK(r.rc == 2);  // the eplb triple does not carry the GPU count
  CHECK(r.err.find("--gpus") != std::string::npos);
  r = run("convert " + tmp / "c.json" + " --gpus 4 --nodes 2 --to sglang -o " + tmp / "d.json");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  r = run("convert " + tmp / "d.json" + " --to gem -o " + tmp / "e.json");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const auto a = io::read_placement_file(tmp / "a.json").placement;
  const auto e = io::read_placement_file(tmp / "e.json").placement;
  CHECK(io::to_eplb_tables(a).phy2log == io::to_eplb_tables(e).phy2log);
  CHECK(e.cluster().num_nodes == 2);
  // The eplb file matches the vector: replica ranks survived the gem and trtllm steps? (trtllm drops
  // them: the triple from c.json has ranks in slot order, log2phy may differ, phy2log may not.)
  const auto vec = nlohmann::json::parse(slurp(vec_path));
  CHECK(nlohmann::json::parse(slurp(tmp / "c.json"))["phy2log"] == vec["phy2log"]);
}

TEST_CASE("gem convert turns traces into gem-trace and CSV counts") {
  const auto esft = shared("traces/esft-deepseek-v2-lite/results/expert_scores/intent");
  if (esft.empty() || !fs::exists(esft)) return;
  scratch tmp;
  auto r = run("convert --trace " + esft + " --batch 1024 -o " + tmp / "t.trace");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(slurp(tmp / "t.trace").rfind("gem-trace 1\n", 0) == 0);
  r = run("convert --trace " + tmp / "t.trace" + " -o " + tmp / "t.csv");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  r = run("convert --trace " + tmp / "t.csv" + " --to gem -o " + tmp / "u.trace");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  // SGLang indexes its map by model layer: ESFT's MoE layers are 1..26 (layer 0 is dense), so the
  // file has 27 rows and row 0 is SGLang's trivial map.
  r = run("place --trace " + esft + " --gpus 8 --strategy eplb --format sglang -o " + tmp / "loc.json");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const auto map = nlohmann::json::parse(slurp(tmp / "loc.json"))["physical_to_logical_map"];
  CHECK(map.size() == 27);
  for (int s = 0; s < 64; ++s) CHECK(map[0][static_cast<std::size_t>(s)] == s);
  CHECK(io::read_placement_file(tmp / "loc.json").metadata.layer_ids.front() == 1);
  // Counts survive gem -> csv -> gem (the token routing does not: CSV holds counts only).
  const auto counts_of = [](const std::string& text) { return text.substr(text.find("counts\n"), text.find("end\n") - text.find("counts\n")); };
  const auto t = slurp(tmp / "t.trace"), u = slurp(tmp / "u.trace");
  CHECK(counts_of(u).substr(0, 200) == counts_of(t).substr(0, 200));
}

TEST_CASE("gem evaluate prints the side-by-side table and writes the JSON summary and an SVG") {
  const auto esft = shared("traces/esft-deepseek-v2-lite/results/expert_scores/law");
  if (esft.empty() || !fs::exists(esft)) return;
  scratch tmp;
  const auto r = run("evaluate --trace " + esft + " --gpus 8 --variability high --strategies linear,round_robin,eplb --json " +
                     tmp / "s.json" + " --svg " + tmp / "r.svg");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  for (const char* col : {"strategy", "mean", "p50", "p99", "vs eplb", "vs bound", "fluid bound", "round_robin"})
    CHECK_MESSAGE(r.out.find(col) != std::string::npos, col);
  const auto j = nlohmann::json::parse(slurp(tmp / "s.json"));
  CHECK(j.size() == 2);
  CHECK(j["strategies"].size() == 3);
  for (const auto& [name, s] : j["strategies"].items()) {
    CAPTURE(name);
    CHECK(s.size() == 3);
    CHECK(s["p50"].get<double>() <= s["p99"].get<double>());
    CHECK(s["mean"].get<double>() >= j["fluid_bound"]["mean"].get<double>());
  }
  const auto svg = slurp(tmp / "r.svg");
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find("</svg>") != std::string::npos);
  std::size_t bars = 0;
  for (auto p = svg.find("<rect x"); p != std::string::npos; p = svg.find("<rect x", p + 1)) ++bars;
  CHECK(bars == 1 + 3 * 8);  // background + one bar per GPU per strategy
}

TEST_CASE("--window-tokens: gem searches block-bootstrap steps of a per-token trace; count-only traces and loads are refused") {
  const auto esft = shared("traces/esft-deepseek-v2-lite/results/expert_scores/law");
  if (esft.empty() || !fs::exists(esft)) return;
  scratch tmp;
  // Steps of 4096 tokens: the fit half is one step, fewer than the 64 the bootstrap draws.
  const auto base = "evaluate --trace " + esft + " --batch 4096 --gpus 8 --variability high --strategies eplb,gem --json ";
  const auto off = run(base + tmp / "off.json");
  const auto on = run(base + tmp / "on.json --window-tokens 128");
  REQUIRE_MESSAGE(off.rc == 0, off.err);
  REQUIRE_MESSAGE(on.rc == 0, on.err);
  const auto a = nlohmann::json::parse(slurp(tmp / "off.json")), b = nlohmann::json::parse(slurp(tmp / "on.json"));
  CHECK(a["strategies"]["eplb"] == b["strategies"]["eplb"]);  // eplb places by the mean: windows change nothing
  CHECK(a["strategies"]["gem"]["mean"] != b["strategies"]["gem"]["mean"]);
  CHECK(run(base + tmp / "again.json --window-tokens 128").rc == 0);
  CHECK(slurp(tmp / "again.json") == slurp(tmp / "on.json"));  // deterministic

  tmp.write("c.csv", "layer,step,expert,count\n0,0,0,5\n0,0,1,2\n0,1,0,3\n0,1,1,4\n");
  auto r = run("evaluate --trace " + tmp / "c.csv" + " --gpus 2 --window-tokens 16");
  CHECK(r.rc == 2);
  CHECK(r.err.find("per-token routing") != std::string::npos);
  tmp.write("w.json", R"({"weight": [[4, 3, 2, 1]]})");
  r = run("place --loads " + tmp / "w.json" + " --gpus 2 -o " + tmp / "p.json --window-tokens 16");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--window-tokens needs --trace") != std::string::npos);
  CHECK(run("evaluate --trace " + esft + " --gpus 8 --window-tokens -1").rc != 0);
}

TEST_CASE("malformed traces, loads and profiles exit 2 naming the file and the field") {
  scratch tmp;
  tmp.write("bad.trace", "gem-trace 1\nlayers 1\nsteps x\n");
  auto r = run("evaluate --trace " + tmp / "bad.trace" + " --gpus 2");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad.trace" + ":3") != std::string::npos);
  tmp.write("bad.csv", "layer,step,expert,count\n0,0,0,5\n0,0,1,-2\n");
  r = run("evaluate --trace " + tmp / "bad.csv" + " --gpus 2");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad.csv" + ":3") != std::string::npos);
  CHECK(r.err.find("count") != std::string::npos);
  fs::create_directories(tmp.dir / "esft");
  tmp.write("esft/expert_weights_1.txt", "1\t2\t3\t4\t5\t6\t\t0.1\t0.1\t0.1\t0.1\t0.1\n");
  r = run("place --trace " + tmp / "esft" + " --gpus 8 -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find("expert_weights_1.txt:1") != std::string::npos);
  tmp.write("bad.json", "{\"weight\": [[1, 2, 3, 4],\n [1, 2, \"three\", 4]]}");
  r = run("place --loads " + tmp / "bad.json" + " --gpus 2 -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad.json" + ":2: field 'weight[1][2]'") != std::string::npos);
  tmp.write("bad_loads.csv", "layer,expert,load\n0,0,1\n0,1,nan\n");
  r = run("place --loads " + tmp / "bad_loads.csv" + " --gpus 2 -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad_loads.csv" + ":3: field 'load'") != std::string::npos);
  tmp.write("good.json", "{\"weight\": [[1, 2, 3, 4]]}");
  tmp.write("bad_profile.json", "{\"format\": \"gem-profile\",\n \"version\": 1,\n \"gpus\": [}");
  r = run("place --loads " + tmp / "good.json" + " --gpus 2 --profile " + tmp / "bad_profile.json" + " -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad_profile.json") != std::string::npos);
  r = run("place --loads " + tmp / "missing.json" + " --gpus 2 -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find("missing.json") != std::string::npos);
  tmp.write("bad.yaml", "num_slots: 4\ninitial_global_assignments:\n  1: [0, 1, 2, oops]\n");
  r = run("convert " + tmp / "bad.yaml" + " --gpus 2 --to gem -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find(tmp / "bad.yaml" + ":3: field 'initial_global_assignments.1[3]'") != std::string::npos);
  r = run("place --loads " + tmp / "good.json" + " --gpus 3 -o " + tmp / "p.json");
  CHECK(r.rc == 0);  // 4 experts on 3 GPUs: P defaults to 6
  r = run("place --loads " + tmp / "good.json" + " --gpus 3 --replicas 4 -o " + tmp / "p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find("--replicas 4 does not divide over --gpus 3") != std::string::npos);
  r = run("place --loads " + tmp / "good.json" + " --gpus 2 -o " + tmp.dir.string() + "/no/such/dir/p.json");
  CHECK(r.rc == 2);
  CHECK(r.err.find("cannot open") != std::string::npos);
}

TEST_CASE("gem demo prints what it did and the comparison table, in under 10 s") {
#if defined(__SANITIZE_ADDRESS__)
  const std::string args = "demo --budget 2000";  // sanitizer builds run ~30x slower: same paths, smaller search
#else
  const std::string args = "demo";
#endif
  const auto start = std::chrono::steady_clock::now();
  const auto r = run(args);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(r.out.find("vs eplb") != std::string::npos);
  for (const char* row : {"\nlinear ", "\nround_robin ", "\neplb ", "\nspeed_proportional ", "\ngem ", "\ngem (extended) "})
    CHECK_MESSAGE(r.out.find(row) != std::string::npos, row);
  // The table is the last thing printed.
  CHECK(r.out.substr(r.out.rfind("\n", r.out.size() - 2) + 1).rfind("fluid bound", 0) == 0);
#if !defined(__SANITIZE_ADDRESS__)
  CHECK(seconds < 10.0);
  CHECK(run(args).out == r.out);  // seeded: same bytes every run
#else
  (void)seconds;
#endif
}

TEST_CASE("gem profile: help shows an example; without a usable GPU it exits 1 saying why") {
  const auto h = run("profile --help");
  CHECK(h.rc == 0);
  scratch s;
  const auto r = run("profile -o " + s / "p.json");
  if (r.rc == 0) {  // a machine with a GPU and a CUDA build: the profile was written
    CHECK(fs::exists(s / "p.json"));
    return;
  }
  CHECK(r.rc == 1);
  const bool no_device = r.err.find("no CUDA device is visible") != std::string::npos;
  const bool no_cuda = r.err.find("built without CUDA") != std::string::npos;
  CHECK_MESSAGE((no_device || no_cuda), r.err);
  CHECK(!fs::exists(s / "p.json"));
  CHECK(run("profile").rc == (no_cuda ? 1 : 2));  // the CUDA build requires -o before touching a GPU
  if (no_cuda) return;
  // Bad options are usage errors (exit 2, naming the option), found before any GPU is touched.
  const std::pair<const char*, const char*> usage_errors[] = {{" --partitions 40,32 --gpus 2", "--partitions or --gpus"},
                                                               {" --partitions 40,x", "SM counts"},
                                                               {" --path fastest", "--path"},
                                                               {" --shape gpt5", "unknown layer shape"},
                                                               {" --repeats 3", "--repeats"}};
  for (const auto& [args, message] : usage_errors) {
    CAPTURE(args);
    const auto bad = run("profile -o " + s / "p.json" + args);
    CHECK(bad.rc == 2);
    CHECK(bad.err.find(message) != std::string::npos);
  }
}
