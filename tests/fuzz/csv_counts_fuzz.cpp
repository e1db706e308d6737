// Fuzzes the long-CSV counts reader, with and without a column selection.
#include "fuzz/fuzz_input.hpp"
#include "gem/io/csv_counts.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gem::fuzz::text_of(data, size);
  try {
    (void)gem::parse_csv_counts(text, "fuzz.csv", {});
  } catch (const gem::error&) {
  }
  try {
    gem::csv_counts_options o;
    o.select = {{"domain", "arxiv"}};
    o.num_experts = 8;
    (void)gem::parse_csv_counts(text, "fuzz.csv", o);
  } catch (const gem::error&) {
  }
  return 0;
}
