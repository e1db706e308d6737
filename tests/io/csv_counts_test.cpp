// Long-format CSV counts: OLMoE's per-domain counts through column selection, ESFT's expert_counts.csv
// against the ESFT reader, write/read round trips, and malformed rows rejected naming file, line, field.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "gem/io/csv_counts.hpp"
#include "gem/io/esft.hpp"
#include "shared_data.hpp"

namespace {

void expect_error(const std::string& text, const gem::csv_counts_options& o, std::size_t line, const std::string& field) {
  bool thrown = false;
  try {
    (void)gem::parse_csv_counts(text, "c.csv", o);
  } catch (const gem::parse_error& e) {
    thrown = true;
    CHECK(e.file() == "c.csv");
    CHECK(e.line() == line);
    CHECK(e.field() == field);
    const auto where = line ? "c.csv:" + std::to_string(line) + ": " : std::string("c.csv: ");
    CHECK(std::string(e.what()).find(where + "field '" + field + "'") != std::string::npos);
  }
  CHECK_MESSAGE(thrown, "expected a parse_error at line " << line << " field " << field);
}

}  // namespace

TEST_CASE("OLMoE's per-domain counts read through column selection as one step of three layers") {
  const auto csv = gem::test::shared_path("traces/olmoe-routing-analysis/expert_counts.csv");
  if (csv.empty()) return;
  const auto r = gem::read_csv_counts(
      csv, {.select = {{"model_dir", "olmoe"}, {"domain", "arxiv"}, {"selection", "topk"}}, .num_experts = 64});
  CHECK_FALSE(r.has_step_column);
  CHECK(r.source_layers == std::vector<std::int32_t>{0, 7, 15});
  REQUIRE(r.trace.num_steps() == 1);
  REQUIRE(r.trace.num_experts() == 64);
  // Independent reference: a getline/stringstream pass over the same file.
  std::map<std::pair<int, int>, std::int64_t> ref;
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::stringstream ss(line);
    std::vector<std::string> f;
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    if (f[0] == "olmoe" && f[2] == "arxiv" && f[3] == "topk") ref[{std::stoi(f[4]), std::stoi(f[5])}] = std::stoll(f[6]);
  }
  CHECK(r.rows == static_cast<std::int64_t>(ref.size()));
  for (int l = 0; l < 3; ++l) {
    std::int64_t sum = 0;
    for (int e = 0; e < 64; ++e) {
      const auto it = ref.find({r.source_layers[l], e});
      const auto c = r.trace.count(gem::layer_id{l}, 0, gem::expert_id{e});
      CHECK(c == (it == ref.end() ? 0 : it->second));
      sum += c;
    }
    CHECK(sum == 1'671'168);  // SOURCE.md: 208,896 tokens x top-8
  }
  // SOURCE.md quick fact: layer 0 / arxiv, expert 0 holds 12.2% of the assignments.
  CHECK(r.trace.count(gem::layer_id{0}, 0, gem::expert_id{0}) / 1'671'168.0 == doctest::Approx(0.122).epsilon(0.005));
}

TEST_CASE("ESFT's expert_counts.csv read as CSV counts equals the totals of the ESFT reader") {
  const auto root = gem::test::shared_path("traces/esft-deepseek-v2-lite");
  if (root.empty()) return;
  const auto csv = gem::read_csv_counts(root / "expert_counts.csv", {.select = {{"task", "law"}}, .count_column = "token_count"});
  const auto esft = gem::read_esft(root / "results/expert_scores/law");
  REQUIRE(csv.source_layers == esft.source_layers);
  for (int l = 0; l < 26; ++l) {
    const auto totals = esft.trace.layer_totals(gem::layer_id{l});
    for (int e = 0; e < 64; ++e) CHECK(csv.trace.count(gem::layer_id{l}, 0, gem::expert_id{e}) == totals[e]);
  }
}

TEST_CASE("CSV counts written and read back are equal, with layer numbers kept") {
  std::mt19937 rng(23);
  for (int trial = 0; trial < 20; ++trial) {
    const int L = 1 + trial % 4, S = 1 + trial % 5, E = 2 + trial;
    std::vector<std::int64_t> c(static_cast<std::size_t>(L) * S * E);
    for (auto& x : c) x = std::uniform_int_distribution<int>(0, 3)(rng);
    const gem::routing_trace t(L, S, E, c);
    std::vector<std::int32_t> src;
    for (int l = 0; l < L; ++l) src.push_back(3 + 5 * l);
    std::ostringstream out;
    gem::write_csv_counts(out, t, src);
    const auto back = gem::parse_csv_counts(out.str(), "mem.csv", {.num_experts = E});
    CHECK(back.trace == t);
    CHECK(back.source_layers == src);
    CHECK(back.has_step_column);
  }
}

TEST_CASE("rows of other selections are left out, missing combinations count zero, and the step column is optional") {
  const std::string text = "task,layer,step,expert,count\r\na,1,0,0,5\r\nb,1,0,0,7\r\na,1,2,1,3\r\n";
  const auto r = gem::parse_csv_counts(text, "c.csv", {.select = {{"task", "a"}}});
  CHECK(r.rows == 2);
  CHECK(r.trace.num_steps() == 3);
  CHECK(r.trace.num_experts() == 2);
  CHECK(r.trace.count(gem::layer_id{0}, 0, gem::expert_id{0}) == 5);
  CHECK(r.trace.count(gem::layer_id{0}, 1, gem::expert_id{1}) == 0);
  CHECK(r.trace.count(gem::layer_id{0}, 2, gem::expert_id{1}) == 3);
  const auto one = gem::parse_csv_counts("layer,expert,count\n4,0,2\n4,1,3\n", "c.csv");
  CHECK_FALSE(one.has_step_column);
  CHECK(one.trace.num_steps() == 1);
  CHECK(one.source_layers == std::vector<std::int32_t>{4});
}

TEST_CASE("malformed CSV counts are rejected naming file, line and field") {
  const std::string head = "task,layer,step,expert,count\n";
  const gem::csv_counts_options o{.num_experts = 4};
  expect_error("", o, 1, "header");                                                  // empty file
  expect_error(head, o, 0, "select");                                                // no data rows
  expect_error(head + "a,1,0,2,5\na,1,0,3\n", o, 3, "row");                          // truncated line
  expect_error(head + "a,1,0,2,5\na,1,0,3,5,9\n", o, 3, "row");                      // extra field
  expect_error(head + "a,1,0,2,five\n", o, 2, "count");                              // non-numeric
  expect_error(head + "a,1,0,2,-5\n", o, 2, "count");                                // negative
  expect_error(head + "a,1,0,2,5\na,1,x,2,5\n", o, 3, "step");
  expect_error(head + "a,1,0,4,5\n", o, 2, "expert");                                // id >= num_experts
  expect_error(head + "a,1,0,2,5\na,1,0,2,6\n", o, 3, "expert");                     // duplicate row
  expect_error(head + "a,1,0,2,5\n\n", o, 3, "row");                                 // empty line
  expect_error(head + "a,\"1\",0,2,5\n", o, 2, "row");                               // quoting
  expect_error(head + "a,1,2000000000,2,5\n", o, 0, "step");                         // implausible step
  expect_error("task,layer,step,count\na,1,0,5\n", o, 1, "expert");                  // missing column
  gem::csv_counts_options sel = o;
  sel.select = {{"domain", "x"}};
  expect_error(head + "a,1,0,2,5\n", sel, 1, "domain");                              // unknown filter column
  sel.select = {{"task", "zzz"}};
  expect_error(head + "a,1,0,2,5\n", sel, 0, "select");                              // nothing selected
}
