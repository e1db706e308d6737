// gem/cuda/detail/routing_kernels.cuh — the kernels behind routing_layout_async: a stable counting
// sort of top-k assignments into groups (experts, or placement slots), one tile per block (and a
// count pass when there are several tiles). Depends on the CUDA runtime and detail/launch.cuh (PDL);
// included by gem/cuda/routing.cuh only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gem/cuda/detail/launch.cuh"

namespace gem::cuda::detail {

/// murmur3's 32-bit finalizer: a cheap, well-mixed hash used for replica choice.
__host__ __device__ constexpr std::uint32_t fmix32(std::uint32_t h) noexcept {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/// Uniform value in [0, 1) with 24 bits, from (token, expert): the replica chooser's draw.
__host__ __device__ constexpr float replica_draw(std::int32_t token, std::int32_t expert) noexcept {
  const std::uint32_t h =
      fmix32(static_cast<std::uint32_t>(token) * 0x9e3779b1u ^ static_cast<std::uint32_t>(expert) * 0x85ebca77u);
  return static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
}

struct routing_params {
  std::int32_t num_assignments;  // T * k
  std::int32_t top_k;
  std::int32_t num_experts;
  std::int32_t num_groups;
  std::int32_t tile_rows;
  std::int32_t capacity_rows;
  // placement (num_slots == 0: group = expert)
  std::int32_t num_slots;
  std::int32_t num_gpus;
  std::int32_t max_replicas;
  const std::int32_t* log2phy;
  const float* cum_share;
  const std::int32_t* slot_gpu;
  // outputs
  std::int32_t* group_counts;
  std::int32_t* group_offsets;
  std::int32_t* expert_counts;
  std::int32_t* gpu_counts;
  std::int32_t* perm_to_src;
  std::int32_t* src_to_perm;
  float* perm_weights;
  std::int32_t* num_invalid;
};

/// Group of assignment i with expert id `id`; -1 when the id is outside [0, E).
template <class Id>
__device__ __forceinline__ std::int32_t routing_group(const routing_params& p, std::int32_t i, Id id) {
  if (id < Id{0} || id >= static_cast<Id>(p.num_experts)) return -1;
  const auto e = static_cast<std::int32_t>(id);
  if (p.num_slots == 0) return e;
  const float u = replica_draw(i / p.top_k, e);
  const std::int32_t* row = p.log2phy + static_cast<std::int64_t>(e) * p.max_replicas;
  const float* cum = p.cum_share + static_cast<std::int64_t>(e) * p.max_replicas;
  std::int32_t slot = row[0];
  for (std::int32_t r = 0; r < p.max_replicas; ++r) {
    if (row[r] < 0) break;
    slot = row[r];
    if (u < cum[r]) break;
  }
  return slot;
}

/// Assignments each thread holds in registers: a block of W warps owns a tile of W*32*per_lane
/// consecutive assignments. H200, 2026-11-29 (bench/cuda/routing_bench.cu, graph replays): one
/// block places ~0.3 assignments/ns (scattered index stores bound one SM), so 8 per lane (8K-tile)
/// took 28.6 us at 8K; small tiles spread the placing over many SMs.
constexpr int routing_per_lane = 2;

/// Issues the loads of this thread's ids and weights in the tile starting at `tile_begin` (past the
/// end: id 0, weight 1); routing_keys turns the ids into groups. Split so that a kernel can clear
/// its shared memory while the loads are in flight.
template <class Id>
__device__ __forceinline__ void routing_fetch(const routing_params& p, const Id* __restrict__ ids,
                                              const float* __restrict__ weights, std::int32_t tile_begin,
                                              Id (&v)[routing_per_lane], float (&wt)[routing_per_lane]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int32_t base = tile_begin + warp * 32 * routing_per_lane + lane;
#pragma unroll
  for (int u = 0; u < routing_per_lane; ++u) {
    const std::int32_t i = base + u * 32;
    v[u] = i < p.num_assignments ? ids[i] : Id{0};
    wt[u] = i < p.num_assignments && weights ? weights[i] : 1.0f;
  }
}

/// Group of each fetched assignment (-1: id out of range, -2: past the end).
template <class Id>
__device__ __forceinline__ void routing_keys(const routing_params& p, std::int32_t tile_begin,
                                             const Id (&v)[routing_per_lane], std::int32_t (&key)[routing_per_lane]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int32_t base = tile_begin + warp * 32 * routing_per_lane + lane;
#pragma unroll
  for (int u = 0; u < routing_per_lane; ++u) {
    const std::int32_t i = base + u * 32;
    key[u] = i < p.num_assignments ? routing_group(p, i, v[u]) : -2;
  }
}

/// Pass 1 of a multi-tile layout: per-tile group counts (and invalid ids in column G) into
/// tile_hist[tile][G + 1]. One block per tile.
template <class Id>
__global__ void __launch_bounds__(1024) routing_count_kernel(routing_params p, const Id* __restrict__ ids,
                                                             std::int32_t* __restrict__ tile_hist) {
  pdl_begin();
  extern __shared__ std::int32_t hist[];  // [G + 1]
  const std::int32_t G = p.num_groups;
  Id v[routing_per_lane];
  std::int32_t key[routing_per_lane];
  float wt[routing_per_lane];
  const std::int32_t tile_begin = static_cast<std::int32_t>(blockIdx.x * blockDim.x) * routing_per_lane;
  routing_fetch<Id>(p, ids, nullptr, tile_begin, v, wt);
  for (std::int32_t g = threadIdx.x; g <= G; g += blockDim.x) hist[g] = 0;
  routing_keys<Id>(p, tile_begin, v, key);
  __syncthreads();
#pragma unroll
  for (int u = 0; u < routing_per_lane; ++u)
    if (key[u] != -2) atomicAdd(&hist[key[u] >= 0 ? key[u] : G], 1);
  __syncthreads();
  for (std::int32_t g = threadIdx.x; g <= G; g += blockDim.x)
    tile_hist[static_cast<std::int64_t>(blockIdx.x) * (G + 1) + g] = hist[g];
}

/// Exclusive block scan of v over all threads (blockDim a multiple of 32); returns the exclusive
/// prefix and adds the block total to `carry`. `scratch` holds >= 32 ints.
__device__ __forceinline__ std::int32_t block_exclusive_scan(std::int32_t v, std::int32_t& carry, std::int32_t* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  std::int32_t x = v;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const std::int32_t y = __shfl_up_sync(0xffffffffu, x, d);
    if (lane >= d) x += y;
  }
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  if (warp == 0) {
    std::int32_t w = lane < nw ? scratch[lane] : 0;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const std::int32_t y = __shfl_up_sync(0xffffffffu, w, d);
      if (lane >= d) w += y;
    }
    if (lane < nw) scratch[lane] = w;
  }
  __syncthreads();
  const std::int32_t excl = carry + (warp > 0 ? scratch[warp - 1] : 0) + x - v;
  carry += scratch[nw - 1];
  __syncthreads();
  return excl;
}

/// Places one tile per block. Group totals come from tile_hist (all tiles; nullptr when the whole
/// input is one tile: then from this block's own counts). Within the tile, warp w owns the
/// contiguous run [w*32*per_lane, (w+1)*32*per_lane) and lane order inside it, so ranks follow
/// source order: stable. Block 0 also writes counts, offsets, padding markers, per-expert and
/// per-GPU counts and the invalid count.
template <class Id>
__global__ void __launch_bounds__(1024, 1) routing_place_kernel(routing_params p, const Id* __restrict__ ids,
                                                             const float* __restrict__ weights,
                                                             const std::int32_t* __restrict__ tile_hist,
                                                             std::int32_t num_tiles) {
  pdl_begin();
  extern __shared__ std::int32_t smem[];
  const std::int32_t G = p.num_groups;
  const int W = blockDim.x >> 5;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  std::int32_t* hist = smem;            // [W][G] per-warp counts, then per-warp start rows
  std::int32_t* total = hist + W * G;   // [G]
  std::int32_t* start = total + G;      // [G] group base + rows of earlier tiles
  std::int32_t* base = start + G;       // [G] padded group offsets
  std::int32_t* scratch = base + G;     // [40]: scan, invalid count
  std::int32_t* gpu_acc = scratch + 40; // [num_gpus]
  const std::int32_t tile = static_cast<std::int32_t>(blockDim.x) * routing_per_lane;
  const std::int32_t b = static_cast<std::int32_t>(blockIdx.x);

  Id v[routing_per_lane];
  std::int32_t key[routing_per_lane];
  float wt[routing_per_lane];
  routing_fetch<Id>(p, ids, weights, b * tile, v, wt);  // in flight while shared memory is cleared
  for (std::int32_t i = tid; i < W * G; i += blockDim.x) hist[i] = 0;
  for (std::int32_t i = tid; i < p.num_gpus; i += blockDim.x) gpu_acc[i] = 0;
  if (tid == 0) scratch[32] = 0;
  routing_keys<Id>(p, b * tile, v, key);
  __syncthreads();

  const std::uint32_t lt_mask = (1u << lane) - 1u;
  std::uint32_t peers[routing_per_lane];
  int invalid = 0;
#pragma unroll
  for (int u = 0; u < routing_per_lane; ++u) {
    peers[u] = __match_any_sync(0xffffffffu, key[u]);
    invalid += key[u] == -1;
    if (key[u] >= 0 && (peers[u] & lt_mask) == 0) hist[warp * G + key[u]] += __popc(peers[u]);
    __syncwarp();  // the next leader of a group may be another lane
  }
  if (tile_hist == nullptr && invalid) atomicAdd(&scratch[32], invalid);
  __syncthreads();

  // Per group: exclusive scan over this tile's warps, totals, rows of earlier tiles.
  for (std::int32_t g = tid; g < G; g += blockDim.x) {
    std::int32_t s = 0;
#pragma unroll 8
    for (int w = 0; w < W; ++w) {
      const std::int32_t c = hist[w * G + g];
      hist[w * G + g] = s;
      s += c;
    }
    std::int32_t tot = s, before = 0;
    if (tile_hist) {
      tot = 0;
#pragma unroll 8
      for (std::int32_t t = 0; t < num_tiles; ++t) {
        const std::int32_t c = tile_hist[static_cast<std::int64_t>(t) * (G + 1) + g];
        tot += c;
        before += t < b ? c : 0;
      }
    }
    total[g] = tot;
    start[g] = before;
  }
  if (tile_hist && b == 0 && tid < 32) {  // invalid ids over all tiles
    std::int32_t s = 0;
    for (std::int32_t t = lane; t < num_tiles; t += 32) s += tile_hist[static_cast<std::int64_t>(t) * (G + 1) + G];
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) s += __shfl_xor_sync(0xffffffffu, s, d);
    if (lane == 0) scratch[32] = s;
  }
  __syncthreads();
  // Padded group offsets: exclusive scan over groups.
  std::int32_t carry = 0;
  for (std::int32_t g0 = 0; g0 < G; g0 += blockDim.x) {
    const std::int32_t g = g0 + tid;
    const std::int32_t v = g < G ? (total[g] + p.tile_rows - 1) / p.tile_rows * p.tile_rows : 0;
    const std::int32_t excl = block_exclusive_scan(v, carry, scratch);
    if (g < G) {
      base[g] = excl;
      start[g] += excl;
    }
  }
  __syncthreads();

  if (b == 0) {
    if (tid == 0) {
      p.group_offsets[G] = carry;
      *p.num_invalid = scratch[32];
    }
    for (std::int32_t g = tid; g < G; g += blockDim.x) {
      const std::int32_t off = base[g], cnt = total[g];
      p.group_counts[g] = cnt;
      p.group_offsets[g] = off;
      const std::int32_t padded = (cnt + p.tile_rows - 1) / p.tile_rows * p.tile_rows;
      for (std::int32_t r = off + cnt; r < off + padded; ++r) {
        p.perm_to_src[r] = -1;
        if (p.perm_weights) p.perm_weights[r] = 0.0f;
      }
      if (p.num_slots > 0) atomicAdd(&gpu_acc[p.slot_gpu[g]], cnt);
    }
    for (std::int32_t r = carry + tid; r < p.capacity_rows; r += blockDim.x) {
      p.perm_to_src[r] = -1;
      if (p.perm_weights) p.perm_weights[r] = 0.0f;
    }
    if (p.num_slots > 0) {
      for (std::int32_t e = tid; e < p.num_experts; e += blockDim.x) {
        std::int32_t s = 0;
        for (std::int32_t r = 0; r < p.max_replicas; ++r) {
          const std::int32_t slot = p.log2phy[static_cast<std::int64_t>(e) * p.max_replicas + r];
          if (slot >= 0) s += total[slot];
        }
        p.expert_counts[e] = s;
      }
      __syncthreads();
      for (std::int32_t g = tid; g < p.num_gpus; g += blockDim.x) p.gpu_counts[g] = gpu_acc[g];
    } else {
      for (std::int32_t e = tid; e < p.num_experts; e += blockDim.x) p.expert_counts[e] = total[e];
    }
  }

  // Place: rows of group g for this warp start at start[g] + hist[warp][g].
  const std::int32_t first = b * tile + warp * 32 * routing_per_lane + lane;
#pragma unroll
  for (int u = 0; u < routing_per_lane; ++u) {
    const std::int32_t i = first + u * 32;
    const std::int32_t g = key[u];
    std::int32_t pos = -1;
    if (g >= 0) pos = start[g] + hist[warp * G + g] + __popc(peers[u] & lt_mask);
    __syncwarp();
    if (g >= 0 && (peers[u] & lt_mask) == 0) hist[warp * G + g] += __popc(peers[u]);
    __syncwarp();
    if (i < p.num_assignments) {
      p.src_to_perm[i] = pos;
      if (pos >= 0) {
        p.perm_to_src[pos] = i;
        if (p.perm_weights) p.perm_weights[pos] = wt[u];
      }
    }
  }
}

}  // namespace gem::cuda::detail
