// Proves that gem's whole host API (gem/gem.hpp and gem/io.hpp) compiles as plain C++20 with no CUDA
// header reachable from it.
#include "gem/gem.hpp"
#include "gem/io.hpp"

#if defined(__CUDACC__) || defined(__CUDA_RUNTIME_H__) || defined(CUDART_VERSION) || defined(__CUDA_API_VERSION)
#error "gem/gem.hpp pulled in a CUDA header or is being compiled by nvcc"
#endif

#include <doctest/doctest.h>

#include <cstring>

TEST_CASE("the host API compiles without CUDA and reports its version") {
  CHECK(std::strlen(gem::version_string) > 0);
  CHECK(std::string(gem::version_string) ==
        std::to_string(GEM_VERSION_MAJOR) + "." + std::to_string(GEM_VERSION_MINOR) + "." +
            std::to_string(GEM_VERSION_PATCH));
}
