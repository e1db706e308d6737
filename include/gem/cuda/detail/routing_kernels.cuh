// gem/cuda/detail/routing_kernels.cuh — the kernel behind routing_layout_async: a one-block stable
// counting sort of top-k assignments into groups (experts, or placement slots). Depends on the CUDA
// runtime; included by gem/cuda/routing.cuh only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

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
  std::int32_t num_warps;  // warps that own a chunk each (<= 32)
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

/// Assignments a warp loads ahead of use, so that their loads overlap.
constexpr int routing_batch = 8;

/// One block of 1024 threads. Warp w owns the contiguous chunk [w*chunk, (w+1)*chunk) of the
/// assignments. Pass 1 counts each chunk per group into the warp's shared-memory histogram; pass 2
/// scans (group-major, then warp) into start rows and writes counts, offsets, padding markers;
/// pass 3 walks each chunk again in order and places assignments, so order within a group is
/// source order (stable).
template <class Id>
__global__ void __launch_bounds__(1024) routing_layout_kernel(routing_params p, const Id* __restrict__ ids,
                                                              const float* __restrict__ weights) {
  extern __shared__ std::int32_t smem[];
  const std::int32_t G = p.num_groups;
  std::int32_t* hist = smem;                                    // [num_warps][G]
  std::int32_t* base = smem + p.num_warps * G;                  // [G] padded start of each group
  std::int32_t* scratch = base + G;                             // [33] scan carry, invalid count
  std::int32_t* gpu_acc = scratch + 40;                         // [num_gpus]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int nthreads = blockDim.x;

  for (int i = tid; i < p.num_warps * G; i += nthreads) hist[i] = 0;
  for (int i = tid; i < p.num_gpus; i += nthreads) gpu_acc[i] = 0;
  if (tid == 0) scratch[32] = 0;
  __syncthreads();

  const std::int32_t n = p.num_assignments;
  const std::int32_t chunk = ((n + p.num_warps - 1) / p.num_warps + 31) & ~31;
  const std::int32_t begin = warp * chunk;
  const std::int32_t end = min(n, begin + chunk);
  const std::uint32_t lt_mask = (1u << lane) - 1u;

  // Pass 1: per-warp histograms.
  if (warp < p.num_warps) {
    int invalid = 0;
    for (std::int32_t b = begin; b < end; b += 32 * routing_batch) {
      Id v[routing_batch];
#pragma unroll
      for (int u = 0; u < routing_batch; ++u) {
        const std::int32_t i = b + u * 32 + lane;
        v[u] = i < end ? ids[i] : Id{0};
      }
#pragma unroll
      for (int u = 0; u < routing_batch; ++u) {
        const std::int32_t i = b + u * 32 + lane;
        if (b + u * 32 >= end) break;
        const std::int32_t g = i < end ? routing_group(p, i, v[u]) : -2;
        invalid += g == -1;
        const std::uint32_t peers = __match_any_sync(0xffffffffu, g);
        if (g >= 0 && (peers & lt_mask) == 0) hist[warp * G + g] += __popc(peers);
        __syncwarp();  // the next leader of g may be another lane
      }
    }
    if (invalid) atomicAdd(&scratch[32], invalid);
  }
  __syncthreads();

  // Pass 2a: per group, exclusive scan over warps; total count; padded size.
  for (std::int32_t g = tid; g < G; g += nthreads) {
    std::int32_t s = 0;
    for (int w = 0; w < p.num_warps; ++w) {
      const std::int32_t c = hist[w * G + g];
      hist[w * G + g] = s;
      s += c;
    }
    p.group_counts[g] = s;
    base[g] = (s + p.tile_rows - 1) / p.tile_rows * p.tile_rows;
    if (p.num_slots > 0) atomicAdd(&gpu_acc[p.slot_gpu[g]], s);
  }
  __syncthreads();
  // Pass 2b: exclusive scan of the padded sizes over groups (block scan, chunks of nthreads).
  std::int32_t carry = 0;
  for (std::int32_t g0 = 0; g0 < G; g0 += nthreads) {
    const std::int32_t g = g0 + tid;
    const std::int32_t v = g < G ? base[g] : 0;
    std::int32_t x = v;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const std::int32_t y = __shfl_up_sync(0xffffffffu, x, d);
      if (lane >= d) x += y;
    }
    if (lane == 31) scratch[warp] = x;
    __syncthreads();
    if (warp == 0) {
      const int nw = nthreads >> 5;
      std::int32_t w = lane < nw ? scratch[lane] : 0;
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        const std::int32_t y = __shfl_up_sync(0xffffffffu, w, d);
        if (lane >= d) w += y;
      }
      if (lane < nw) scratch[lane] = w;  // inclusive prefix of warp totals
    }
    __syncthreads();
    const std::int32_t excl = carry + (warp > 0 ? scratch[warp - 1] : 0) + x - v;
    if (g < G) base[g] = excl;
    carry += scratch[(nthreads >> 5) - 1];
    __syncthreads();
  }
  if (tid == 0) p.group_offsets[G] = carry;
  for (std::int32_t g = tid; g < G; g += nthreads) {
    const std::int32_t off = base[g];
    const std::int32_t cnt = p.group_counts[g];
    p.group_offsets[g] = off;
    for (int w = 0; w < p.num_warps; ++w) hist[w * G + g] += off;
    const std::int32_t padded = (cnt + p.tile_rows - 1) / p.tile_rows * p.tile_rows;
    for (std::int32_t r = off + cnt; r < off + padded; ++r) {
      p.perm_to_src[r] = -1;
      if (p.perm_weights) p.perm_weights[r] = 0.0f;
    }
  }
  for (std::int32_t r = carry + tid; r < p.capacity_rows; r += nthreads) {
    p.perm_to_src[r] = -1;
    if (p.perm_weights) p.perm_weights[r] = 0.0f;
  }
  if (p.num_slots > 0) {
    for (std::int32_t g = tid; g < p.num_gpus; g += nthreads) p.gpu_counts[g] = gpu_acc[g];
    for (std::int32_t e = tid; e < p.num_experts; e += nthreads) {
      std::int32_t s = 0;
      for (std::int32_t r = 0; r < p.max_replicas; ++r) {
        const std::int32_t slot = p.log2phy[static_cast<std::int64_t>(e) * p.max_replicas + r];
        if (slot >= 0) s += p.group_counts[slot];
      }
      p.expert_counts[e] = s;
    }
  } else {
    for (std::int32_t e = tid; e < p.num_experts; e += nthreads) p.expert_counts[e] = p.group_counts[e];
  }
  if (tid == 0) *p.num_invalid = scratch[32];
  __syncthreads();

  // Pass 3: place assignments in source order.
  if (warp < p.num_warps) {
    for (std::int32_t b = begin; b < end; b += 32 * routing_batch) {
      Id v[routing_batch];
#pragma unroll
      for (int u = 0; u < routing_batch; ++u) {
        const std::int32_t i = b + u * 32 + lane;
        v[u] = i < end ? ids[i] : Id{0};
      }
#pragma unroll
      for (int u = 0; u < routing_batch; ++u) {
        const std::int32_t i = b + u * 32 + lane;
        if (b + u * 32 >= end) break;
        const std::int32_t g = i < end ? routing_group(p, i, v[u]) : -2;
        const std::uint32_t peers = __match_any_sync(0xffffffffu, g);
        std::int32_t pos = -1;
        if (g >= 0) pos = hist[warp * G + g] + __popc(peers & lt_mask);
        __syncwarp();
        if (g >= 0 && (peers & lt_mask) == 0) hist[warp * G + g] += __popc(peers);
        __syncwarp();
        if (i < end) {
          p.src_to_perm[i] = pos;
          if (pos >= 0) {
            p.perm_to_src[pos] = i;
            if (p.perm_weights) p.perm_weights[pos] = weights ? weights[i] : 1.0f;
          }
        }
      }
    }
  }
}

}  // namespace gem::cuda::detail
