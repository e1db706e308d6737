// gem/cuda/detail/random_kernels.cuh — the kernel behind fill_uniform_async: counter-based
// (stateless) pseudo-random bf16 values. Depends on the CUDA runtime and cuda_bf16.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gem/cuda/detail/routing_kernels.cuh"

namespace gem::cuda::detail {

template <int = 0>  // a template, so that every translation unit may include this header
__global__ void fill_uniform_bf16_kernel(__nv_bfloat16* p, std::size_t n, std::uint32_t seed, float lo, float span) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const std::uint32_t h = fmix32(static_cast<std::uint32_t>(i) ^ fmix32(static_cast<std::uint32_t>(i >> 32) + seed));
    p[i] = __float2bfloat16_rn(lo + span * (static_cast<float>(h >> 8) * (1.0f / 16777216.0f)));
  }
}

}  // namespace gem::cuda::detail
