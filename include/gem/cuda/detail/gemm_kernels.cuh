// gem/cuda/detail/gemm_kernels.cuh — kernels behind grouped_gemm.cuh: the memory-bound grouped
// GEMM for few rows per group (counts read on the device, so it is graph-capturable), with an
// optional fused SiLU·mul epilogue for the gate/up projection; the SiLU·mul kernel of the cuBLAS
// paths; and the kernel that writes cuBLAS's device pointer arrays. Depends on the CUDA runtime,
// cuda_bf16.h and detail/launch.cuh (PDL); included by gem/cuda/grouped_gemm.cuh only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gem/cuda/detail/launch.cuh"

namespace gem::cuda::detail {

// Tuning of the row-streaming kernel (H200, sm_90). 8 warps split K; each block owns 16 output
// columns (16 gate + 16 up columns when gated) and streams those weight rows once; each thread keeps
// 8 16-byte weight loads in flight (Little's law: ~64 KB in flight per SM at 2 blocks/SM covers
// 4.3 TB/s x ~1 us of latency across 132 SMs). First-principles values, to be re-tuned from
// bench/cuda/grouped_gemm_bench.cu on the H200 (bench/RESULTS.md, issue 7).
constexpr int gemv_warps = 8;
constexpr int gemv_threads = gemv_warps * 32;
constexpr int gemv_loads_in_flight = 8;  // 16-byte weight vectors per thread per iteration
constexpr int gemv_cols = 16;            // output columns per column tile (one m16n8k16 A tile)

/// Weight bytes one block should stream at least: it pays one active-group lookup (a load round
/// trip and two barriers) per block. H200, 2026-11-29: 64 KB blocks (DeepSeek-V3 down, K = 2048)
/// ran at 92% of copy bandwidth against 103% for 458 KB blocks (gate/up).
constexpr std::int64_t gemv_block_bytes = 192 * 1024;
/// Blocks the grid keeps at least (two per SM of the H200's 132) when blocks are made longer.
constexpr std::int64_t gemv_min_blocks = 264;

/// Warps that split K for one column tile (the block's other warps take other column tiles):
/// enough that each warp streams >= 8 chunks of 32 k per row (H200: at K = 768 a full 8-way split
/// left each warp one load round trip and the down GEMM of Qwen3 at 50% of copy bandwidth).
constexpr std::int32_t gemv_ksplit(std::int32_t k) noexcept {
  const std::int32_t chunks = k / 32;
  return chunks >= 64 ? 8 : chunks >= 32 ? 4 : chunks >= 16 ? 2 : 1;
}

struct gemv_params {
  const __nv_bfloat16* x;      // [rows][k]
  const __nv_bfloat16* w;      // [groups][w_rows][k]
  __nv_bfloat16* y;            // [rows][n_out]
  const std::int32_t* counts;  // [groups]
  const std::int32_t* offsets; // [groups]
  std::int32_t num_groups;
  std::int32_t n_out;          // output columns (gated: the intermediate size)
  std::int32_t k;
  std::int64_t w_group_stride; // elements between groups of w
  std::int32_t up_offset;      // gated: first row of the up half in each group's w
  std::int32_t ksplit;         // warps per column tile (1, 2, 4 or 8)
  std::int32_t col_blocks;     // column blocks of 16 * (8 / ksplit) columns
  std::int32_t col_blocks_per_block;  // consecutive column blocks one block streams
};

__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint4 ld_cached(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

/// acc (16x8, f32) += A (16x16 bf16) * B (16x8 bf16).
__device__ __forceinline__ void mma_bf16(float (&acc)[4], std::uint32_t a0, std::uint32_t a1, std::uint32_t a2,
                                         std::uint32_t a3, std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/// Two m16n8k16 steps over 32 consecutive k: lane (g = lane/4, c = lane%4) holds 8 consecutive k
/// (c*8 .. c*8+7) of weight rows g and g+8 (`lo`, `hi`) and of x row g (`xv`). The k order inside
/// the two steps is a permutation applied identically to A and B, so the dot products are exact.
__device__ __forceinline__ void mma_chunk(float (&acc)[4], const uint4& lo, const uint4& hi, const uint4& xv) {
  mma_bf16(acc, lo.x, hi.x, lo.y, hi.y, xv.x, xv.y);
  mma_bf16(acc, lo.z, hi.z, lo.w, hi.w, xv.z, xv.w);
}

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + __expf(-g)) * u; }

/// A block-wide prefix from per-warp totals: `carry` plus the totals of the warps before `warp`,
/// and the sum of all `Warps` of them.
struct warp_prefix {
  std::int32_t before, total;
};
template <int Warps>
__device__ __forceinline__ warp_prefix across_warps(const std::int32_t* warp_total, int warp, std::int32_t carry) {
  warp_prefix r{carry, 0};
  for (int wi = 0; wi < Warps; ++wi) {
    if (wi < warp) r.before += warp_total[wi];
    r.total += warp_total[wi];
  }
  return r;
}

/// Index of the `target`-th group with a positive count (in group order), or -1. All threads of
/// the block call it; uses `scratch` (>= gemv_warps + 2 ints of shared memory).
__device__ __forceinline__ std::int32_t nth_active_group(const std::int32_t* counts, std::int32_t groups,
                                                         std::int32_t target, std::int32_t* scratch) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) scratch[gemv_warps] = -1;
  std::int32_t carry = 0;
  for (std::int32_t base = 0; base < groups; base += gemv_threads) {
    const std::int32_t g = base + tid;
    const bool active = g < groups && counts[g] > 0;
    const std::uint32_t mask = __ballot_sync(0xffffffffu, active);
    if (lane == 0) scratch[warp] = __popc(mask);
    __syncthreads();
    const auto [before, total] = across_warps<gemv_warps>(scratch, warp, carry);
    if (active && before + __popc(mask & ((1u << lane) - 1u)) == target) scratch[gemv_warps] = g;
    __syncthreads();
    const std::int32_t found = scratch[gemv_warps];
    if (found >= 0 || carry + total > target) return found;
    carry += total;
    __syncthreads();
  }
  return -1;
}

/// Grouped y_g = x_g · w_g^T for few rows per group, streaming each active group's weights once.
/// Grid: x = runs of col_blocks_per_block column blocks of 16 * (8 / ksplit) columns, y = (at
/// most) the number of active groups; block y finds the y-th group with rows. Warp w takes column
/// tile w / ksplit and the K slice w % ksplit. Rows are processed 8*MT at a time (more rows: more
/// passes over the same weights). Gated: each tile also streams the matching up rows and writes
/// silu(x·gate) * (x·up).
/// MT <= 2 (the launcher uses 1: 8 rows a pass): warps split K (gemv_ksplit) and sum their slices
/// through shared memory. MT >= 4 (the launcher uses 4: 32 rows a pass; ksplit 1): each warp owns one
/// 16-column tile over all of K and writes straight from registers, and the block's 8 warps read
/// the same x rows at nearly the same time, so x comes from L1 and L2 serves it once per 128
/// columns (split K would fetch x from L2 once per 16 columns: at 32 rows, twice the weights'
/// bytes).
template <int MT, bool Gated>
__global__ void __launch_bounds__(gemv_threads, 2) grouped_gemv_kernel(gemv_params p) {
  constexpr int NT = Gated ? 2 : 1;
  constexpr bool direct = MT >= 4;
  // One row tile (decode): twice the weight loads in flight, so that a warp's few chunks of a small
  // GEMM (6-30 MB of weights at T = 1) take one or two round trips instead of two to four.
  constexpr int U = (MT == 1 ? 2 : 1) * gemv_loads_in_flight / (2 * NT);
  __shared__ float red[direct ? 1 : gemv_warps][direct ? 1 : MT * NT * 4][32];
  __shared__ std::int32_t scratch[gemv_warps + 2];

  pdl_begin();  // launched with PDL: no memory touched before the previous kernel has completed
  const std::int32_t g = nth_active_group(p.counts, p.num_groups, static_cast<std::int32_t>(blockIdx.y), scratch);
  if (g < 0) return;
  const std::int32_t m = p.counts[g];
  const std::int64_t row0 = p.offsets[g];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int gl = lane >> 2, cl = lane & 3;
  const int ks = direct ? 1 : p.ksplit, tiles = gemv_warps / ks;
  const int ctile = warp / ks, kslice = warp % ks;
  for (std::int32_t j = 0; j < p.col_blocks_per_block; ++j) {
    const std::int32_t cb = static_cast<std::int32_t>(blockIdx.x) * p.col_blocks_per_block + j;
    if (cb >= p.col_blocks) break;
    const std::int32_t n0 = (cb * tiles + ctile) * gemv_cols;
    const bool col_ok = n0 < p.n_out;
    if (direct && !col_ok) break;  // no block-wide barrier follows on this path
    const std::int32_t K = p.k;
    const std::int32_t chunks = col_ok ? K / 32 : 0;

    const __nv_bfloat16* wg = p.w + static_cast<std::int64_t>(g) * p.w_group_stride;
    // Weight rows gl and gl + 8 of the tile (tile t = 1: the up half, up_offset rows further).
    const __nv_bfloat16* wlo = wg + static_cast<std::int64_t>((col_ok ? n0 : 0) + gl) * K + cl * 8;
    // Offsets inside one group's weights and one pass's x rows fit in 32 bits (can_implement's limits).
    const std::int32_t hi_off = 8 * K, up_off = p.up_offset * K;

    for (std::int32_t rp = 0; rp < m; rp += 8 * MT) {
      float acc[MT][NT][4];
  #pragma unroll
      for (int i = 0; i < MT; ++i)
  #pragma unroll
        for (int t = 0; t < NT; ++t) acc[i][t][0] = acc[i][t][1] = acc[i][t][2] = acc[i][t][3] = 0.0f;
      // x row rp + 8 i + gl at xr + 8 i K (formed only for rows of the group).
      const __nv_bfloat16* xr = p.x + (row0 + rp + gl) * K + cl * 8;
      const std::int32_t rows_left = m - rp - gl;  // row tile i holds a row of this lane when 8 i < rows_left
      for (std::int32_t c0 = kslice; c0 < chunks; c0 += ks * U) {
        uint4 lo[U][NT], hi[U][NT];
  #pragma unroll
        for (int u = 0; u < U; ++u) {
          const std::int32_t c = c0 + u * ks;
          const bool ok = c < chunks;
          const std::int32_t koff = c * 32;
  #pragma unroll
          for (int t = 0; t < NT; ++t) {
            const __nv_bfloat16* wt = wlo + (t == 1 ? up_off : 0) + koff;
            lo[u][t] = ok ? ld_stream(wt) : uint4{0, 0, 0, 0};
            hi[u][t] = ok ? ld_stream(wt + hi_off) : uint4{0, 0, 0, 0};
          }
        }
        if constexpr (direct) {
          // x rows one 8-row tile at a time (L1 hits after the block's first warp), as the weights
          // arrive; weights past K are zeros, so their x may stay zero too.
  #pragma unroll
          for (int u = 0; u < U; ++u) {
            const std::int32_t c = c0 + u;
            const std::int32_t koff = c * 32;
  #pragma unroll
            for (int i = 0; i < MT; ++i) {
              const uint4 xv = c < chunks && 8 * i < rows_left ? ld_cached(xr + (i * hi_off + koff)) : uint4{0, 0, 0, 0};
  #pragma unroll
              for (int t = 0; t < NT; ++t) mma_chunk(acc[i][t], lo[u][t], hi[u][t], xv);
            }
          }
        } else {
          uint4 xv[U][MT];
  #pragma unroll
          for (int u = 0; u < U; ++u) {
            const std::int32_t c = c0 + u * ks;
            const std::int32_t koff = c * 32;
  #pragma unroll
            for (int i = 0; i < MT; ++i)
              xv[u][i] = c < chunks && 8 * i < rows_left ? ld_cached(xr + (i * hi_off + koff)) : uint4{0, 0, 0, 0};
          }
  #pragma unroll
          for (int u = 0; u < U; ++u)
  #pragma unroll
            for (int i = 0; i < MT; ++i)
  #pragma unroll
              for (int t = 0; t < NT; ++t) mma_chunk(acc[i][t], lo[u][t], hi[u][t], xv[u][i]);
        }
      }
      if constexpr (direct) {
        // Accumulator q of row tile i: output column n0 + gl (+8 for q >= 2), x row 2*cl + (q & 1).
  #pragma unroll
        for (int i = 0; i < MT; ++i)
  #pragma unroll
          for (int q = 0; q < 4; ++q) {
            const std::int32_t r = rp + i * 8 + 2 * cl + (q & 1);
            if (r >= m) continue;
            float out = acc[i][0][q];
            if constexpr (Gated) {
              const float gate = __bfloat162float(__float2bfloat16_rn(acc[i][0][q]));
              const float up = __bfloat162float(__float2bfloat16_rn(acc[i][NT - 1][q]));
              out = silu_mul(gate, up);
            }
            p.y[(row0 + r) * p.n_out + n0 + gl + (q >= 2 ? 8 : 0)] = __float2bfloat16_rn(out);
          }
      } else {
        // Sum the K slices of each column tile.
    #pragma unroll
        for (int i = 0; i < MT; ++i)
    #pragma unroll
          for (int t = 0; t < NT; ++t)
    #pragma unroll
            for (int q = 0; q < 4; ++q) red[warp][(i * NT + t) * 4 + q][lane] = acc[i][t][q];
        __syncthreads();
        for (int idx = tid; idx < tiles * MT * 4 * 32; idx += gemv_threads) {
          const int tile = idx / (MT * 128), rem = idx % (MT * 128);
          const int i = rem / 128, q = (rem / 32) % 4, ln = rem % 32;
          const std::int32_t tn0 = (cb * tiles + tile) * gemv_cols;
          if (tn0 >= p.n_out) continue;
          float v[NT];
    #pragma unroll
          for (int t = 0; t < NT; ++t) {
            float s = 0.0f;
            for (int w = tile * ks; w < (tile + 1) * ks; ++w) s += red[w][(i * NT + t) * 4 + q][ln];
            v[t] = s;
          }
          const int col = (ln >> 2) + (q >= 2 ? 8 : 0);
          const std::int32_t r = rp + i * 8 + 2 * (ln & 3) + (q & 1);
          if (r < m) {
            float out = v[0];
            if constexpr (Gated) {
              // Round like the unfused path does (bf16 gate and up), so the paths agree closely.
              const float gate = __bfloat162float(__float2bfloat16_rn(v[0]));
              const float up = __bfloat162float(__float2bfloat16_rn(v[NT - 1]));
              out = silu_mul(gate, up);
            }
            p.y[(row0 + r) * p.n_out + tn0 + col] = __float2bfloat16_rn(out);
          }
        }
        __syncthreads();
      }
    }
  }  // column blocks
}

/// act[r][i] = silu(h[r][i]) * h[r][inter + i] for the rows r < offsets[groups] that hold a token
/// (offsets[g] <= r < offsets[g] + counts[g]), 8 columns per thread; padding rows inside a group's
/// room get zeros without reading h (the GEMM before may leave them unwritten, the one after may
/// read them).
template <int = 0>  // templates, so that every translation unit may include this header
__global__ void silu_mul_kernel(const __nv_bfloat16* __restrict__ h, __nv_bfloat16* __restrict__ act,
                                std::int32_t inter, const std::int32_t* __restrict__ counts,
                                const std::int32_t* __restrict__ offsets, std::int32_t groups) {
  pdl_begin();
  const std::int32_t r = static_cast<std::int32_t>(blockIdx.x);
  if (r >= offsets[groups]) return;
  std::int32_t lo = 0, hi = groups;  // the last group whose room starts at or before r
  while (hi - lo > 1) {
    const std::int32_t mid = (lo + hi) / 2;
    if (offsets[mid] <= r) lo = mid;
    else hi = mid;
  }
  const bool padding = r >= offsets[lo] + counts[lo];
  const std::int32_t vecs = inter / 8;
  const auto* hr = reinterpret_cast<const uint4*>(h + static_cast<std::int64_t>(r) * 2 * inter);
  auto* ar = reinterpret_cast<uint4*>(act + static_cast<std::int64_t>(r) * inter);
  for (std::int32_t v = threadIdx.x; v < vecs; v += blockDim.x) {
    if (padding) {
      ar[v] = uint4{0, 0, 0, 0};
      continue;
    }
    const uint4 gv = hr[v], uv = hr[vecs + v];
    const auto* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
    const auto* u2 = reinterpret_cast<const __nv_bfloat162*>(&uv);
    uint4 o;
    auto* o2 = reinterpret_cast<__nv_bfloat162*>(&o);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 a = __bfloat1622float2(g2[i]), b = __bfloat1622float2(u2[i]);
      o2[i] = __floats2bfloat162_rn(silu_mul(a.x, b.x), silu_mul(a.y, b.y));
    }
    ar[v] = o;
  }
}

/// cuBLAS's pointer arrays for the active groups (count > 0), in group order: A = w_g, B = x rows of
/// g, C = y rows of g. One block of 1024 threads.
template <int = 0>
__global__ void __launch_bounds__(1024) group_pointers_kernel(const __nv_bfloat16* w, const __nv_bfloat16* x,
                                                              __nv_bfloat16* y, const std::int32_t* counts,
                                                              const std::int32_t* offsets, std::int32_t groups,
                                                              std::int64_t w_stride, std::int32_t k, std::int32_t n,
                                                              const void** a, const void** b, void** c) {
  __shared__ std::int32_t warp_total[32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  std::int32_t carry = 0;
  for (std::int32_t base = 0; base < groups; base += 1024) {
    const std::int32_t g = base + tid;
    const bool active = g < groups && counts[g] > 0;
    const std::uint32_t mask = __ballot_sync(0xffffffffu, active);
    if (lane == 0) warp_total[warp] = __popc(mask);
    __syncthreads();
    const auto [before, total] = across_warps<32>(warp_total, warp, carry);
    if (active) {
      const std::int32_t i = before + __popc(mask & ((1u << lane) - 1u));
      a[i] = w + static_cast<std::int64_t>(g) * w_stride;
      b[i] = x + static_cast<std::int64_t>(offsets[g]) * k;
      c[i] = y + static_cast<std::int64_t>(offsets[g]) * n;
    }
    carry += total;
    __syncthreads();
  }
}

/// Pointer arrays for the bucketed path: active groups (count > 0) ordered by (room, group), where
/// room = offsets[g+1] - offsets[g]; the host derives the same order from its copy of the sizes.
/// One block of 1024 threads, groups <= 1024.
template <int = 0>
__global__ void __launch_bounds__(1024) bucket_pointers_kernel(const __nv_bfloat16* w, const __nv_bfloat16* x,
                                                               __nv_bfloat16* y, const std::int32_t* counts,
                                                               const std::int32_t* offsets, std::int32_t groups,
                                                               std::int64_t w_stride, std::int32_t k, std::int32_t n,
                                                               const void** a, const void** b, void** c) {
  __shared__ std::int32_t room[1024];
  const std::int32_t g = threadIdx.x;
  const bool active = g < groups && counts[g] > 0;
  if (g < groups) room[g] = active ? offsets[g + 1] - offsets[g] : -1;
  __syncthreads();
  if (!active) return;
  const std::int32_t mine = room[g];
  std::int32_t rank = 0;
  for (std::int32_t o = 0; o < groups; ++o) {
    const std::int32_t r = room[o];
    rank += r >= 0 && (r < mine || (r == mine && o < g));
  }
  a[rank] = w + static_cast<std::int64_t>(g) * w_stride;
  b[rank] = x + static_cast<std::int64_t>(offsets[g]) * k;
  c[rank] = y + static_cast<std::int64_t>(offsets[g]) * n;
}

/// The chunked path's rows per chunk for a group of `rows` > 0 rows: chunk_rows_max, or below it the
/// largest power of two <= rows (so that a group is covered by chunks that lie inside it).
constexpr std::int32_t chunk_rows_max = 128;
constexpr int chunk_classes = 8;  // chunks of 128, 64, ..., 1 rows
__host__ __device__ constexpr std::int32_t chunk_rows_for(std::int32_t rows) noexcept {
  std::int32_t c = chunk_rows_max;
  while (c > rows) c /= 2;
  return c;
}
/// Class of a chunk size: 0 for 128 rows, 1 for 64, ..., 7 for 1.
__host__ __device__ constexpr int chunk_class(std::int32_t chunk) noexcept {
  int c = 0;
  while ((chunk_rows_max >> c) > chunk) ++c;
  return c;
}

/// Pointer arrays for the chunked path. Group g of n > 0 rows is cut into ceil(n / C) chunks of
/// C = chunk_rows_for(n) rows starting at min(i*C, n - C): the last chunk ends at the group's last
/// row and may overlap the one before (those rows are computed twice, with the same inputs).
/// Chunks are ordered by (class, group, i), the order the host derives from its copy of the sizes.
/// One block of 1024 threads, groups <= 1024.
template <int = 0>
__global__ void __launch_bounds__(1024) chunk_pointers_kernel(const __nv_bfloat16* w, const __nv_bfloat16* x,
                                                              __nv_bfloat16* y, const std::int32_t* counts,
                                                              const std::int32_t* offsets, std::int32_t groups,
                                                              std::int64_t w_stride, std::int32_t k, std::int32_t n,
                                                              const void** a, const void** b, void** c) {
  __shared__ std::int32_t warp_total[32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const std::int32_t rows = tid < groups ? counts[tid] : 0;
  const std::int32_t chunk = rows > 0 ? chunk_rows_for(rows) : 0;
  const std::int32_t chunks = rows > 0 ? (rows + chunk - 1) / chunk : 0;
  const int cls = rows > 0 ? chunk_class(chunk) : -1;
  std::int32_t base = 0;
  for (int cl = 0; cl < chunk_classes; ++cl) {
    // exclusive prefix over groups of this class's chunk counts: within the warp, then across warps
    const std::int32_t v = cls == cl ? chunks : 0;
    std::int32_t incl = v;
    for (int d = 1; d < 32; d *= 2) {
      const std::int32_t up = __shfl_up_sync(0xffffffffu, incl, d);
      if (lane >= d) incl += up;
    }
    if (lane == 31) warp_total[warp] = incl;
    __syncthreads();
    const auto [before, total] = across_warps<32>(warp_total, warp, base);
    if (v > 0) {
      const std::int32_t first = before + incl - v;
      const std::int64_t off = offsets[tid];
      for (std::int32_t i = 0; i < chunks; ++i) {
        const std::int64_t row = off + min(i * chunk, rows - chunk);
        a[first + i] = w + static_cast<std::int64_t>(tid) * w_stride;
        b[first + i] = x + row * k;
        c[first + i] = y + row * n;
      }
    }
    base += total;
    __syncthreads();
  }
}

}  // namespace gem::cuda::detail
