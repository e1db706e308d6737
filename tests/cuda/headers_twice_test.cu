// Every gem CUDA header included in a second translation unit of the same program: kernels and
// helpers defined in headers must not collide at link time (this file and the other GPU tests).
#include <doctest/doctest.h>

#include "gem/cuda/grouped_gemm.cuh"
#include "gem/cuda/permute.cuh"
#include "gem/cuda/random_fill.cuh"
#include "gem/cuda/routing.cuh"
#include "gem/cuda/status.cuh"

TEST_CASE("gem's CUDA headers link when included by several translation units") {
  // Names from each header, so that the includes are used.
  CHECK(gem::cuda::to_string(gem::cuda::gemm_path::bucketed) != nullptr);
  CHECK(gem::cuda::routing_config{.num_tokens = 1, .top_k = 1, .num_experts = 1}.capacity_rows() == 1);
  CHECK(gem::cuda::fill_uniform_async(nullptr, 0, 0, 0.0f, 1.0f, nullptr).ok());
}
