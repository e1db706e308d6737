// gem/cuda/detail/permute_kernels.cuh — kernels behind permute_async (row gather into expert-major
// order, 16-byte accesses) and combine_async (weighted sum back to token order in fp32). Depends on
// the CUDA runtime, cuda_bf16.h and detail/launch.cuh (PDL); included by gem/cuda/permute.cuh only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gem/cuda/detail/launch.cuh"

namespace gem::cuda::detail {

/// 16-byte vectors each thread keeps in flight before storing (loads overlap).
constexpr int permute_unroll = 4;
constexpr int permute_threads = 128;
constexpr int combine_threads = 128;
// combine_rows_kernel<VPT, KB> variants: (vectors per thread, expert rows loaded at once) chosen by
// k so that each thread has 8 loads in flight: k <= 2 -> <4, 2>, k <= 4 -> <2, 4>, else <1, 8>.
// H200, 2026-11-29: one vector per thread at k = 2 moved 2.9 TB/s (T = 4096, H = 4096).

__device__ __forceinline__ int4 load_nc(const int4* p) {
  int4 v;
  asm volatile("ld.global.nc.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/// Padding rows one block of a gather checks (one per thread) and zeroes.
constexpr int permute_pad_rows = permute_threads;
/// Blocks per SM the token gather aims for: rows are split into column runs (whole multiples of
/// permute_threads vectors) when tokens are few. H200, 2026-11-29 (bench/RESULTS.md), k = 8, H = 7168:
/// T = 128 5.40 us at 4 per SM against 7.05 at 2 and 5.53 at 8; T = 1024 39.2 us at 4, 34.9 at 8.
constexpr std::int32_t permute_token_blocks_per_sm = 4;
/// Threads of a destination-warp gather block, and the vectors one warp copies per item (4 each lane).
constexpr int permute_warp_threads = 256;
constexpr int permute_piece_vectors = 128;

/// Block-wide: zeroes, in columns [v_begin, v_end), the padding rows (perm_to_src < 0) below
/// rows_used among rows [first, first + permute_pad_rows). The first permute_pad_rows threads each
/// check one row; every thread of the block (at least permute_pad_rows) stores.
__device__ __forceinline__ void zero_padding_rows(int4* out, std::int32_t vectors_per_row, std::int32_t first,
                                                  std::int32_t v_begin, std::int32_t v_end,
                                                  const std::int32_t* __restrict__ perm_to_src,
                                                  const std::int32_t* __restrict__ rows_used) {
  __shared__ std::int32_t pad[permute_pad_rows];
  __shared__ std::int32_t found;
  if (threadIdx.x == 0) found = 0;
  __syncthreads();
  const std::int32_t r = first + static_cast<std::int32_t>(threadIdx.x);
  if (threadIdx.x < permute_pad_rows && r < *rows_used && perm_to_src[r] < 0) pad[atomicAdd(&found, 1)] = r;
  __syncthreads();
  for (std::int32_t i = 0; i < found; ++i)
    for (std::int32_t v = v_begin + static_cast<std::int32_t>(threadIdx.x); v < v_end; v += static_cast<std::int32_t>(blockDim.x))
      out[static_cast<std::int64_t>(pad[i]) * vectors_per_row + v] = int4{0, 0, 0, 0};
}

/// Token-centric gather: block (t, c, z) reads the c-th run of chunk_vectors 16-byte vectors of
/// token row t of x once and writes it to the token's permuted rows src_to_perm[t*k + j] for
/// j = z, z + gridDim.z, ... (none for -1: an id out of range); gridDim.z > 1 spreads one token's
/// destinations over blocks when tokens are too few to fill the GPU. Blocks t >= num_tokens (z = 0)
/// zero the padding rows (perm_to_src < 0) below rows_used, permute_pad_rows rows each. Rows at or
/// past rows_used are left alone.
template <int = 0>
__global__ void __launch_bounds__(permute_threads)
    permute_tokens_kernel(const int4* __restrict__ x, int4* __restrict__ out, std::int32_t vectors_per_row,
                          std::int32_t chunk_vectors, std::int32_t top_k, std::int32_t num_tokens,
                          const std::int32_t* __restrict__ src_to_perm,
                          const std::int32_t* __restrict__ perm_to_src,
                          const std::int32_t* __restrict__ rows_used) {
  pdl_begin();
  const auto t = static_cast<std::int32_t>(blockIdx.x);
  const std::int32_t v_begin = static_cast<std::int32_t>(blockIdx.y) * chunk_vectors;
  const std::int32_t v_end = min(vectors_per_row, v_begin + chunk_vectors);
  if (t >= num_tokens) {
    if (blockIdx.z == 0)
      zero_padding_rows(out, vectors_per_row, (t - num_tokens) * permute_pad_rows, v_begin, v_end, perm_to_src, rows_used);
    return;
  }
  const int4* row = x + static_cast<std::int64_t>(t) * vectors_per_row;
  const std::int32_t* dst = src_to_perm + static_cast<std::int64_t>(t) * top_k;
  for (std::int32_t v0 = v_begin + static_cast<std::int32_t>(threadIdx.x); v0 < v_end;
       v0 += permute_threads * permute_unroll) {
    int4 buf[permute_unroll];
#pragma unroll
    for (int u = 0; u < permute_unroll; ++u) {
      const std::int32_t v = v0 + u * permute_threads;
      if (v < v_end) buf[u] = load_nc(row + v);
    }
    for (auto j = static_cast<std::int32_t>(blockIdx.z); j < top_k; j += static_cast<std::int32_t>(gridDim.z)) {
      const std::int32_t d = dst[j];
      if (d < 0) continue;
      int4* o = out + static_cast<std::int64_t>(d) * vectors_per_row;
#pragma unroll
      for (int u = 0; u < permute_unroll; ++u) {
        const std::int32_t v = v0 + u * permute_threads;
        if (v < v_end) o[v] = buf[u];
      }
    }
  }
}

/// Destination-warp gather: block (t, c) takes the c-th run of chunk_vectors vectors of token t,
/// cut into pieces of permute_piece_vectors; each of its 8 warps copies (destination j, piece p)
/// items, reading the piece (again: L1/L2 hits after the first warp) and writing it as one
/// contiguous run. Twice the threads of the token gather in flight, each writing to one row.
/// Padding blocks as in permute_tokens_kernel.
template <int = 0>
__global__ void __launch_bounds__(permute_warp_threads)
    permute_dest_warps_kernel(const int4* __restrict__ x, int4* __restrict__ out, std::int32_t vectors_per_row,
                              std::int32_t chunk_vectors, std::int32_t top_k, std::int32_t num_tokens,
                              const std::int32_t* __restrict__ src_to_perm,
                              const std::int32_t* __restrict__ perm_to_src,
                              const std::int32_t* __restrict__ rows_used) {
  constexpr int lanes = 32, per_lane = permute_piece_vectors / lanes, warps = permute_warp_threads / lanes;
  pdl_begin();
  const auto t = static_cast<std::int32_t>(blockIdx.x);
  const std::int32_t v_begin = static_cast<std::int32_t>(blockIdx.y) * chunk_vectors;
  const std::int32_t v_end = min(vectors_per_row, v_begin + chunk_vectors);
  if (t >= num_tokens) {
    zero_padding_rows(out, vectors_per_row, (t - num_tokens) * permute_pad_rows, v_begin, v_end, perm_to_src, rows_used);
    return;
  }
  const std::int32_t pieces = (v_end - v_begin + permute_piece_vectors - 1) / permute_piece_vectors;
  const auto lane = static_cast<std::int32_t>(threadIdx.x) % lanes;
  const int4* row = x + static_cast<std::int64_t>(t) * vectors_per_row;
  for (auto i = static_cast<std::int32_t>(threadIdx.x) / lanes; i < top_k * pieces; i += warps) {
    const std::int32_t j = i / pieces;
    const std::int32_t d = src_to_perm[static_cast<std::int64_t>(t) * top_k + j];
    if (d < 0) continue;
    int4* o = out + static_cast<std::int64_t>(d) * vectors_per_row;
    const std::int32_t v0 = v_begin + (i - j * pieces) * permute_piece_vectors + lane;
    int4 buf[per_lane];
#pragma unroll
    for (int u = 0; u < per_lane; ++u)
      if (v0 + u * lanes < v_end) buf[u] = load_nc(row + v0 + u * lanes);
#pragma unroll
    for (int u = 0; u < per_lane; ++u)
      if (v0 + u * lanes < v_end) o[v0 + u * lanes] = buf[u];
  }
}

__device__ __forceinline__ void accumulate8(float (&acc)[8], int4 v, float w) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    acc[2 * i] = fmaf(w, f.x, acc[2 * i]);
    acc[2 * i + 1] = fmaf(w, f.y, acc[2 * i + 1]);
  }
}

/// Block (t, c): token t, VPT 16-byte column vectors per thread starting at
/// c*combine_threads*VPT, all their expert-row loads issued before any is used (latency, not a
/// loop, bounds small T; VPT > 1 keeps >= 8 loads in flight when k is small).
/// out[t] = sum_j w[t][j] * y[src_to_perm[t*k+j]] (+ residual[t]), fp32 accumulation in j order,
/// then the residual, rounded once to bf16. Assignments with src_to_perm = -1 (ids out of range)
/// and zero weights contribute nothing.
template <int VPT, int KB>
__global__ void __launch_bounds__(combine_threads) combine_rows_kernel(
    const int4* __restrict__ y, const int4* residual, int4* out, std::int32_t vectors_per_row, std::int32_t top_k,
    const std::int32_t* __restrict__ src_to_perm, const float* __restrict__ weights) {
  pdl_begin();
  const std::int32_t t = static_cast<std::int32_t>(blockIdx.x);
  const std::int32_t v0 = static_cast<std::int32_t>(blockIdx.y) * combine_threads * VPT + threadIdx.x;
  const std::int32_t* idx = src_to_perm + static_cast<std::int64_t>(t) * top_k;
  const float* wt = weights ? weights + static_cast<std::int64_t>(t) * top_k : nullptr;
  float acc[VPT][8];
#pragma unroll
  for (int q = 0; q < VPT; ++q)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[q][i] = 0.0f;
  for (std::int32_t j0 = 0; j0 < top_k; j0 += KB) {
    std::int32_t row[KB];
    float w[KB];
#pragma unroll
    for (int u = 0; u < KB; ++u) {
      const std::int32_t j = j0 + u;
      row[u] = j < top_k ? idx[j] : -1;
      w[u] = row[u] >= 0 ? (wt ? wt[j] : 1.0f) : 0.0f;
    }
    int4 buf[VPT][KB];
#pragma unroll
    for (int q = 0; q < VPT; ++q)
#pragma unroll
      for (int u = 0; u < KB; ++u) {
        const std::int32_t v = v0 + q * combine_threads;
        buf[q][u] = w[u] != 0.0f && v < vectors_per_row
                        ? load_nc(y + static_cast<std::int64_t>(row[u]) * vectors_per_row + v)
                        : int4{0, 0, 0, 0};
      }
#pragma unroll
    for (int q = 0; q < VPT; ++q)
#pragma unroll
      for (int u = 0; u < KB; ++u)
        if (w[u] != 0.0f) accumulate8(acc[q], buf[q][u], w[u]);
  }
#pragma unroll
  for (int q = 0; q < VPT; ++q) {
    const std::int32_t v = v0 + q * combine_threads;
    if (v >= vectors_per_row) continue;
    if (residual) accumulate8(acc[q], residual[static_cast<std::int64_t>(t) * vectors_per_row + v], 1.0f);  // may alias out
    int4 o;
    auto* h = reinterpret_cast<__nv_bfloat162*>(&o);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(acc[q][2 * i], acc[q][2 * i + 1]);
    out[static_cast<std::int64_t>(t) * vectors_per_row + v] = o;
  }
}

}  // namespace gem::cuda::detail
