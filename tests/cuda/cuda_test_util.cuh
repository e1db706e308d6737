// Shared helpers of gem's GPU tests: skip (saying so) when the process sees no CUDA device; RAII
// device buffers; bf16 conversions written independently of cuda_bf16.h (for references).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gem/cuda/status.cuh"

/// Use at the top of a GPU TEST_CASE: prints the skip marker ctest looks for and returns.
#define GEM_REQUIRE_GPU()                                                        \
  do {                                                                           \
    if (gem::cuda::device_count() == 0) {                                        \
      std::cout << "SKIPPED: no CUDA device visible to this process\n";          \
      return;                                                                    \
    }                                                                            \
  } while (0)

namespace gem::test {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

/// Device memory of n elements of T (256-byte aligned by cudaMalloc), freed on scope exit.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n) : n_(n) {
    if (n > 0) cuda_check(cudaMalloc(&p_, n * sizeof(T)), "cudaMalloc");
  }
  explicit device_buffer(const std::vector<T>& v) : device_buffer(v.size()) { upload(v); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  device_buffer& operator=(device_buffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~device_buffer() {
    if (p_) (void)cudaFree(p_);
  }
  [[nodiscard]] T* get() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  void upload(const std::vector<T>& v) {
    if (v.size() > n_) throw std::runtime_error("upload: too many elements");
    cuda_check(cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  [[nodiscard]] std::vector<T> download(std::size_t n = SIZE_MAX) const {
    std::vector<T> v(n == SIZE_MAX ? n_ : n);
    cuda_check(cudaMemcpy(v.data(), p_, v.size() * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return v;
  }
  /// Fills every byte with `byte` (poison before a run, so unwritten outputs show).
  void poison(int byte = 0xff) { cuda_check(cudaMemset(p_, byte, n_ * sizeof(T)), "cudaMemset"); }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

/// bf16 bits -> float (exact).
inline float bf16_bits_to_float(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/// float -> bf16 bits, round to nearest even (finite inputs).
inline std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

}  // namespace gem::test
