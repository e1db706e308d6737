// Fuzzes the loads readers (JSON `{"weight": [[...]]}` and long CSV); accepted loads are finite and
// non-negative.
#include <cmath>

#include "fuzz/fuzz_input.hpp"
#include "gem/io/loads.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gem::fuzz::text_of(data, size);
  for (int csv = 0; csv < 2; ++csv) {
    try {
      const auto loads = csv ? gem::io::parse_loads_csv(text, "fuzz.csv") : gem::io::parse_loads_json(text, "fuzz.json");
      for (const auto& row : loads.weight)
        for (double w : row) gem::fuzz::require(std::isfinite(w) && w >= 0, "accepted load is finite and >= 0");
    } catch (const gem::error&) {
    }
  }
  return 0;
}
