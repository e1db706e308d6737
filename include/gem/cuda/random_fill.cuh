// gem/cuda/random_fill.cuh — fills device memory with reproducible pseudo-random bf16 values
// (benchmarks and profilers must never time zeros). Depends on the CUDA runtime and cuda_bf16.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "gem/cuda/detail/random_kernels.cuh"
#include "gem/cuda/status.cuh"

namespace gem::cuda {

/// Enqueues p[i] = bf16(uniform in [lo, hi)) for i < n on `stream` and returns before it finishes;
/// the value depends only on (i, seed).
[[nodiscard]] inline status fill_uniform_async(__nv_bfloat16* p, std::size_t n, std::uint32_t seed, float lo, float hi,
                                               cudaStream_t stream) noexcept {
  if (n == 0) return {};
  if (!p) return {status_code::invalid_argument, cudaSuccess, 0};
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 132 * 16));
  detail::fill_uniform_bf16_kernel<><<<blocks, 256, 0, stream>>>(p, n, seed, lo, hi - lo);
  return from_cuda(cudaGetLastError());
}

}  // namespace gem::cuda
