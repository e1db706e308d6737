// Reading the three ESFT tasks (3 x 26 layer files, ~38 MB) into traces with token routing and
// steps of 256 tokens, against two anchors over the same bytes: reading the raw files into memory,
// and a plain std::getline pass over them. Bytes/s counts the files' bytes. Needs ../shared.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gem/detail/text_parse.hpp"
#include "gem/io/esft.hpp"

namespace {

const std::filesystem::path root = std::filesystem::path(GEM_SHARED_DIR) / "traces/esft-deepseek-v2-lite/results/expert_scores";
const char* const tasks[] = {"intent", "law", "summary"};

std::vector<std::filesystem::path> layer_files() {
  std::vector<std::filesystem::path> out;
  for (auto task : tasks)
    for (int L = 1; L <= 26; ++L) out.push_back(gem::esft_layer_file(root / task, L));
  return out;
}

std::int64_t total_bytes() {
  std::int64_t n = 0;
  for (const auto& f : layer_files()) n += static_cast<std::int64_t>(std::filesystem::file_size(f));
  return n;
}

bool have_data(benchmark::State& state) {
  if (std::filesystem::exists(root / "intent")) return true;
  state.SkipWithError("../shared/traces/esft-deepseek-v2-lite not found");
  return false;
}

// Anchor 1: the bytes into memory, nothing parsed.
void raw_file_read_anchor(benchmark::State& state) {
  if (!have_data(state)) return;
  const auto files = layer_files();
  for (auto _ : state)
    for (const auto& f : files) {
      auto bytes = gem::detail::read_text_file(f);
      benchmark::DoNotOptimize(bytes.data());
    }
  state.SetBytesProcessed(state.iterations() * total_bytes());
}

// Anchor 2: a plain std::getline pass (the least a line-oriented reader does).
void getline_pass_anchor(benchmark::State& state) {
  if (!have_data(state)) return;
  const auto files = layer_files();
  for (auto _ : state) {
    std::size_t chars = 0;
    for (const auto& f : files) {
      std::ifstream in(f);
      std::string line;
      while (std::getline(in, line)) chars += line.size();
    }
    benchmark::DoNotOptimize(chars);
  }
  state.SetBytesProcessed(state.iterations() * total_bytes());
}

// gem: parse, check, batch into steps of 256 tokens and build the three routing_traces.
void read_esft_three_tasks(benchmark::State& state) {
  if (!have_data(state)) return;
  for (auto _ : state)
    for (auto task : tasks) {
      auto r = gem::read_esft(root / task);
      benchmark::DoNotOptimize(r.trace.counts().data());
    }
  state.SetBytesProcessed(state.iterations() * total_bytes());
}

}  // namespace

BENCHMARK(raw_file_read_anchor)->Unit(benchmark::kMillisecond);
BENCHMARK(getline_pass_anchor)->Unit(benchmark::kMillisecond);
BENCHMARK(read_esft_three_tasks)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
