// The CUDA side of the consumer: compiled by nvcc, links gem::cuda, runs with or without a GPU.
#include <gem/cuda/status.cuh>
#include <gem/gem.hpp>

#include <cstdio>

int cuda_part() {
  const int n = gem::cuda::device_count();
  std::printf("gem_consumer: %d CUDA device(s) visible\n", n);
  return n >= 0 ? 0 : 1;
}
