// The ESFT reader on the real logs in ../shared: per task/layer/expert token counts and gate-weight
// sums reproduce expert_counts.csv (computed independently by its authors with python), and every
// layer holds tokens x 6 assignments.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "gem/io/esft.hpp"
#include "shared_data.hpp"

namespace {

struct csv_row {
  std::int64_t tokens;
  double gate_sum;
};

// Independent reference: a plain std::getline / std::stringstream read of expert_counts.csv.
std::map<std::tuple<std::string, int, int>, csv_row> read_reference(const std::filesystem::path& csv) {
  std::map<std::tuple<std::string, int, int>, csv_row> out;
  std::ifstream in(csv);
  std::string line;
  auto next = [&] {
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // the CSV has CRLF line ends
    return true;
  };
  next();
  REQUIRE(line == "task,layer,expert,token_count,gate_weight_sum");
  while (next()) {
    std::stringstream ss(line);
    std::string task, layer, expert, count, gate;
    std::getline(ss, task, ',');
    std::getline(ss, layer, ',');
    std::getline(ss, expert, ',');
    std::getline(ss, count, ',');
    std::getline(ss, gate, ',');
    out[{task, std::stoi(layer), std::stoi(expert)}] = {std::stoll(count), std::stod(gate)};
  }
  return out;
}

}  // namespace

TEST_CASE("reading the three ESFT tasks reproduces expert_counts.csv exactly, with tokens x 6 assignments per layer") {
  const auto root = gem::test::shared_path("traces/esft-deepseek-v2-lite");
  if (root.empty()) return;
  const auto ref = read_reference(root / "expert_counts.csv");
  REQUIRE(ref.size() == 3u * 26u * 64u);
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> facts = {
      {"intent", {127, 8222}}, {"law", {33, 8327}}, {"summary", {13, 8479}}};  // SOURCE.md: sequences, tokens
  std::size_t matched = 0;
  for (const auto& [task, seq_tok] : facts) {
    const auto r = gem::read_esft(root / "results/expert_scores" / task);
    const auto& tr = r.trace;
    REQUIRE(tr.num_layers() == 26);
    REQUIRE(tr.num_experts() == 64);
    REQUIRE(r.source_layers.size() == 26u);
    CHECK(r.source_layers.front() == 1);
    CHECK(r.source_layers.back() == 26);
    CHECK(static_cast<std::int64_t>(r.sequence_offsets.size()) == seq_tok.first + 1);
    REQUIRE(tr.tokens().has_value());
    CHECK(tr.tokens()->num_tokens == seq_tok.second);
    CHECK(tr.num_steps() == (seq_tok.second + 255) / 256);
    const auto& tok = *tr.tokens();
    for (int l = 0; l < 26; ++l) {
      const auto totals = tr.layer_totals(gem::layer_id{l});
      std::int64_t sum = 0;
      std::vector<double> gate(64, 0.0);
      for (std::int64_t t = 0; t < tok.num_tokens; ++t)
        for (int j = 0; j < 6; ++j) {
          const auto i = (static_cast<std::size_t>(l) * tok.num_tokens + t) * 6 + j;
          gate[tok.ids[i]] += tok.weights[i];
        }
      for (int e = 0; e < 64; ++e) {
        const auto& row = ref.at({task, r.source_layers[l], e});
        CHECK(totals[e] == row.tokens);
        // The CSV rounds a float64 sum of the 4-decimal text to 4 decimals; gem stores float32.
        CHECK(std::abs(gate[e] - row.gate_sum) <= 5.0e-5 + 2.0e-6);
        sum += totals[e];
        ++matched;
      }
      CHECK(sum == tok.num_tokens * 6);
    }
  }
  CHECK(matched == ref.size());
}

TEST_CASE("ESFT steps are consecutive tokens that span sequences, and other batch sizes keep every assignment") {
  const auto root = gem::test::shared_path("traces/esft-deepseek-v2-lite/results/expert_scores/summary");
  if (root.empty()) return;
  for (const std::int64_t B : {64, 1000, 4096}) {
    const auto r = gem::read_esft(root, {.steps = {.tokens_per_step = B}, .num_layers = 3});
    const auto& tr = r.trace;
    REQUIRE(tr.num_layers() == 3);
    const auto n = tr.tokens()->num_tokens;
    CHECK(tr.num_steps() == (n + B - 1) / B);
    for (int s = 0; s < tr.num_steps(); ++s) {
      std::int64_t step_sum = 0;
      for (auto c : tr.step_counts(gem::layer_id{2}, s)) step_sum += c;
      CHECK(step_sum == std::min<std::int64_t>(B, n - s * B) * 6);
    }
  }
  // summary has 13 sequences of ~650 tokens: a 4096-token step must span several of them.
  const auto r = gem::read_esft(root, {.steps = {.tokens_per_step = 4096}, .num_layers = 1});
  CHECK(r.sequence_offsets.size() == 14u);
  CHECK(r.sequence_offsets[2] < 4096);
}
