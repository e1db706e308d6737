// Shared helpers of gem's fuzz harnesses. A harness calls a reader on arbitrary bytes; the reader
// may throw gem::error (a clear rejection) and nothing else: any other exception, crash, leak or
// sanitizer report is a bug. Where a reader accepts the input, the harness also checks a property
// (write then read back gives the same value).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

namespace gem::fuzz {

/// The fuzz input as text.
inline std::string text_of(const std::uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

/// Stops the process when a property does not hold (libFuzzer records the input as a crash).
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace gem::fuzz
