// gem/cuda/permute.cuh — permute (gather token rows into the routing layout's expert-major order,
// 16-byte accesses) and combine (weighted sum of expert outputs back to token order, fp32
// accumulation, optional residual add). Depends on the CUDA runtime, cuda_bf16.h and
// gem/cuda/routing.cuh (the layout whose index maps both use).
//
// Host call sequence, per step, after routing_layout_async on the same stream:
//   permute_async(layout, k, d_x, H * sizeof(bf16), d_xp, stream);       // d_xp: [capacity_rows][H]
//   ... experts: d_yp[r] = expert(d_xp[r]) for the rows of each group ...
//   combine_async(layout, T, k, d_topk_weights, d_yp, H, d_residual_or_null, d_out, stream);
// Permute then combine with one-hot (or power-of-two 1/k) weights and an identity expert gives x
// back bit for bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "gem/cuda/detail/permute_kernels.cuh"
#include "gem/cuda/routing.cuh"
#include "gem/cuda/status.cuh"

namespace gem::cuda {

using bf16 = __nv_bfloat16;

/// Whether permute_async can run: row_bytes a positive multiple of 16, both pointers 16-byte aligned.
[[nodiscard]] inline status can_implement_permute(const routing_layout& layout, std::size_t row_bytes,
                                                  const void* x, const void* out) noexcept {
  if (!layout.perm_to_src || !x || !out || row_bytes == 0 || row_bytes % 16 != 0 ||
      row_bytes / 16 > static_cast<std::size_t>(INT32_MAX) || reinterpret_cast<std::uintptr_t>(x) % 16 != 0 ||
      reinterpret_cast<std::uintptr_t>(out) % 16 != 0)
    return {status_code::invalid_argument, cudaSuccess, 0};
  return {};
}

namespace detail {
/// SMs of the current device (132, an H200's, when they cannot be read).
inline std::int32_t current_sm_count() noexcept {
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    sms = 132;
  return sms;
}

/// The token-centric gather (each token row read once, written to its k rows); rows split into
/// column runs of whole multiples of permute_threads vectors so that the grid keeps about
/// `blocks_per_sm` blocks per SM. When even the shortest runs leave SMs without a block (a token
/// or two), each token's destinations are spread over up to k blocks as well (k = 8, H = 7168,
/// T = 1: 7 blocks; 1.04 us spread over 56 against 1.34, H200 2026-11-29).
inline cudaError_t launch_permute_tokens(const routing_layout& layout, std::int32_t top_k, const void* x,
                                         std::int32_t vectors, void* out, cudaStream_t stream,
                                         std::int32_t blocks_per_sm = permute_token_blocks_per_sm) noexcept {
  const std::int32_t tokens = layout.num_assignments / top_k;
  const std::int32_t sms = current_sm_count();
  const std::int32_t runs = (vectors + permute_threads - 1) / permute_threads;  // of permute_threads vectors
  const std::int32_t want =
      std::clamp((blocks_per_sm * sms + std::max(tokens, 1) - 1) / std::max(tokens, 1), 1, runs);
  const std::int32_t chunk_vectors = (runs + want - 1) / want * permute_threads;
  const std::int32_t chunks = (vectors + chunk_vectors - 1) / chunk_vectors;
  const std::int32_t splits = std::clamp(sms / std::max(tokens * chunks, 1), 1, top_k);
  const std::int32_t pad_blocks = (layout.capacity_rows + permute_pad_rows - 1) / permute_pad_rows;
  const dim3 grid(static_cast<unsigned>(tokens + pad_blocks), static_cast<unsigned>(chunks), static_cast<unsigned>(splits));
  return launch_pdl(permute_tokens_kernel<>, grid, dim3(permute_threads), 0, stream,
                    static_cast<const int4*>(x), static_cast<int4*>(out), vectors, chunk_vectors, top_k,
                    tokens, layout.src_to_perm, layout.perm_to_src, layout.group_offsets + layout.num_groups);
}

/// The destination-warp gather: column runs of permute_piece_vectors x max(1, 8 / k) vectors, so
/// that each block has about one (destination, piece) item per warp.
inline cudaError_t launch_permute_dest_warps(const routing_layout& layout, std::int32_t top_k, const void* x,
                                             std::int32_t vectors, void* out, cudaStream_t stream) noexcept {
  const std::int32_t tokens = layout.num_assignments / top_k;
  const std::int32_t pieces = (vectors + permute_piece_vectors - 1) / permute_piece_vectors;
  const std::int32_t per_block = std::max(1, (permute_warp_threads / 32) / top_k);
  const std::int32_t chunk_vectors = std::min(per_block, pieces) * permute_piece_vectors;
  const std::int32_t chunks = (vectors + chunk_vectors - 1) / chunk_vectors;
  const std::int32_t pad_blocks = (layout.capacity_rows + permute_pad_rows - 1) / permute_pad_rows;
  const dim3 grid(static_cast<unsigned>(tokens + pad_blocks), static_cast<unsigned>(chunks));
  return launch_pdl(permute_dest_warps_kernel<>, grid, dim3(permute_warp_threads), 0, stream,
                    static_cast<const int4*>(x), static_cast<int4*>(out), vectors, chunk_vectors, top_k,
                    tokens, layout.src_to_perm, layout.perm_to_src, layout.group_offsets + layout.num_groups);
}

/// Whether permute_async takes the destination-warp gather: 128-256 tokens whose k rows add up to
/// >= 64 KiB per token. H200, 2026-11-29 (bench/RESULTS.md), k = 8, H = 7168: T = 128 4.6-4.9 us
/// against 5.4-5.5 for the token gather, T = 256 9.9 against 10.5; it loses 3-13% at T <= 16, at
/// T >= 512, and at T = 128 with H = 2048 (k = 8) or k = 2 (H = 4096).
constexpr bool use_dest_warps(std::int32_t tokens, std::int32_t top_k, std::size_t row_bytes) noexcept {
  return tokens >= 128 && tokens <= 256 && static_cast<std::size_t>(top_k) * row_bytes >= 64 * 1024;
}
}  // namespace detail

/// Enqueues the gather on `stream` and returns before it finishes: row r of `out`
/// ([layout.capacity_rows][row_bytes]) becomes row perm_to_src[r] / top_k of `x` ([T][row_bytes]);
/// padding rows become zeros; rows at or past group_offsets[G] are not touched. Any element type:
/// rows are copied as bytes. Needs no workspace. Each token row is fetched from memory once and
/// written to its k rows (ids out of range: to none), by one of two gathers chosen by size
/// (detail::use_dest_warps).
[[nodiscard]] inline status permute_async(const routing_layout& layout, std::int32_t top_k, const void* x,
                                          std::size_t row_bytes, void* out, cudaStream_t stream) noexcept {
  if (auto s = can_implement_permute(layout, row_bytes, x, out); !s) return s;
  if (top_k <= 0 || layout.num_assignments % top_k != 0 || !layout.src_to_perm)
    return {status_code::invalid_argument, cudaSuccess, 0};
  if (layout.capacity_rows == 0) return {};
  const auto vectors = static_cast<std::int32_t>(row_bytes / 16);
  const std::int32_t tokens = layout.num_assignments / top_k;
  const cudaError_t e = detail::use_dest_warps(tokens, top_k, row_bytes)
                            ? detail::launch_permute_dest_warps(layout, top_k, x, vectors, out, stream)
                            : detail::launch_permute_tokens(layout, top_k, x, vectors, out, stream);
  return from_cuda(e != cudaSuccess ? e : cudaGetLastError());
}

/// Whether combine_async can run: hidden a positive multiple of 8, pointers 16-byte aligned.
[[nodiscard]] inline status can_implement_combine(const routing_layout& layout, std::int32_t num_tokens,
                                                  std::int32_t top_k, std::int32_t hidden, const bf16* y,
                                                  const bf16* residual, const bf16* out) noexcept {
  const auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  if (!layout.src_to_perm || !y || !out || num_tokens <= 0 || top_k <= 0 || hidden <= 0 || hidden % 8 != 0 ||
      static_cast<std::int64_t>(num_tokens) * top_k != layout.num_assignments || !aligned(y) ||
      !aligned(out) || (residual && !aligned(residual)))
    return {status_code::invalid_argument, cudaSuccess, 0};
  return {};
}

/// Enqueues the combine on `stream` and returns before it finishes:
/// out[t] = bf16( sum_j weights[t][j] * y[src_to_perm[t*k + j]] + residual[t] ), accumulated in
/// fp32 in j order. `weights` ([T][k] float, source order; null means 1) and `residual` ([T][H];
/// null means none) are optional; `y` is [capacity_rows][H]; out is [T][H] and may alias residual.
/// Zero weights and ids out of range contribute nothing. Needs no workspace.
[[nodiscard]] inline status combine_async(const routing_layout& layout, std::int32_t num_tokens,
                                          std::int32_t top_k, const float* weights, const bf16* y,
                                          std::int32_t hidden, const bf16* residual, bf16* out,
                                          cudaStream_t stream) noexcept {
  if (auto s = can_implement_combine(layout, num_tokens, top_k, hidden, y, residual, out); !s) return s;
  const auto launch = [&](auto kernel, int vpt) {
    const int per_block = detail::combine_threads * vpt;
    const dim3 grid(static_cast<unsigned>(num_tokens),
                    static_cast<unsigned>((hidden / 8 + per_block - 1) / per_block));
    return detail::launch_pdl(kernel, grid, dim3(detail::combine_threads), 0, stream,
                              reinterpret_cast<const int4*>(y), reinterpret_cast<const int4*>(residual),
                              reinterpret_cast<int4*>(out), hidden / 8, top_k, layout.src_to_perm, weights);
  };
  const cudaError_t e = top_k <= 2   ? launch(detail::combine_rows_kernel<4, 2>, 4)
                        : top_k <= 4 ? launch(detail::combine_rows_kernel<2, 4>, 2)
                                     : launch(detail::combine_rows_kernel<1, 8>, 1);
  return from_cuda(e != cudaSuccess ? e : cudaGetLastError());
}

}  // namespace gem::cuda
