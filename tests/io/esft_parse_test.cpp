#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "gem/io/esft.hpp"

TEST_CASE("parsing ESFT layer texts in memory gives the same trace as reading them from files") {
  std::mt19937 rng(3);
  const auto dir = std::filesystem::temp_directory_path() / ("gem-esft-parse-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> texts(3);
  std::vector<int> seq_tokens{5, 1, 9, 4};
  for (auto& text : texts) {
    for (int n : seq_tokens) {
      std::string ids, ws;
      for (int t = 0; t < n; ++t) {
        std::vector<int> pool{0, 1, 2, 3, 4, 5, 6, 7};
        std::shuffle(pool.begin(), pool.end(), rng);
        for (int j = 0; j < 2; ++j) {
          ids += (ids.empty() ? "" : "\t") + std::to_string(pool[j]);
          ws += (ws.empty() ? "" : "\t") + std::to_string(0.125 * (1 + j));
        }
      }
      text += ids + "\t\t" + ws + "\n";
    }
  }
  for (int L = 1; L <= 3; ++L) std::ofstream(gem::esft_layer_file(dir, L)) << texts[L - 1];
  gem::esft_options o{.num_experts = 8, .top_k = 2, .steps = {.tokens_per_step = 4}};
  const auto from_files = gem::read_esft(dir, o);
  std::vector<gem::esft_layer_text> in;
  for (int L = 1; L <= 3; ++L)
    in.push_back(gem::esft_layer_text{.source_layer = L, .name = gem::esft_layer_file(dir, L).string(), .text = texts[L - 1]});
  const auto in_memory = gem::parse_esft(in, o);
  CHECK(in_memory.trace == from_files.trace);
  CHECK(in_memory.source_layers == from_files.source_layers);
  CHECK(in_memory.sequence_offsets == std::vector<std::int64_t>{0, 5, 6, 15, 19});
  CHECK(in_memory.trace.num_steps() == 5);  // 19 tokens in steps of 4, the partial last step kept
  std::filesystem::remove_all(dir);
  CHECK_THROWS_WITH_AS(gem::parse_esft(std::span<const gem::esft_layer_text>{}, o), doctest::Contains("no layer files"),
                       gem::parse_error);
}
