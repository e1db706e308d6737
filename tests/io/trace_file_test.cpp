// gem's trace file: every trace (counts only, with token routing, with weights) reads back equal and
// rewrites to the same bytes; malformed text is a parse_error naming file, line and field.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <cmath>
#include <numeric>
#include <random>

#include <unistd.h>

#include "gem/io/esft.hpp"
#include "gem/io/trace_file.hpp"
#include "shared_data.hpp"

namespace {

gem::routing_trace random_trace(std::mt19937& rng, bool with_tokens, bool with_weights) {
  const int L = std::uniform_int_distribution<int>(1, 3)(rng);
  const int E = std::uniform_int_distribution<int>(2, 9)(rng);
  if (!with_tokens) {
    const int S = std::uniform_int_distribution<int>(0, 5)(rng);
    std::vector<std::int64_t> c(static_cast<std::size_t>(L) * S * E);
    for (auto& x : c) x = std::uniform_int_distribution<std::int64_t>(0, 1'000'000'000'000)(rng);
    return {L, S, E, std::move(c)};
  }
  gem::token_routing t;
  t.top_k = std::uniform_int_distribution<int>(1, E)(rng);
  t.num_tokens = std::uniform_int_distribution<int>(0, 30)(rng);
  std::vector<std::int32_t> pool(E);
  for (int l = 0; l < L; ++l)
    for (std::int64_t i = 0; i < t.num_tokens; ++i) {
      std::iota(pool.begin(), pool.end(), 0);
      std::shuffle(pool.begin(), pool.end(), rng);
      for (int j = 0; j < t.top_k; ++j) {
        t.ids.push_back(pool[j]);
        // Arbitrary floats, including tiny, huge, negative zero and values with long expansions.
        if (with_weights) {
          const int kind = std::uniform_int_distribution<int>(0, 4)(rng);
          const float u = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
          t.weights.push_back(kind == 0 ? u : kind == 1 ? u * 1e-30f : kind == 2 ? u * 3e37f : kind == 3 ? -0.0f : 1.f / 3.f);
        }
      }
    }
  t.step_offsets = {0};
  while (t.step_offsets.back() < t.num_tokens)
    t.step_offsets.push_back(std::min<std::int64_t>(t.num_tokens, t.step_offsets.back() + std::uniform_int_distribution<int>(0, 7)(rng)));
  if (t.num_tokens == 0) t.step_offsets.push_back(0);
  return gem::routing_trace::from_tokens(L, E, std::move(t));
}

std::string good_text() {
  return "gem-trace 1\nlayers 1\nsteps 2\nexperts 3\ntop_k 2\ntokens 3\nweights 1\n"
         "counts\n1 1 0\n0 2 2\nstep_offsets\n0 1 3\nids\n0 1\n2 1\n1 2\nweights\n0.5 0.25\n1 2e-05\n0.125 0\nend\n";
}

void expect_error(const std::string& text, std::size_t line, const std::string& field) {
  bool thrown = false;
  try {
    (void)gem::parse_trace(text, "t.gemtrace");
  } catch (const gem::parse_error& e) {
    thrown = true;
    CHECK(e.file() == "t.gemtrace");
    CHECK(e.line() == line);
    CHECK(e.field() == field);
    CHECK(std::string(e.what()).find("t.gemtrace:" + std::to_string(line) + ": field '" + field + "'") != std::string::npos);
  }
  CHECK_MESSAGE(thrown, "expected a parse_error at line " << line << " field " << field);
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto p = s.find(from);
  REQUIRE(p != std::string::npos);
  return s.replace(p, from.size(), to);
}

}  // namespace

TEST_CASE("a hand-written gem trace file reads as documented") {
  const auto t = gem::parse_trace(good_text());
  CHECK(t.num_layers() == 1);
  CHECK(t.num_steps() == 2);
  CHECK(t.count(gem::layer_id{0}, 1, gem::expert_id{2}) == 2);
  CHECK(t.tokens()->ids == std::vector<std::int32_t>{0, 1, 2, 1, 1, 2});
  CHECK(t.tokens()->weights[3] == 2e-05f);
  CHECK(gem::trace_to_text(t) == good_text());
}

TEST_CASE("random traces write and read back equal, and rewriting gives the same bytes") {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 60; ++trial) {
    const auto t = random_trace(rng, trial % 3 != 0, trial % 3 == 2);
    const auto text = gem::trace_to_text(t);
    const auto back = gem::parse_trace(text);
    CHECK(back == t);
    CHECK(gem::trace_to_text(back) == text);
    if (t.tokens() && !t.tokens()->weights.empty())
      for (std::size_t i = 0; i < t.tokens()->weights.size(); ++i)  // bit-exact, negative zero included
        CHECK(std::signbit(back.tokens()->weights[i]) == std::signbit(t.tokens()->weights[i]));
  }
}

TEST_CASE("an ESFT task written as a gem trace file reads back equal") {
  const auto dir = gem::test::shared_path("traces/esft-deepseek-v2-lite/results/expert_scores/law");
  if (dir.empty()) return;
  const auto t = gem::read_esft(dir, {.num_layers = 2}).trace;
  static std::atomic<int> n{0};
  const auto path = std::filesystem::temp_directory_path() /
                    ("gem_trace_file_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + ".gemtrace");
  gem::write_trace_file(path, t);
  const auto back = gem::read_trace_file(path);
  std::filesystem::remove(path);
  CHECK(back == t);
  CHECK(gem::trace_to_text(back) == gem::trace_to_text(t));
}

TEST_CASE("malformed gem trace files are rejected naming file, line and field") {
  expect_error("", 1, "header");
  expect_error(replace(good_text(), "gem-trace 1", "gem-trace 2"), 1, "header");
  expect_error(replace(good_text(), "steps 2", "steps two"), 3, "steps");
  expect_error(replace(good_text(), "experts 3", "expert 3"), 4, "experts");
  expect_error(replace(good_text(), "0 2 2\n", "0 2\n"), 10, "counts[layer 0, step 1]");           // truncated row
  expect_error(replace(good_text(), "0 2 2\n", "0 2 x\n"), 10, "counts[layer 0, step 1]");         // non-numeric
  expect_error(replace(good_text(), "2 1\n1 2\n", "2 1\n1 3\n"), 16, "ids[layer 0, token 2]");     // id >= experts
  expect_error(replace(good_text(), "2 1\n1 2\n", "2 1\n2 2\n"), 16, "ids[layer 0, token 2]");     // duplicate id
  expect_error(replace(good_text(), "1 2e-05", "1 2e-05z"), 19, "weights[layer 0, token 1]");
  expect_error(replace(good_text(), "1 2e-05", "1 inf"), 19, "weights[layer 0, token 1]");
  expect_error(good_text().substr(0, good_text().find("weights\n0.5")), 17, "weights");            // file cut short
  expect_error(good_text() + "more\n", 22, "end");
  expect_error(replace(good_text(), "0 2 2\n", "0 -2 2\n"), 10, "counts[layer 0, step 1]");        // negative
  expect_error(replace(good_text(), "steps 2", "steps 2000000"), 2, "layers");                     // dimensions vs size
  expect_error(replace(good_text(), "1 1 0\n", "1 0 1\n"), 21, "trace");                           // counts disagree with ids
}
