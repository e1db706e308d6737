// Fuzzes the ESFT log reader: the input becomes two layer files of a task directory (split at the
// first 0x01 byte), top-2 of 8 experts, steps of 4 tokens.
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "fuzz/fuzz_input.hpp"
#include "gem/io/esft.hpp"

namespace {

const std::filesystem::path& task_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("gem-esft-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gem::fuzz::text_of(data, size);
  const auto cut = text.find('\x01');
  const std::string first = text.substr(0, cut), second = cut == std::string::npos ? first : text.substr(cut + 1);
  std::ofstream(task_dir() / "expert_weights_1.txt", std::ios::binary) << first;
  std::ofstream(task_dir() / "expert_weights_2.txt", std::ios::binary) << second;
  gem::esft_options o;
  o.num_experts = 8;
  o.top_k = 2;
  o.steps.tokens_per_step = 4;
  try {
    const auto t = gem::read_esft(task_dir(), o);
    std::int64_t total = 0;
    for (auto c : t.trace.counts()) total += c;
    gem::fuzz::require(total == t.trace.tokens()->num_tokens * 2 * 2, "every token counted top_k times per layer");
  } catch (const gem::error&) {
  }
  return 0;
}
