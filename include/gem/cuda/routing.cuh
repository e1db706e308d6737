// gem/cuda/routing.cuh — routing layout on the GPU: from top-k expert ids [T, k] (int32 or int64)
// to per-group counts and (tile-padded) offsets, per-expert and per-GPU counts, and the two index
// maps between source order (t*k + j) and expert-major ("permuted") order. Groups are experts, or
// the physical slots of a placement (replica chosen by the placement's shares). Depends on the CUDA
// runtime, gem/cuda/status.cuh and (for the host tables) gem/placement.hpp.
//
// Host call sequence (setup once, then per step):
//   routing_config cfg{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 1};
//   // optional: a placement's slot map on the device
//   auto tables = make_placement_tables(plc, gem::layer_id{l});          // host, throws on bad input
//   cudaMalloc(&pbuf, placement_bytes(tables));
//   upload_placement(tables, pbuf, placement_bytes(tables), &cfg.placement);  // synchronous, setup
//   if (!can_implement(cfg)) ...;
//   cudaMalloc(&ws, routing_workspace_size(cfg));
//   routing_layout layout; bind_routing_layout(cfg, ws, routing_workspace_size(cfg), &layout);
//   // per step (graph-capturable; no allocation, no host synchronization):
//   routing_layout_async(cfg, d_ids, d_weights, layout, stream);
//   permute_async(...), expert FFN, combine_async(...)           // see permute.cuh, grouped_gemm.cuh
//   // when the host needs them: copy_group_sizes_async(layout, pinned, stream) and
//   // check_routing(layout, stream) (synchronizes; reports ids outside [0, E)).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gem/cuda/detail/routing_kernels.cuh"
#include "gem/cuda/status.cuh"
#include "gem/error.hpp"
#include "gem/ids.hpp"
#include "gem/placement.hpp"

namespace gem::cuda {

/// One layer of a placement on the device: which slot holds each replica of an expert, the
/// cumulative replica shares that choose among them, and which GPU holds each slot. A view over
/// memory the caller owns (filled by upload_placement); trivially copyable.
struct placement_view {
  std::int32_t num_slots = 0;                 ///< P; 0 means "no placement": groups are experts
  std::int32_t num_gpus = 0;                  ///< G
  std::int32_t max_replicas = 0;              ///< R, the row width of the two tables below
  const std::int32_t* log2phy = nullptr;      ///< [E][R] slot of replica r of expert e, -1 padded
  const float* cum_share = nullptr;           ///< [E][R] cumulative shares; a draw u picks the first r with u < cum
  const std::int32_t* slot_gpu = nullptr;     ///< [P] GPU holding slot p
};

/// What one routing layout call works on. An aggregate; check it with can_implement.
struct routing_config {
  std::int32_t num_tokens = 0;       ///< T: rows of the id matrix (the capacity: a step may pad with id -1)
  std::int32_t top_k = 0;            ///< k: ids per token
  std::int32_t num_experts = 0;      ///< E: ids in [0, E) are routed, others counted as invalid
  std::int32_t tile_rows = 1;        ///< each group's rows start at a multiple of this (GEMM tiles)
  placement_view placement{};        ///< when num_slots > 0, groups are slots; else experts

  /// Groups of the layout: slots with a placement, experts without.
  [[nodiscard]] constexpr std::int32_t num_groups() const noexcept {
    return placement.num_slots > 0 ? placement.num_slots : num_experts;
  }
  /// Rows the permuted buffers need: every assignment plus the worst-case padding.
  [[nodiscard]] constexpr std::int64_t capacity_rows() const noexcept {
    return static_cast<std::int64_t>(num_tokens) * top_k +
           static_cast<std::int64_t>(num_groups()) * (tile_rows - 1);
  }
};

/// The layout's outputs: device arrays inside the caller's workspace (see bind_routing_layout).
/// `group_counts` and `group_offsets` are adjacent (2G + 1 int32) so one copy brings both to the host.
struct routing_layout {
  std::int32_t num_groups = 0;
  std::int32_t num_experts = 0;
  std::int32_t num_gpus = 0;
  std::int32_t num_assignments = 0;         ///< T * k
  std::int32_t capacity_rows = 0;
  std::int32_t* group_counts = nullptr;     ///< [G] rows of each group
  std::int32_t* group_offsets = nullptr;    ///< [G+1] first permuted row of each group; [G] = rows used
  std::int32_t* expert_counts = nullptr;    ///< [E] routed assignments per expert
  std::int32_t* gpu_counts = nullptr;       ///< [num_gpus] with a placement, else nullptr
  std::int32_t* perm_to_src = nullptr;      ///< [capacity_rows] source index t*k+j, -1 for padding/unused
  std::int32_t* src_to_perm = nullptr;      ///< [T*k] permuted row, -1 for an id outside [0, E)
  float* perm_weights = nullptr;            ///< [capacity_rows] weight of each permuted row, 0 for padding
  std::int32_t* num_invalid = nullptr;      ///< [1] ids outside [0, E) in the last call
  std::int32_t* tile_counts = nullptr;      ///< scratch: per-tile group counts of large layouts
};

namespace detail {
constexpr std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) / a * a; }
/// Shared memory the layout kernel may use without raising its limit (48 KiB less static slack).
/// Sized so that 32 warps fit up to 352 groups (DeepSeek-V3's 256 experts, or 288 slots).
constexpr std::size_t routing_smem_budget = 46 * 1024;
/// Warps per block (each owns 32 * routing_per_lane consecutive assignments of the block's tile):
/// as many as shared memory allows for G groups, at most 32.
constexpr int routing_warps(std::int32_t groups, std::int32_t gpus) noexcept {
  const std::size_t fixed = (3 * static_cast<std::size_t>(groups) + 40 + static_cast<std::size_t>(gpus)) * 4;
  if (fixed >= routing_smem_budget) return 0;
  const auto w = (routing_smem_budget - fixed) / (static_cast<std::size_t>(groups) * 4);
  return static_cast<int>(std::min<std::size_t>(w, 32));
}
/// Warps per block for n assignments: no more than the tile needs (small inputs: one small block).
constexpr int routing_block_warps(std::int64_t n, std::int32_t groups, std::int32_t gpus) noexcept {
  const std::int64_t needed = (n + 32 * routing_per_lane - 1) / (32 * routing_per_lane);
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(routing_warps(groups, gpus), needed)));
}
/// Assignments per block (one tile) for n assignments.
constexpr std::int64_t routing_tile(std::int64_t n, std::int32_t groups, std::int32_t gpus) noexcept {
  return static_cast<std::int64_t>(routing_block_warps(n, groups, gpus)) * 32 * routing_per_lane;
}
}  // namespace detail

/// Whether routing_layout_async can run `cfg`: sizes positive, T*k and the padded capacity within
/// int32, tile_rows >= 1, the groups' histograms fit in shared memory (G up to ~11K), and a
/// placement's tables present.
[[nodiscard]] inline status can_implement(const routing_config& cfg) noexcept {
  const auto bad = status{status_code::invalid_argument, cudaSuccess, 0};
  if (cfg.num_tokens <= 0 || cfg.top_k <= 0 || cfg.num_experts <= 0 || cfg.tile_rows <= 0) return bad;
  if (static_cast<std::int64_t>(cfg.num_tokens) * cfg.top_k > INT32_MAX / 2) return bad;
  if (cfg.capacity_rows() > INT32_MAX / 2) return bad;
  const auto& pl = cfg.placement;
  if (pl.num_slots < 0) return bad;
  if (pl.num_slots > 0 &&
      (pl.num_gpus <= 0 || pl.max_replicas <= 0 || !pl.log2phy || !pl.cum_share || !pl.slot_gpu))
    return bad;
  if (detail::routing_warps(cfg.num_groups(), pl.num_slots > 0 ? pl.num_gpus : 0) < 1)
    return status{status_code::unsupported, cudaSuccess, 0};
  return {};
}

/// Bytes of device workspace that bind_routing_layout carves the layout's arrays from.
[[nodiscard]] inline std::size_t routing_workspace_size(const routing_config& cfg) noexcept {
  using detail::align_up;
  const auto G = static_cast<std::size_t>(cfg.num_groups());
  const auto E = static_cast<std::size_t>(cfg.num_experts);
  const auto gpus = static_cast<std::size_t>(cfg.placement.num_slots > 0 ? cfg.placement.num_gpus : 0);
  const auto cap = static_cast<std::size_t>(std::max<std::int64_t>(cfg.capacity_rows(), 0));
  const auto n = static_cast<std::size_t>(cfg.num_tokens) * static_cast<std::size_t>(cfg.top_k);
  const auto tile = static_cast<std::size_t>(
      std::max<std::int64_t>(detail::routing_tile(static_cast<std::int64_t>(n), cfg.num_groups(), static_cast<std::int32_t>(gpus)), 1));
  const auto tiles = (n + tile - 1) / tile;
  return align_up((2 * G + 1) * 4, 256) + align_up(E * 4, 256) + align_up(gpus * 4 + 4, 256) +
         2 * align_up(cap * 4, 256) + align_up(n * 4, 256) + align_up(tiles * (G + 1) * 4, 256) + 256;
}

/// Points `out`'s arrays into `workspace` (device memory of at least routing_workspace_size bytes,
/// 256-byte aligned). No device work; the arrays hold garbage until routing_layout_async runs.
[[nodiscard]] inline status bind_routing_layout(const routing_config& cfg, void* workspace, std::size_t bytes,
                                                routing_layout* out) noexcept {
  if (auto s = can_implement(cfg); !s) return s;
  if (!out || !workspace || reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0)
    return {status_code::invalid_argument, cudaSuccess, 0};
  if (bytes < routing_workspace_size(cfg)) return {status_code::workspace_too_small, cudaSuccess, 0};
  using detail::align_up;
  const auto G = static_cast<std::size_t>(cfg.num_groups());
  const auto E = static_cast<std::size_t>(cfg.num_experts);
  const bool has_pl = cfg.placement.num_slots > 0;
  const auto gpus = static_cast<std::size_t>(has_pl ? cfg.placement.num_gpus : 0);
  const auto cap = static_cast<std::size_t>(cfg.capacity_rows());
  const auto n = static_cast<std::size_t>(cfg.num_tokens) * static_cast<std::size_t>(cfg.top_k);
  auto* p = static_cast<char*>(workspace);
  routing_layout l{};
  l.num_groups = static_cast<std::int32_t>(G);
  l.num_experts = cfg.num_experts;
  l.num_gpus = static_cast<std::int32_t>(gpus);
  l.num_assignments = static_cast<std::int32_t>(n);
  l.capacity_rows = static_cast<std::int32_t>(cap);
  l.group_counts = reinterpret_cast<std::int32_t*>(p);
  l.group_offsets = l.group_counts + G;
  p += align_up((2 * G + 1) * 4, 256);
  l.expert_counts = reinterpret_cast<std::int32_t*>(p);
  p += align_up(E * 4, 256);
  l.num_invalid = reinterpret_cast<std::int32_t*>(p);
  l.gpu_counts = has_pl ? l.num_invalid + 1 : nullptr;
  p += align_up(gpus * 4 + 4, 256);
  l.perm_to_src = reinterpret_cast<std::int32_t*>(p);
  p += align_up(cap * 4, 256);
  l.perm_weights = reinterpret_cast<float*>(p);
  p += align_up(cap * 4, 256);
  l.src_to_perm = reinterpret_cast<std::int32_t*>(p);
  p += align_up(n * 4, 256);
  l.tile_counts = reinterpret_cast<std::int32_t*>(p);
  *out = l;
  return {};
}

namespace detail {
template <class Id>
[[nodiscard]] inline status routing_layout_launch(const routing_config& cfg, const Id* ids, const float* weights,
                                                  const routing_layout& layout, cudaStream_t stream) noexcept {
  if (auto s = can_implement(cfg); !s) return s;
  if (!ids || !layout.group_counts || layout.num_groups != cfg.num_groups() ||
      layout.num_assignments != cfg.num_tokens * cfg.top_k || layout.capacity_rows != cfg.capacity_rows())
    return {status_code::invalid_argument, cudaSuccess, 0};
  const auto& pl = cfg.placement;
  const std::int32_t gpus = pl.num_slots > 0 ? pl.num_gpus : 0;
  routing_params p{};
  p.num_assignments = cfg.num_tokens * cfg.top_k;
  p.top_k = cfg.top_k;
  p.num_experts = cfg.num_experts;
  p.num_groups = cfg.num_groups();
  p.tile_rows = cfg.tile_rows;
  p.capacity_rows = layout.capacity_rows;
  p.num_slots = pl.num_slots;
  p.num_gpus = gpus;
  p.max_replicas = pl.max_replicas;
  p.log2phy = pl.log2phy;
  p.cum_share = pl.cum_share;
  p.slot_gpu = pl.slot_gpu;
  p.group_counts = layout.group_counts;
  p.group_offsets = layout.group_offsets;
  p.expert_counts = layout.expert_counts;
  p.gpu_counts = layout.gpu_counts;
  p.perm_to_src = layout.perm_to_src;
  p.src_to_perm = layout.src_to_perm;
  p.perm_weights = layout.perm_weights;
  p.num_invalid = layout.num_invalid;
  const int warps = routing_block_warps(p.num_assignments, p.num_groups, gpus);
  const auto tile = routing_tile(p.num_assignments, p.num_groups, gpus);
  const auto tiles = static_cast<std::int32_t>((p.num_assignments + tile - 1) / tile);
  const std::size_t smem = (static_cast<std::size_t>(warps + 3) * p.num_groups + 40 + static_cast<std::size_t>(gpus)) * 4;
  const dim3 grid(static_cast<unsigned>(tiles)), block(static_cast<unsigned>(warps * 32));
  if (tiles > 1) {
    const auto e = launch_pdl(routing_count_kernel<Id>, grid, block, (static_cast<std::size_t>(p.num_groups) + 1) * 4,
                              stream, p, ids, layout.tile_counts);
    if (auto s = from_cuda(e != cudaSuccess ? e : cudaGetLastError()); !s) return s;
  }
  const auto e = launch_pdl(routing_place_kernel<Id>, grid, block, smem, stream, p, ids, weights,
                            tiles > 1 ? layout.tile_counts : nullptr, tiles);
  return from_cuda(e != cudaSuccess ? e : cudaGetLastError());
}
}  // namespace detail

/// Enqueues the routing layout of `ids` ([T][k] int32, device) on `stream` and returns before it
/// finishes. `weights` ([T][k] float, device) may be null: permuted weights are then 1. Ids outside
/// [0, E) are counted into layout.num_invalid and get src_to_perm = -1; they never address memory.
/// Within a group, rows keep source order. The status reports launch problems only; read the
/// invalid-id count with check_routing.
[[nodiscard]] inline status routing_layout_async(const routing_config& cfg, const std::int32_t* ids,
                                                 const float* weights, const routing_layout& layout,
                                                 cudaStream_t stream) noexcept {
  return detail::routing_layout_launch(cfg, ids, weights, layout, stream);
}
/// As above, for int64 ids (values beyond int32 are out of range like any other).
[[nodiscard]] inline status routing_layout_async(const routing_config& cfg, const std::int64_t* ids,
                                                 const float* weights, const routing_layout& layout,
                                                 cudaStream_t stream) noexcept {
  return detail::routing_layout_launch(cfg, ids, weights, layout, stream);
}

/// Enqueues a copy of group_counts then group_offsets (2G + 1 int32) into `host` (pinned memory
/// for a truly asynchronous copy) on `stream`; the host paths of grouped_gemm read them.
[[nodiscard]] inline status copy_group_sizes_async(const routing_layout& layout, std::int32_t* host,
                                                   cudaStream_t stream) noexcept {
  if (!host || !layout.group_counts) return {status_code::invalid_argument, cudaSuccess, 0};
  return from_cuda(cudaMemcpyAsync(host, layout.group_counts,
                                   (2 * static_cast<std::size_t>(layout.num_groups) + 1) * sizeof(std::int32_t),
                                   cudaMemcpyDeviceToHost, stream));
}

/// Waits for `stream` and reports the last layout's invalid ids: ids_out_of_range with the count in
/// `detail`, or success. Synchronizes: call it off the hot path (or once per step, when needed).
[[nodiscard]] inline status check_routing(const routing_layout& layout, cudaStream_t stream) noexcept {
  if (!layout.num_invalid) return {status_code::invalid_argument, cudaSuccess, 0};
  std::int32_t n = 0;
  if (auto e = cudaMemcpyAsync(&n, layout.num_invalid, sizeof n, cudaMemcpyDeviceToHost, stream); e != cudaSuccess)
    return from_cuda(e);
  if (auto e = cudaStreamSynchronize(stream); e != cudaSuccess) return from_cuda(e);
  if (n != 0) return {status_code::ids_out_of_range, cudaSuccess, n};
  return {};
}

// ---- placement tables (host, setup) ----------------------------------------------------------

/// A placement layer flattened for the device: log2phy [E][R] in replica-rank order, cumulative
/// shares [E][R] as float (the last replica's entry is 2, so every draw in [0, 1) lands), slot_gpu.
struct placement_tables {
  std::int32_t num_experts = 0;
  std::int32_t num_slots = 0;
  std::int32_t num_gpus = 0;
  std::int32_t max_replicas = 0;
  std::vector<std::int32_t> log2phy{};
  std::vector<float> cum_share{};
  std::vector<std::int32_t> slot_gpu{};
};

/// The tables of layer `l` of `plc`. Throws gem::placement_error (via placement) for a bad layer id.
[[nodiscard]] inline placement_tables make_placement_tables(const gem::placement& plc, gem::layer_id l) {
  if (l.value < 0 || l.value >= plc.num_layers())
    throw gem::placement_error("make_placement_tables: layer " + std::to_string(l.value) + " outside [0, " +
                               std::to_string(plc.num_layers()) + ")");
  const auto& lp = plc.layer(l);
  placement_tables t;
  t.num_experts = plc.num_experts();
  t.num_slots = static_cast<std::int32_t>(lp.phy2log.size());
  t.num_gpus = plc.num_gpus();
  const auto cnt = plc.logcnt(l);
  t.max_replicas = *std::max_element(cnt.begin(), cnt.end());
  t.log2phy = plc.log2phy(l, t.max_replicas);
  t.cum_share.assign(t.log2phy.size(), 2.0f);
  for (std::int32_t e = 0; e < t.num_experts; ++e) {
    const auto row = static_cast<std::size_t>(e) * t.max_replicas;
    // The last replica with a positive share takes every draw past the float rounding of the sum.
    std::int32_t last = 0;
    for (std::int32_t r = 0; r < cnt[e]; ++r)
      if (lp.share[t.log2phy[row + r]] > 0.0) last = r;
    double c = 0.0;
    for (std::int32_t r = 0; r < cnt[e]; ++r) {
      c += lp.share[t.log2phy[row + r]];
      t.cum_share[row + r] = r >= last ? 2.0f : static_cast<float>(c);
    }
  }
  t.slot_gpu = lp.slot_gpu;
  return t;
}

/// Device bytes upload_placement needs for `t`.
[[nodiscard]] inline std::size_t placement_bytes(const placement_tables& t) noexcept {
  return detail::align_up(t.log2phy.size() * 4, 256) + detail::align_up(t.cum_share.size() * 4, 256) +
         detail::align_up(t.slot_gpu.size() * 4, 256);
}

/// Copies `t` into `device_buffer` (256-byte aligned, placement_bytes(t) bytes) and points `out`
/// at it. Synchronous (setup path, not the hot path).
[[nodiscard]] inline status upload_placement(const placement_tables& t, void* device_buffer, std::size_t bytes,
                                             placement_view* out) noexcept {
  if (!out || !device_buffer || t.num_slots <= 0 || reinterpret_cast<std::uintptr_t>(device_buffer) % 256 != 0)
    return {status_code::invalid_argument, cudaSuccess, 0};
  if (bytes < placement_bytes(t)) return {status_code::workspace_too_small, cudaSuccess, 0};
  auto* p = static_cast<char*>(device_buffer);
  auto* d_l2p = reinterpret_cast<std::int32_t*>(p);
  p += detail::align_up(t.log2phy.size() * 4, 256);
  auto* d_cum = reinterpret_cast<float*>(p);
  p += detail::align_up(t.cum_share.size() * 4, 256);
  auto* d_gpu = reinterpret_cast<std::int32_t*>(p);
  if (auto e = cudaMemcpy(d_l2p, t.log2phy.data(), t.log2phy.size() * 4, cudaMemcpyHostToDevice); e != cudaSuccess)
    return from_cuda(e);
  if (auto e = cudaMemcpy(d_cum, t.cum_share.data(), t.cum_share.size() * 4, cudaMemcpyHostToDevice); e != cudaSuccess)
    return from_cuda(e);
  if (auto e = cudaMemcpy(d_gpu, t.slot_gpu.data(), t.slot_gpu.size() * 4, cudaMemcpyHostToDevice); e != cudaSuccess)
    return from_cuda(e);
  *out = placement_view{.num_slots = t.num_slots, .num_gpus = t.num_gpus, .max_replicas = t.max_replicas,
                        .log2phy = d_l2p, .cum_share = d_cum, .slot_gpu = d_gpu};
  return {};
}

}  // namespace gem::cuda
