#include <doctest/doctest.h>

#include <cstring>

#include "cuda/cuda_test_util.cuh"
#include "gem/cuda/status.cuh"

TEST_CASE("a CUDA error becomes a failed status that keeps the error") {
  const auto s = gem::cuda::from_cuda(cudaErrorMemoryAllocation);
  CHECK_FALSE(s.ok());
  CHECK(s.code == gem::cuda::status_code::cuda_failure);
  CHECK(s.cuda == cudaErrorMemoryAllocation);
  CHECK(gem::cuda::from_cuda(cudaSuccess).ok());
  CHECK(std::strcmp(gem::cuda::to_string(gem::cuda::status_code::ids_out_of_range), "ids out of range") == 0);
}

TEST_CASE("an allocation larger than the device is reported, not fatal") {
  GEM_REQUIRE_GPU();
  void* p = nullptr;
  const auto s = gem::cuda::from_cuda(cudaMalloc(&p, std::size_t{1} << 50));
  CHECK(s.code == gem::cuda::status_code::cuda_failure);
  CHECK(s.cuda == cudaErrorMemoryAllocation);
  (void)cudaGetLastError();
}
