// Shared helpers of gem's GPU tests: skip (saying so) when the process sees no CUDA device.
#pragma once

#include <iostream>

#include "gem/cuda/status.cuh"

/// Use at the top of a GPU TEST_CASE: prints the skip marker ctest looks for and returns.
#define GEM_REQUIRE_GPU()                                                        \
  do {                                                                           \
    if (gem::cuda::device_count() == 0) {                                        \
      std::cout << "SKIPPED: no CUDA device visible to this process\n";          \
      return;                                                                    \
    }                                                                            \
  } while (0)
