// Locates ../shared (the team's real data) for tests that read it in place. Tests call
// `shared_path("traces/...")`; when the folder is missing they print why and skip.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace gem::test {

/// The shared data folder: $GEM_SHARED_DIR when set, else the one CMake saw beside the checkout.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("GEM_SHARED_DIR"); env && *env) return env;
  return GEM_SHARED_DIR;
}

/// Full path of `rel` inside the shared folder, or an empty path (after printing why the caller
/// skips) when it does not exist.
inline std::filesystem::path shared_path(const std::string& rel) {
  auto p = shared_dir() / rel;
  if (!std::filesystem::exists(p)) {
    std::cout << "SKIPPED: " << p.string() << " not found (the shared data folder is not beside this clone)\n";
    return {};
  }
  return p;
}

}  // namespace gem::test
