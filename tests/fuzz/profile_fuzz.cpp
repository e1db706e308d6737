// Fuzzes the speed-profile JSON reader; an accepted profile must format and parse back unchanged
// and make a table model.
#include "fuzz/fuzz_input.hpp"
#include "gem/speed/profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gem::profile p;
  try {
    p = gem::parse_profile(gem::fuzz::text_of(data, size), "fuzz.json");
  } catch (const gem::error&) {
    return 0;
  }
  const auto again = gem::parse_profile(gem::format_profile(p), "rewritten");
  gem::fuzz::require(gem::format_profile(again) == gem::format_profile(p), "profile round trip");
  try {
    (void)gem::to_table(p);
  } catch (const gem::error&) {
  }
  return 0;
}
