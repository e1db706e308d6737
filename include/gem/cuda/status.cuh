// gem/cuda/status.cuh — the status every gem launch path returns, and device discovery.
// Depends on the CUDA runtime.
// Every CUDA error a helper meets (a failed launch, a context poisoned by an earlier fault, out of
// memory) comes back as a status, never as a crash (tests/cuda/fault_test.cu). The stream a helper
// is given must be alive for the call: CUDA itself crashes on a destroyed stream's handle.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gem::cuda {

/// What went wrong in a launch path, if anything.
enum class status_code : std::int32_t {
  success = 0,
  invalid_argument,      ///< a size, pointer or configuration the call cannot implement
  workspace_too_small,   ///< caller's workspace is smaller than the size query asked for
  ids_out_of_range,      ///< some routing ids were outside [0, E); they were counted, not used
  cuda_failure,          ///< a CUDA runtime call failed; `cuda` holds its error
  cublas_failure,        ///< a cuBLAS call failed; `detail` holds its status
  unsupported,           ///< the device or build lacks what this path needs
};

/// Result of a launch path: a code, the CUDA error behind it and an extra value (e.g. the number of
/// out-of-range ids, or a cuBLAS status).
struct [[nodiscard]] status {
  status_code code = status_code::success;
  cudaError_t cuda = cudaSuccess;
  std::int64_t detail = 0;

  [[nodiscard]] constexpr bool ok() const noexcept { return code == status_code::success; }
  constexpr explicit operator bool() const noexcept { return ok(); }
};

/// A status from a CUDA runtime result.
[[nodiscard]] inline status from_cuda(cudaError_t e) noexcept {
  return e == cudaSuccess ? status{} : status{status_code::cuda_failure, e, 0};
}

/// Name of a status code, for messages.
[[nodiscard]] inline const char* to_string(status_code c) noexcept {
  switch (c) {
    case status_code::success: return "success";
    case status_code::invalid_argument: return "invalid argument";
    case status_code::workspace_too_small: return "workspace too small";
    case status_code::ids_out_of_range: return "ids out of range";
    case status_code::cuda_failure: return "CUDA failure";
    case status_code::cublas_failure: return "cuBLAS failure";
    case status_code::unsupported: return "unsupported";
  }
  return "unknown";
}

/// Number of CUDA devices usable by this process; 0 when there is no driver or no device.
[[nodiscard]] inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace gem::cuda
