// gem/cuda/detail/launch.cuh — programmatic dependent launch (PDL) for gem's hot-path kernels: the
// host launcher (cudaLaunchKernelEx with programmatic stream serialization where the device has
// compute capability 9.0+) and the two device calls each such kernel makes first. A kernel launched
// this way may be scheduled while the previous kernel on its stream drains; it touches no memory
// until that kernel has completed (griddepcontrol.wait), so the ordering a stream promises holds,
// and the launch latency hides behind the previous kernel's tail (also inside captured graphs).
// Depends on the CUDA runtime; included by gem's CUDA headers only.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstddef>

namespace gem::cuda::detail {

/// First thing in a PDL kernel: let this grid's dependents begin launching, then wait until every
/// prerequisite grid has completed and its memory is visible. No-ops for a grid launched without
/// the attribute; nothing below sm_90.
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// Whether the current device takes programmatic dependent launch (compute capability 9.0+),
/// cached per device.
inline bool pdl_supported() noexcept {
  static std::array<std::atomic<int>, 64> cache{};  // 0 unknown, 1 no, 2 yes
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return false;
  auto& c = cache[static_cast<std::size_t>(dev)];
  if (const int v = c.load(std::memory_order_relaxed); v != 0) return v == 2;
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  c.store(major >= 9 ? 2 : 1, std::memory_order_relaxed);
  return major >= 9;
}

/// Launches `kernel` (which calls pdl_begin() first) on `stream`, with PDL where supported.
template <class... Params, class... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                       Args&&... args) noexcept {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl_supported() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

}  // namespace gem::cuda::detail
