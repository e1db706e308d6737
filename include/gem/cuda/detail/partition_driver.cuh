// gem/cuda/detail/partition_driver.cuh — the CUDA driver entry points device partitions use (green
// contexts, context switching), looked up once through the runtime's cudaGetDriverEntryPointByVersion
// so that gem::cuda needs no link to libcuda. Depends on the CUDA runtime and cuda.h (types only).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <string>

#include "gem/error.hpp"

namespace gem::cuda::detail {

/// Driver functions used by partition.cuh; a null member means the driver lacks it.
struct partition_driver {
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*ctx_get_current)(CUcontext*) = nullptr;
  CUresult (*ctx_set_current)(CUcontext) = nullptr;
  CUresult (*device_get_dev_resource)(CUdevice, CUdevResource*, CUdevResourceType) = nullptr;
  CUresult (*sm_resource_split_by_count)(CUdevResource*, unsigned int*, const CUdevResource*, CUdevResource*,
                                         unsigned int, unsigned int) = nullptr;
  CUresult (*resource_generate_desc)(CUdevResourceDesc*, CUdevResource*, unsigned int) = nullptr;
  CUresult (*green_ctx_create)(CUgreenCtx*, CUdevResourceDesc, CUdevice, unsigned int) = nullptr;
  CUresult (*green_ctx_destroy)(CUgreenCtx) = nullptr;
  CUresult (*green_ctx_get_dev_resource)(CUgreenCtx, CUdevResource*, CUdevResourceType) = nullptr;
  CUresult (*green_ctx_stream_create)(CUstream*, CUgreenCtx, unsigned int, int) = nullptr;
  CUresult (*ctx_from_green_ctx)(CUcontext*, CUgreenCtx) = nullptr;
  CUresult (*get_error_string)(CUresult, const char**) = nullptr;

  [[nodiscard]] bool has_green_contexts() const noexcept {
    return device_get_dev_resource && sm_resource_split_by_count && resource_generate_desc && green_ctx_create &&
           green_ctx_destroy && green_ctx_get_dev_resource && green_ctx_stream_create && ctx_from_green_ctx;
  }
};

template <class F>
inline void load_entry(const char* symbol, F*& out) noexcept {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult q{};
  // The header's ABI (CUDA_VERSION) is the one these prototypes were compiled against.
  if (cudaGetDriverEntryPointByVersion(symbol, &p, CUDA_VERSION, cudaEnableDefault, &q) == cudaSuccess &&
      q == cudaDriverEntryPointSuccess)
    out = reinterpret_cast<F*>(p);
  else
    (void)cudaGetLastError();
}

/// The driver table, loaded on first use (thread-safe static initialisation).
[[nodiscard]] inline const partition_driver& driver() noexcept {
  static const partition_driver d = [] {
    partition_driver t;
    load_entry("cuDeviceGet", t.device_get);
    load_entry("cuCtxGetCurrent", t.ctx_get_current);
    load_entry("cuCtxSetCurrent", t.ctx_set_current);
    load_entry("cuDeviceGetDevResource", t.device_get_dev_resource);
    load_entry("cuDevSmResourceSplitByCount", t.sm_resource_split_by_count);
    load_entry("cuDevResourceGenerateDesc", t.resource_generate_desc);
    load_entry("cuGreenCtxCreate", t.green_ctx_create);
    load_entry("cuGreenCtxDestroy", t.green_ctx_destroy);
    load_entry("cuGreenCtxGetDevResource", t.green_ctx_get_dev_resource);
    load_entry("cuGreenCtxStreamCreate", t.green_ctx_stream_create);
    load_entry("cuCtxFromGreenCtx", t.ctx_from_green_ctx);
    load_entry("cuGetErrorString", t.get_error_string);
    return t;
  }();
  return d;
}

/// Throws gem::cuda_error "<what>: <driver error>" unless r is CUDA_SUCCESS.
inline void driver_check(CUresult r, const std::string& what) {
  if (r == CUDA_SUCCESS) return;
  const char* s = nullptr;
  if (driver().get_error_string) (void)driver().get_error_string(r, &s);
  throw gem::cuda_error(what + ": " + (s ? s : "CUDA driver error " + std::to_string(static_cast<int>(r))));
}

/// Throws gem::cuda_error "<what>: <runtime error>" unless e is cudaSuccess.
inline void runtime_check(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  throw gem::cuda_error(what + ": " + cudaGetErrorString(e));
}

}  // namespace gem::cuda::detail
