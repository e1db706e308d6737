// gem/version.hpp — the library's version, kept equal to the CMake project version.
#pragma once

#define GEM_VERSION_MAJOR 0
#define GEM_VERSION_MINOR 1
#define GEM_VERSION_PATCH 0

namespace gem {
/// "major.minor.patch" of this copy of gem.
inline constexpr const char* version_string = "0.1.0";
}  // namespace gem
