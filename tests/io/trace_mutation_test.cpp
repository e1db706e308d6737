// Robustness of gem's text readers: randomly mutated inputs (bytes replaced, inserted, deleted,
// lines cut) either read successfully or raise gem::parse_error — never another exception, a
// crash or an out-of-bounds access (the sanitizer build runs this too).
#include <doctest/doctest.h>

#include <random>

#include "gem/io/csv_counts.hpp"
#include "gem/io/esft.hpp"
#include "gem/io/trace_file.hpp"
#include "gem/trace/synthetic.hpp"

namespace {

std::string mutate(std::string s, std::mt19937& rng) {
  const char alphabet[] = "0123456789\t\n ,.-+eE#xnaif\"\r";
  const int edits = std::uniform_int_distribution<int>(1, 4)(rng);
  for (int i = 0; i < edits && !s.empty(); ++i) {
    const auto pos = std::uniform_int_distribution<std::size_t>(0, s.size() - 1)(rng);
    const char c = alphabet[std::uniform_int_distribution<std::size_t>(0, sizeof alphabet - 2)(rng)];
    switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
      case 0: s[pos] = c; break;
      case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(pos), c); break;
      case 2: s.erase(pos, 1); break;
      default: s.resize(pos); break;
    }
  }
  return s;
}

// Runs `parse` on `mutants` mutations of `text`; returns how many were rejected with parse_error.
template <class Parse>
int count_rejections(const std::string& text, int mutants, unsigned seed, Parse parse) {
  std::mt19937 rng(seed);
  int rejected = 0;
  for (int i = 0; i < mutants; ++i) {
    const auto m = mutate(text, rng);
    try {
      parse(m);
    } catch (const gem::parse_error& e) {
      ++rejected;
      CHECK(e.line() <= static_cast<std::size_t>(std::count(m.begin(), m.end(), '\n')) + 2);
    } catch (const std::exception& e) {
      FAIL("a mutant raised something other than parse_error: " << e.what());
    }
  }
  return rejected;
}

}  // namespace

TEST_CASE("mutated gem trace files are read or rejected with parse_error") {
  const auto t = gem::generate_synthetic({.num_layers = 2, .num_experts = 8, .top_k = 2, .num_steps = 3, .tokens_per_step = 4,
                                          .consistent_experts = 1, .temporal_groups = 1, .group_size = 2, .joint_tokens = 0.2,
                                          .token_types = 2})
                     .trace;
  const auto text = gem::trace_to_text(t);
  const int rejected = count_rejections(text, 400, 1, [](const std::string& m) { (void)gem::parse_trace(m, "m"); });
  CHECK(rejected > 300);
}

TEST_CASE("mutated CSV counts are read or rejected with parse_error") {
  const std::string text = "task,layer,step,expert,count\na,1,0,0,5\na,1,0,1,7\nb,1,0,0,3\na,2,1,3,4\na,2,0,2,1\n";
  const int rejected = count_rejections(text, 400, 2, [](const std::string& m) {
    (void)gem::parse_csv_counts(m, "m", {.select = {{"task", "a"}}, .num_experts = 8});
  });
  CHECK(rejected > 100);
}

TEST_CASE("mutated ESFT layer files are read or rejected with parse_error") {
  const std::string text = "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\t0.75\t0.25\n5\t4\t6\t7\t\t0.1\t0.2\t0.3\t0.4\n";
  const gem::esft_options o{.num_experts = 8, .top_k = 2};
  const int rejected = count_rejections(text, 400, 3, [&](const std::string& m) {
    std::vector<std::int64_t> line_tokens;
    std::vector<std::int32_t> ids;
    std::vector<float> w;
    gem::detail::parse_esft_layer(m, "m", o, line_tokens, true, "m", ids, w);
    REQUIRE(ids.size() == w.size());
    for (auto id : ids) REQUIRE((id >= 0 && id < 8));
    // A second layer file must then agree line by line with the (possibly mutated) first.
    std::vector<std::int32_t> ids2;
    std::vector<float> w2;
    gem::detail::parse_esft_layer(text, "orig", o, line_tokens, false, "m", ids2, w2);
  });
  CHECK(rejected > 200);
}
