// Fuzzes the four placement readers (the first byte picks gem JSON, EPLB JSON, SGLang JSON or
// TensorRT-LLM YAML); an accepted placement must write in gem's format and read back unchanged.
#include <sstream>

#include "fuzz/fuzz_input.hpp"
#include "gem/io/placement_formats.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto text = gem::fuzz::text_of(data + 1, size - 1);
  gem::io::placement_read_options opt;
  opt.num_gpus = 1 + data[0] / 4 % 8;
  gem::io::placement_document doc;
  try {
    switch (data[0] % 4) {
      case 0: doc = gem::io::read_placement_gem(text, "fuzz.json"); break;
      case 1: doc = gem::io::read_placement_eplb(text, "fuzz.json", opt); break;
      case 2: doc = gem::io::read_placement_sglang(text, "fuzz.json", nullptr, "", opt); break;
      default: doc = gem::io::read_placement_trtllm(text, "fuzz.yaml", opt); break;
    }
  } catch (const gem::error&) {
    return 0;
  }
  std::ostringstream out;
  gem::io::write_placement_gem(out, doc.placement, doc.metadata);
  const auto back = gem::io::read_placement_gem(out.str(), "rewritten");
  gem::fuzz::require(back.placement == doc.placement, "placement gem-format round trip");
  return 0;
}
