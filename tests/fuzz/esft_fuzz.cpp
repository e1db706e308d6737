// Fuzzes the ESFT log parser: the input becomes two layer files of a task (split at the first 0x01
// byte; both the same when there is none), top-2 of 8 experts, steps of 4 tokens. An accepted input
// counts every token top_k times in every layer.
#include <string>
#include <vector>

#include "fuzz/fuzz_input.hpp"
#include "gem/io/esft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gem::fuzz::text_of(data, size);
  const auto cut = text.find('\x01');
  const std::string first = text.substr(0, cut), second = cut == std::string::npos ? first : text.substr(cut + 1);
  const std::vector<gem::esft_layer_text> layers{{1, "expert_weights_1.txt", first}, {2, "expert_weights_2.txt", second}};
  gem::esft_options o;
  o.num_experts = 8;
  o.top_k = 2;
  o.steps.tokens_per_step = 4;
  try {
    const auto t = gem::parse_esft(layers, o);
    std::int64_t total = 0;
    for (auto c : t.trace.counts()) total += c;
    gem::fuzz::require(total == t.trace.tokens()->num_tokens * 2 * 2, "every token counted top_k times per layer");
  } catch (const gem::error&) {
  }
  return 0;
}
