// Fuzzes gem's own trace file reader; an accepted trace must write and read back unchanged.
#include <sstream>

#include "fuzz/fuzz_input.hpp"
#include "gem/io/trace_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gem::routing_trace t;
  try {
    t = gem::parse_trace(gem::fuzz::text_of(data, size), "fuzz.trace");
  } catch (const gem::error&) {
    return 0;
  }
  std::ostringstream out;
  gem::write_trace(out, t);
  gem::fuzz::require(gem::parse_trace(out.str(), "rewritten") == t, "trace file round trip");
  return 0;
}
