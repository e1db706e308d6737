// gem/cuda/grouped_gemm.cuh — grouped expert GEMM y_g = x_g · w_g^T (bf16 in, fp32 accumulate,
// bf16 out) over the groups of a routing layout, with variable rows per group, and the fused expert
// FFN (gate/up, SiLU·mul, down) on top. Paths: a per-group cublasGemmEx loop, one
// cublasGemmGroupedBatchedEx call, and gem's own memory-bound kernel for few rows per group whose
// counts stay on the device (graph-capturable). Depends on the CUDA runtime, cuBLAS, cuda_bf16.h and
// gem/cuda/status.cuh.
//
// Host call sequence (setup once, then per step):
//   cublas_workers workers(3);  auto ctx = workers.context();   // setup: handle + 3 side streams
//   grouped_gemm_problem p{.num_groups = G, .n = N, .k = K, .capacity_rows = layout.capacity_rows,
//                          .x = d_xp, .w = d_w, .y = d_yp, .counts = layout.group_counts,
//                          .offsets = layout.group_offsets, .rows_hint = max rows you expect per group};
//   if (!can_implement(p, path)) ...;  cudaMalloc(&ws, grouped_gemm_workspace_size(p, path));
//   // per step, graph-capturable (counts stay on the device):
//   grouped_gemm_async(p, gemm_path::device_counts, {}, ctx, ws, bytes, stream);
//   // or, with the group sizes on the host (copy_group_sizes_async + stream sync), by regime:
//   grouped_gemm_async(p, gemm_path::automatic, host_group_sizes{counts, offsets}, ctx, ws, bytes, stream);
// expert_ffn_async takes the same steps for x -> silu(x·w1^T) * (x·w3^T) -> ·w2^T.
// Prefill: route with routing_config::tile_rows = 32 (about 1K tokens) or 128 (about 8K tokens) so
// that automatic can take the bucketed path (one batched cuBLAS call per distinct padded size);
// decode and small batches (up to 32 rows per group, e.g. T <= 128 with 64+ experts): device_counts,
// inside a captured graph if you like (automatic takes it up to 16 rows; see the regime notes).
// Prefill on an unpadded layout: gemm_path::chunked (automatic does not take it; see the notes).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gem/error.hpp"

#include "gem/cuda/detail/gemm_kernels.cuh"
#include "gem/cuda/status.cuh"

namespace gem::cuda {

using bf16 = __nv_bfloat16;

/// A status from a cuBLAS result (the cuBLAS status in `detail`).
[[nodiscard]] inline status from_cublas(cublasStatus_t s) noexcept {
  return s == CUBLAS_STATUS_SUCCESS ? status{} : status{status_code::cublas_failure, cudaSuccess, static_cast<std::int64_t>(s)};
}

/// How grouped_gemm_async computes.
enum class gemm_path : std::int32_t {
  automatic,       ///< by regime from the host group sizes (device_counts when none are given)
  device_counts,   ///< gem's kernel; counts read on the device; graph-capturable; best for few rows
  per_group,       ///< one cublasGemmEx per active group (a lone large expert, or a few large ones)
  grouped,         ///< one cublasGemmGroupedBatchedEx call over the active groups (many mid-size groups)
  bucketed,        ///< one cublasGemmBatchedEx per distinct room (offsets[g+1] - offsets[g]): prefill on a
                   ///< tile-padded layout; computes every row of a group's room (padding rows too)
  chunked,         ///< groups cut into chunks of 128 rows (smaller groups: of a power of two), one
                   ///< cublasGemmBatchedEx per chunk size: prefill on an unpadded layout; a group's last
                   ///< chunk ends at its last row and may overlap the one before (rows computed twice)
};

/// Name of a path, for messages and benchmark labels.
[[nodiscard]] inline const char* to_string(gemm_path p) noexcept {
  switch (p) {
    case gemm_path::automatic: return "automatic";
    case gemm_path::device_counts: return "device_counts";
    case gemm_path::per_group: return "per_group";
    case gemm_path::grouped: return "grouped";
    case gemm_path::bucketed: return "bucketed";
    case gemm_path::chunked: return "chunked";
  }
  return "unknown";
}

/// One grouped GEMM: for each group g with rows [offsets[g], offsets[g] + counts[g]) of x,
/// y rows = x rows · w_g^T. Row-major everything; w is [G][n][k]. An aggregate.
struct grouped_gemm_problem {
  std::int32_t num_groups = 0;     ///< G
  std::int32_t n = 0;              ///< output columns = rows of each w_g
  std::int32_t k = 0;              ///< inner size = columns of x and of w_g
  std::int32_t capacity_rows = 0;  ///< rows of x and y (e.g. routing_layout::capacity_rows)
  const bf16* x = nullptr;         ///< [capacity_rows][k]
  const bf16* w = nullptr;         ///< [G][n][k]
  bf16* y = nullptr;               ///< [capacity_rows][n]; rows outside every group are not written
                                   ///< (bucketed: rows inside an active group's room are)
  const std::int32_t* counts = nullptr;   ///< device [G]
  const std::int32_t* offsets = nullptr;  ///< device [G+1]
  std::int32_t rows_hint = 8;      ///< device path without host sizes: rows per group expected (> 8: 16- or
                                   ///< 32-row passes, gemv_row_tiles; more rows still work, with more passes)
  std::int32_t max_active_groups = 0;  ///< device path: at most this many groups have rows (0: G); e.g. T*k
};

/// Group sizes on the host (what copy_group_sizes_async brings back): counts [G], offsets [G+1].
struct host_group_sizes {
  std::span<const std::int32_t> counts{};
  std::span<const std::int32_t> offsets{};
  [[nodiscard]] bool empty() const noexcept { return counts.empty(); }
};

/// cuBLAS resources the host paths use: `handle` runs on the call's stream; optional side streams
/// (each with its own handle, so split-K workspaces never race) let per_group run several groups'
/// GEMMs at once, forked from and joined back into the call's stream with `events` (one per side
/// stream plus one). Setup resources: create them once (cublas_workers does), never per call.
struct cublas_context {
  cublasHandle_t handle = nullptr;
  std::span<const cudaStream_t> side_streams{};
  std::span<const cublasHandle_t> side_handles{};
  std::span<const cudaEvent_t> events{};
  [[nodiscard]] bool fans_out() const noexcept {
    return !side_streams.empty() && side_handles.size() == side_streams.size() &&
           events.size() == side_streams.size() + 1;
  }
};

/// Owns a cuBLAS handle plus `side` streams, handles and events for cublas_context (setup; throws
/// gem::cuda_error when CUDA or cuBLAS refuses).
class cublas_workers {
 public:
  explicit cublas_workers(int side = 3) {
    try {
      create(side);
    } catch (...) {
      release();
      throw;
    }
  }
  cublas_workers(const cublas_workers&) = delete;
  cublas_workers& operator=(const cublas_workers&) = delete;
  ~cublas_workers() { release(); }
  [[nodiscard]] cublas_context context() const noexcept { return {handle_, streams_, handles_, events_}; }

 private:
  void create(int side) {
    if (cublasCreate(&handle_) != CUBLAS_STATUS_SUCCESS) throw gem::cuda_error("cublas_workers: cublasCreate failed");
    for (int i = 0; i < side; ++i) {
      cudaStream_t s{};
      cublasHandle_t h{};
      if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess)
        throw gem::cuda_error("cublas_workers: cudaStreamCreate failed");
      streams_.push_back(s);
      if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) throw gem::cuda_error("cublas_workers: cublasCreate failed");
      handles_.push_back(h);
    }
    for (int i = 0; i <= side; ++i) {
      cudaEvent_t e{};
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess)
        throw gem::cuda_error("cublas_workers: cudaEventCreate failed");
      events_.push_back(e);
    }
  }
  void release() noexcept {
    for (auto e : events_) (void)cudaEventDestroy(e);
    for (auto h : handles_) (void)cublasDestroy(h);
    for (auto s : streams_) (void)cudaStreamDestroy(s);
    if (handle_) (void)cublasDestroy(handle_);
    events_.clear();
    handles_.clear();
    streams_.clear();
    handle_ = nullptr;
  }
  cublasHandle_t handle_ = nullptr;
  std::vector<cudaStream_t> streams_;
  std::vector<cublasHandle_t> handles_;
  std::vector<cudaEvent_t> events_;
};

// Regime boundaries for gemm_path::automatic, from bench/cuda/grouped_gemm_bench.cu on the H200
// (2026-11-29, bench/RESULTS.md): the device kernel streams weights at >= 100% of copy bandwidth
// up to 8 rows per group and wins up to 16 (DeepSeek-V3 T=128: 3.46 ms vs 3.55 ms grouped cuBLAS).
// With 32-row passes it also wins at 17-32 rows when called as gemm_path::device_counts (T=128,
// means of 8-16 rows: OLMoE 132 vs 143 us, DS-V2-Lite 187 vs 201, Qwen3 194 vs 208: 1.07-1.17x),
// but automatic keeps cuBLAS there: the profiler and the MoE layer (examples/moe_layer) run
// automatic, and a path that flips with the step's sizes is a cost no per-expert table follows
// (256-token steps on 40/32/32/24-SM partitions, means of ~24 rows: prediction error 8-9% median
// against 2-5%, and gem's gain over eplb shrank from 0.889x to 0.913x). A hybrid call (device
// kernel for the small groups, cuBLAS for the large, in one step) was tried in session 4 and lost:
// DeepSeek-V3 T=1024 unpadded 0.96 / 0.93x the grouped call, and the MoE layer's 256-token steps ran
// slower still (gem-extended 0.964x eplb concurrent; bench/cuda/NOTES.md). Session 5 tried again
// with two rules in automatic (the device kernel up to 32 rows at a mean of <= 16, and the chunked
// path from a mean of 48 rows): each wins where the benchmark measures it, but in the MoE layer the
// prediction error rose to 7-11% median and gem-extended fell to 0.926x / 0.939x eplb (concurrent,
// 256 / 1024 tokens) against 0.88-0.90x, so automatic stays as it was and chunked is asked for by
// name (bench/RESULTS.md, session 5).
// cublasGemmGroupedBatchedEx wins at 16-128 rows per active group (Qwen3 T=1024: 0.30 ms vs 1.5 ms
// per-group loop) and loses 1.7-2.3x to the per-group loop from ~256 rows (Mixtral T=1024 down:
// 1.07 ms vs 0.46 ms; DeepSeek-V3 T=8192: 15.2 ms vs 8.2 ms), where each group's GEMM outlasts the
// host's ~8-14 us per cublasGemmEx: from a mean of 1.2e9 multiply-adds per group (rows x n x k).
// Below it the loop is host-bound: Qwen3 T=8192 down (128 groups of 512 x 2048 x 768 = 0.8e9) took
// 1.03-1.81 ms on the loop against 0.79-0.81 ms for the grouped call; OLMoE down (2.1e9) 0.56-0.77 ms
// against 0.98-1.03 ms (H200, sessions 3 and 4).
// gemm_path::chunked, for prefill on an unpadded layout (H200, session 5): at T=8192 it beats the
// per-group loop, the grouped call and torch._grouped_mm for the mid-size experts (Qwen3 gate/up /
// down 662-679 / 363-374 us against 712 / 422 for torch; OLMoE 827 / 427, torch 847 / 472; DS-V2-Lite
// 864-890 / 447-454, torch 905 / 491) and is within 1-3% of the per-group loop for DeepSeek-V3; at
// T=1024 (means of 64-128 rows) 1.0-1.4x the grouped call but 0.90-0.98x torch for DS-V2-Lite and
// Qwen3 gate/up (a group of 65-127 rows takes two 64-row chunks). Not for means of ~32 rows
// (DeepSeek-V3 T=1024: 5.04 / 2.44 ms against 3.89 / 2.07 grouped: its chunks multiply weight reads)
// nor for a few huge experts (Mixtral T=8192 gate/up 6.97 ms against 5.46 per group).
constexpr std::int32_t device_path_max_rows = 16;
constexpr std::int32_t per_group_min_mean_rows = 192;
constexpr double per_group_min_group_macs = 1.2e9;
// A few large experts past the device path (Mixtral T=128: 8 groups of 32-45 rows, 117-235 MB of
// weights each): one cublasGemmEx per group over 4 streams, 450 / 245 us against 509 / 256 us for
// the grouped call (gate/up, down). Host cost ~8 us per call, so only for few groups whose GEMM
// streams much longer than that (DeepSeek-V3 down, 29 MB a group: per-group 1.2x slower).
constexpr std::int32_t per_group_max_few_groups = 16;
constexpr double per_group_min_group_bytes = 48.0 * (1 << 20);
// Bucketed batched cuBLAS (one cublasGemmBatchedEx per distinct room) on tile-padded layouts: from
// 16 active groups, when rooms repeat (>= 4 groups per distinct room), at >= 32 rows per group and
// <= 1.5x padding. H200, 2026-11-29: T=8192 on 128-padded layouts 541-686 TFLOP/s (DeepSeek-V3,
// Qwen3, OLMoE, DS-V2-Lite; per-group loop 1.2-3.5x slower: ~8 us of host time per cublasGemmEx);
// T=1024 on 32-padded layouts 1.06-1.6x cublasGemmGroupedBatchedEx (Qwen3, OLMoE, DS-V2-Lite,
// DeepSeek-V3 gate/up) and on par at 32 rows (DeepSeek-V3 down); 128-padding at 64 rows (2x
// padding) measured no better than grouped. Each distinct room is one cuBLAS call (~8 us of host
// time), so at most bucketed_max_rooms of them: on an unpadded layout (Qwen3 T=1024, 128 groups of
// ~64 rows, ~30 distinct counts) the rule without that cap took 435-460 / 372-407 us against
// 274-303 / 165-172 us for the grouped call (gate/up, down; H200, session 3 and session 4).
constexpr std::int32_t bucketed_min_groups = 16;
constexpr std::int32_t bucketed_groups_per_room = 4;
constexpr std::int32_t bucketed_max_rooms = 8;
constexpr std::int32_t bucketed_min_mean_rows = 32;
constexpr double bucketed_max_padding = 1.5;
/// cuBLAS grouped call: host arrays live on the stack, so the active groups are capped.
constexpr std::int32_t max_cublas_groups = 1024;

namespace detail {
inline status bad_argument() noexcept { return {status_code::invalid_argument, cudaSuccess, 0}; }
inline std::int32_t max_rows(const host_group_sizes& s) noexcept {
  std::int32_t most = 0;
  for (const auto c : s.counts) most = std::max(most, c);
  return most;
}
inline std::size_t align256(std::size_t v) noexcept { return (v + 255) / 256 * 256; }
}  // namespace detail

/// The path automatic picks for `sizes` (device_counts when empty).
[[nodiscard]] inline gemm_path choose_gemm_path(const grouped_gemm_problem& p, const host_group_sizes& sizes) noexcept {
  if (sizes.empty()) return gemm_path::device_counts;
  std::int32_t max_rows = 0, active = 0;
  std::int64_t rows = 0;
  for (const auto c : sizes.counts) {
    if (c <= 0) continue;
    ++active;
    rows += c;
    max_rows = std::max(max_rows, c);
  }
  if (active == 0 || max_rows <= device_path_max_rows) return gemm_path::device_counts;
  if (active > max_cublas_groups) return gemm_path::per_group;
  const double mean_rows = static_cast<double>(rows) / active;
  const bool many_rows = mean_rows >= per_group_min_mean_rows &&
                         mean_rows * static_cast<double>(p.n) * static_cast<double>(p.k) >= per_group_min_group_macs;
  if (active >= bucketed_min_groups && rows >= static_cast<std::int64_t>(bucketed_min_mean_rows) * active) {
    std::array<std::int32_t, max_cublas_groups> rooms{};
    std::int32_t n = 0;
    std::int64_t room_rows = 0;
    for (std::size_t g = 0; g < sizes.counts.size(); ++g)
      if (sizes.counts[g] > 0) {
        const auto room = sizes.offsets[g + 1] - sizes.offsets[g];
        rooms[static_cast<std::size_t>(n++)] = room;
        room_rows += room;
      }
    std::sort(rooms.begin(), rooms.begin() + n);
    const auto distinct = std::unique(rooms.begin(), rooms.begin() + n) - rooms.begin();
    if (distinct <= bucketed_max_rooms && distinct * bucketed_groups_per_room <= active &&
        static_cast<double>(room_rows) <= bucketed_max_padding * static_cast<double>(rows))
      return gemm_path::bucketed;
  }
  const bool few_large = active <= per_group_max_few_groups &&
                         2.0 * static_cast<double>(p.n) * static_cast<double>(p.k) >= per_group_min_group_bytes;
  return many_rows || few_large ? gemm_path::per_group : gemm_path::grouped;
}

/// Whether `path` can run `p`: sizes positive; the device path needs n % 16 == 0, k % 32 == 0
/// (16-byte rows) and n * k < 2^31; pointers present and 16-byte aligned.
[[nodiscard]] inline status can_implement(const grouped_gemm_problem& p, gemm_path path) noexcept {
  const auto aligned = [](const void* q) { return q && reinterpret_cast<std::uintptr_t>(q) % 16 == 0; };
  if (p.num_groups <= 0 || p.n <= 0 || p.k <= 0 || p.capacity_rows < 0 || p.rows_hint < 0 ||
      p.max_active_groups < 0 || !aligned(p.x) || !aligned(p.w) || !aligned(p.y) || !p.counts || !p.offsets)
    return detail::bad_argument();
  if (p.num_groups > 65535) return {status_code::unsupported, cudaSuccess, 0};
  if ((path == gemm_path::bucketed || path == gemm_path::chunked) && p.num_groups > max_cublas_groups)
    return {status_code::unsupported, cudaSuccess, 0};
  if ((path == gemm_path::device_counts || path == gemm_path::automatic) &&
      (p.n % 16 != 0 || p.k % 32 != 0 || static_cast<std::int64_t>(p.n) * p.k > INT32_MAX))
    return {status_code::unsupported, cudaSuccess, 0};  // the kernel's offsets inside a group are 32-bit
  return {};
}

namespace detail {
/// The most chunks the chunked path cuts capacity_rows rows in num_groups groups into: a group of
/// n >= 128 rows takes at most n / 128 + 1, a smaller one at most 2.
inline std::size_t chunk_items_max(const grouped_gemm_problem& p) noexcept {
  return static_cast<std::size_t>(std::max(p.capacity_rows, 0)) / chunk_rows_max +
         2 * static_cast<std::size_t>(std::max(p.num_groups, 0));
}
}  // namespace detail

/// Device workspace bytes grouped_gemm_async needs for `path` (automatic: the most any path it takes
/// needs): three cuBLAS pointer arrays, one entry per group (per chunk on the chunked path).
[[nodiscard]] inline std::size_t grouped_gemm_workspace_size(const grouped_gemm_problem& p, gemm_path path) noexcept {
  if (path == gemm_path::device_counts || path == gemm_path::per_group) return 0;
  const auto groups = static_cast<std::size_t>(std::max(p.num_groups, 0));
  const std::size_t entries = path == gemm_path::chunked ? std::max(groups, detail::chunk_items_max(p)) : groups;
  return 3 * detail::align256(entries * sizeof(void*));
}

namespace detail {

/// Row tiles of 8 the device kernel keeps per pass for groups of up to `rows` rows: 1 (split K) up
/// to 8 rows, else 4 (one warp per column tile; more rows take more passes), except that the fused
/// SiLU·mul kernel (gated) keeps split-K 16-row passes (2) at 9-16 rows. H200, 2026-11-29
/// (bench/RESULTS.md): at 9-16 rows the 32-row pass beat split-K 16-row passes by 2-7% on plain
/// GEMMs (DeepSeek-V3 T=128 down 1.72-1.77 vs 1.90 ms) but lost on the gated one (DeepSeek-V3 FFN
/// T=128: 6.2-6.7 ms against 5.1-5.3); 64-row passes ran at 2.5-3.2 TB/s against 3.5-3.9 for
/// 32-row passes (x read from L1 at four times the weights' bytes, and register spills).
constexpr int gemv_row_tiles(std::int32_t rows, bool gated) noexcept {
  return rows <= 8 ? 1 : gated && rows <= 16 ? 2 : 4;
}

template <int MT, bool Gated>
cudaError_t launch_gemv_kernel(dim3 grid, const gemv_params& q, cudaStream_t stream) noexcept {
  return launch_pdl(grouped_gemv_kernel<MT, Gated>, grid, dim3(gemv_threads), 0, stream, q);
}

inline status launch_gemv(const grouped_gemm_problem& p, bool gated, std::int32_t up_offset, std::int64_t w_stride,
                          cudaStream_t stream) noexcept {
  const int mt = gemv_row_tiles(p.rows_hint, gated);
  const std::int32_t ks = mt >= 4 ? 1 : gemv_ksplit(p.k);  // 32+ rows a pass: one warp per column tile
  const std::int32_t active = p.max_active_groups > 0 ? std::min(p.max_active_groups, p.num_groups) : p.num_groups;
  const std::int32_t cols = gemv_cols * (gemv_warps / ks);
  const std::int32_t col_blocks = (p.n + cols - 1) / cols;
  const std::int64_t block_bytes = static_cast<std::int64_t>(cols) * p.k * 2 * (gated ? 2 : 1);
  // Longer blocks only while the grid still gives every SM two blocks (with few active groups,
  // e.g. Qwen3 at T = 1, a 2-column-block loop left the GPU half empty: down GEMM 10.2 -> 12.6 us).
  const std::int64_t fill = static_cast<std::int64_t>(col_blocks) * active / gemv_min_blocks;
  const auto per_block = static_cast<std::int32_t>(std::clamp<std::int64_t>(
      std::min<std::int64_t>(gemv_block_bytes / std::max<std::int64_t>(block_bytes, 1), fill), 1, col_blocks));
  gemv_params q{p.x, p.w, p.y, p.counts, p.offsets, p.num_groups, p.n, p.k, w_stride, up_offset, ks, col_blocks, per_block};
  const dim3 grid(static_cast<unsigned>((col_blocks + per_block - 1) / per_block), static_cast<unsigned>(active));
  const cudaError_t e = mt == 1   ? (gated ? launch_gemv_kernel<1, true>(grid, q, stream)
                                            : launch_gemv_kernel<1, false>(grid, q, stream))
                        : mt == 2 ? launch_gemv_kernel<2, true>(grid, q, stream)
                                  : (gated ? launch_gemv_kernel<4, true>(grid, q, stream)
                                           : launch_gemv_kernel<4, false>(grid, q, stream));
  return from_cuda(e != cudaSuccess ? e : cudaGetLastError());
}

/// cuBLAS's three pointer arrays (A, B, C) of `entries` each, 256-byte aligned, at the start of the
/// workspace (grouped_gemm_workspace_size's layout).
struct pointer_array_set {
  const void** a;
  const void** b;
  void** c;
};
inline pointer_array_set pointer_arrays(void* ws, std::size_t entries) noexcept {
  auto* base = static_cast<char*>(ws);
  const auto arr = align256(entries * sizeof(void*));
  return {reinterpret_cast<const void**>(base), reinterpret_cast<const void**>(base + arr),
          reinterpret_cast<void**>(base + 2 * arr)};
}

inline status run_per_group(const grouped_gemm_problem& p, const host_group_sizes& s, const cublas_context& ctx,
                            cudaStream_t stream) noexcept {
  const float alpha = 1.0f, beta = 0.0f;
  const auto w_stride = static_cast<std::int64_t>(p.n) * p.k;
  const bool fan = ctx.fans_out();
  const std::size_t lanes = fan ? ctx.side_streams.size() + 1 : 1;
  if (fan) {  // fork: side streams wait for the work before this call
    if (auto e = cudaEventRecord(ctx.events[0], stream); e != cudaSuccess) return from_cuda(e);
    for (std::size_t i = 0; i + 1 < lanes; ++i)
      if (auto e = cudaStreamWaitEvent(ctx.side_streams[i], ctx.events[0], 0); e != cudaSuccess) return from_cuda(e);
  }
  status result{};
  std::size_t lane = 0;
  for (std::int32_t g = 0; g < p.num_groups && result.ok(); ++g) {
    const auto m = s.counts[static_cast<std::size_t>(g)];
    if (m <= 0) continue;
    cublasHandle_t h = lane == 0 ? ctx.handle : ctx.side_handles[lane - 1];
    cudaStream_t st = lane == 0 ? stream : ctx.side_streams[lane - 1];
    lane = (lane + 1) % lanes;
    if (auto r = from_cublas(cublasSetStream(h, st)); !r) {
      result = r;
      break;
    }
    const auto off = static_cast<std::int64_t>(s.offsets[static_cast<std::size_t>(g)]);
    result = from_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, p.n, m, p.k, &alpha, p.w + g * w_stride, CUDA_R_16BF,
                                      p.k, p.x + off * p.k, CUDA_R_16BF, p.k, &beta, p.y + off * p.n, CUDA_R_16BF, p.n,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (fan) {  // join, also after an error, so no side stream is left forked
    for (std::size_t i = 0; i + 1 < lanes; ++i) {
      if (auto e = cudaEventRecord(ctx.events[i + 1], ctx.side_streams[i]); e != cudaSuccess) return from_cuda(e);
      if (auto e = cudaStreamWaitEvent(stream, ctx.events[i + 1], 0); e != cudaSuccess) return from_cuda(e);
    }
  }
  return result;
}

inline status run_grouped(const grouped_gemm_problem& p, const host_group_sizes& s, cublasHandle_t h, void* ws,
                          cudaStream_t stream) noexcept {
  std::array<int, max_cublas_groups> m{};
  std::int32_t active = 0;
  for (std::int32_t g = 0; g < p.num_groups; ++g) {
    const auto c = s.counts[static_cast<std::size_t>(g)];
    if (c <= 0) continue;
    if (active == max_cublas_groups) return {status_code::unsupported, cudaSuccess, 0};
    m[static_cast<std::size_t>(active++)] = c;
  }
  if (active == 0) return {};
  const auto [a, b, c] = pointer_arrays(ws, static_cast<std::size_t>(p.num_groups));
  group_pointers_kernel<><<<1, 1024, 0, stream>>>(p.w, p.x, p.y, p.counts, p.offsets, p.num_groups,
                                                static_cast<std::int64_t>(p.n) * p.k, p.k, p.n, a, b, c);
  if (auto st = from_cuda(cudaGetLastError()); !st) return st;
  if (auto st = from_cublas(cublasSetStream(h, stream)); !st) return st;
  std::array<cublasOperation_t, max_cublas_groups> ta, tb;
  std::array<int, max_cublas_groups> n, k, ld_a, ld_c, one;
  std::array<float, max_cublas_groups> alpha, beta;
  for (std::int32_t i = 0; i < active; ++i) {
    const auto u = static_cast<std::size_t>(i);
    ta[u] = CUBLAS_OP_T;
    tb[u] = CUBLAS_OP_N;
    n[u] = p.n;
    k[u] = p.k;
    ld_a[u] = p.k;
    ld_c[u] = p.n;
    one[u] = 1;
    alpha[u] = 1.0f;
    beta[u] = 0.0f;
  }
  // Column-major view: C^T [n x m] = W [n x k] (W^T stored) · X^T [k x m].
  return from_cublas(cublasGemmGroupedBatchedEx(h, ta.data(), tb.data(), n.data(), m.data(), k.data(), alpha.data(),
                                                a, CUDA_R_16BF, ld_a.data(), b, CUDA_R_16BF, ld_a.data(),
                                                beta.data(), c, CUDA_R_16BF, ld_c.data(), active, one.data(),
                                                CUBLAS_COMPUTE_32F));
}

inline status run_bucketed(const grouped_gemm_problem& p, const host_group_sizes& s, cublasHandle_t h, void* ws,
                           cudaStream_t stream) noexcept {
  struct item {
    std::int32_t room, group;
  };
  std::array<item, max_cublas_groups> items{};
  std::int32_t active = 0;
  for (std::int32_t g = 0; g < p.num_groups; ++g) {
    const auto u = static_cast<std::size_t>(g);
    if (s.counts[u] <= 0) continue;
    const auto room = s.offsets[u + 1] - s.offsets[u];
    if (room < s.counts[u]) return bad_argument();  // offsets that do not hold the counts
    items[static_cast<std::size_t>(active++)] = {room, g};
  }
  if (active == 0) return {};
  std::sort(items.begin(), items.begin() + active,
            [](const item& a, const item& b) { return a.room != b.room ? a.room < b.room : a.group < b.group; });
  const auto [a, b, c] = pointer_arrays(ws, static_cast<std::size_t>(p.num_groups));
  bucket_pointers_kernel<><<<1, 1024, 0, stream>>>(p.w, p.x, p.y, p.counts, p.offsets, p.num_groups,
                                                 static_cast<std::int64_t>(p.n) * p.k, p.k, p.n, a, b, c);
  if (auto st = from_cuda(cudaGetLastError()); !st) return st;
  if (auto st = from_cublas(cublasSetStream(h, stream)); !st) return st;
  const float alpha = 1.0f, beta = 0.0f;
  for (std::int32_t i = 0; i < active;) {
    std::int32_t j = i;
    while (j < active && items[static_cast<std::size_t>(j)].room == items[static_cast<std::size_t>(i)].room) ++j;
    const auto st = cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, p.n, items[static_cast<std::size_t>(i)].room, p.k,
                                        &alpha, a + i, CUDA_R_16BF, p.k, b + i, CUDA_R_16BF, p.k, &beta, c + i,
                                        CUDA_R_16BF, p.n, j - i, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return from_cublas(st);
    i = j;
  }
  return {};
}

inline status run_chunked(const grouped_gemm_problem& p, const host_group_sizes& s, cublasHandle_t h, void* ws,
                          cudaStream_t stream) noexcept {
  std::array<std::int64_t, chunk_classes> per_class{};
  std::int64_t items = 0;
  for (std::int32_t g = 0; g < p.num_groups; ++g) {
    const auto u = static_cast<std::size_t>(g);
    const auto rows = s.counts[u];
    if (rows <= 0) continue;
    if (s.offsets[u] < 0 || static_cast<std::int64_t>(s.offsets[u]) + rows > p.capacity_rows) return bad_argument();
    const auto chunk = chunk_rows_for(rows);
    const std::int64_t n = (rows + chunk - 1) / chunk;
    per_class[static_cast<std::size_t>(chunk_class(chunk))] += n;
    items += n;
  }
  if (items == 0) return {};
  if (static_cast<std::size_t>(items) > chunk_items_max(p)) return bad_argument();
  const auto [a, b, c] = pointer_arrays(ws, std::max(static_cast<std::size_t>(p.num_groups), chunk_items_max(p)));
  chunk_pointers_kernel<><<<1, 1024, 0, stream>>>(p.w, p.x, p.y, p.counts, p.offsets, p.num_groups,
                                                static_cast<std::int64_t>(p.n) * p.k, p.k, p.n, a, b, c);
  if (auto st = from_cuda(cudaGetLastError()); !st) return st;
  if (auto st = from_cublas(cublasSetStream(h, stream)); !st) return st;
  const float alpha = 1.0f, beta = 0.0f;
  std::int64_t first = 0;
  for (int cl = 0; cl < chunk_classes; ++cl) {
    const auto n = per_class[static_cast<std::size_t>(cl)];
    if (n == 0) continue;
    const auto st = cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, p.n, chunk_rows_max >> cl, p.k, &alpha, a + first,
                                        CUDA_R_16BF, p.k, b + first, CUDA_R_16BF, p.k, &beta, c + first, CUDA_R_16BF,
                                        p.n, static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return from_cublas(st);
    first += n;
  }
  return {};
}

}  // namespace detail

/// Enqueues y_g = x_g · w_g^T for every group on `stream` and returns before it finishes.
/// `sizes` (host copies of counts and offsets) are required by per_group and grouped, optional for
/// automatic (empty: device_counts) and ignored by device_counts. Only device_counts is
/// graph-capturable. The cuBLAS paths use `cublas.handle` on `stream` (per_group also the side
/// streams, when given, forked from and joined back into `stream`).
[[nodiscard]] inline status grouped_gemm_async(const grouped_gemm_problem& p, gemm_path path,
                                               const host_group_sizes& sizes, const cublas_context& cublas,
                                               void* workspace, std::size_t workspace_bytes,
                                               cudaStream_t stream) noexcept {
  if (path == gemm_path::automatic) path = choose_gemm_path(p, sizes);
  if (auto s = can_implement(p, path); !s) return s;
  if (path == gemm_path::device_counts && !sizes.empty()) {  // the row tiles from the real sizes
    auto q = p;
    q.rows_hint = detail::max_rows(sizes);
    return detail::launch_gemv(q, false, 0, static_cast<std::int64_t>(q.n) * q.k, stream);
  }
  if (workspace_bytes < grouped_gemm_workspace_size(p, path)) return {status_code::workspace_too_small, cudaSuccess, 0};
  if (path != gemm_path::device_counts &&
      (sizes.counts.size() != static_cast<std::size_t>(p.num_groups) ||
       sizes.offsets.size() != static_cast<std::size_t>(p.num_groups) + 1 || !cublas.handle))
    return detail::bad_argument();
  switch (path) {
    case gemm_path::device_counts:
      return detail::launch_gemv(p, false, 0, static_cast<std::int64_t>(p.n) * p.k, stream);
    case gemm_path::per_group: return detail::run_per_group(p, sizes, cublas, stream);
    case gemm_path::grouped: return detail::run_grouped(p, sizes, cublas.handle, workspace, stream);
    case gemm_path::bucketed: return detail::run_bucketed(p, sizes, cublas.handle, workspace, stream);
    case gemm_path::chunked: return detail::run_chunked(p, sizes, cublas.handle, workspace, stream);
    case gemm_path::automatic: break;
  }
  return detail::bad_argument();
}

// ---- fused expert FFN ---------------------------------------------------------------------------

/// One expert FFN over the groups: y = (silu(x·w1^T) * (x·w3^T)) · w2^T per group, with w13 = [w1; w3]
/// stacked per group ([G][2*inter][hidden]: gate rows first) and w2 = [G][hidden][inter]. An aggregate.
struct expert_ffn_problem {
  std::int32_t num_groups = 0;
  std::int32_t hidden = 0;         ///< H
  std::int32_t inter = 0;          ///< I, the intermediate size of one expert
  std::int32_t capacity_rows = 0;
  const bf16* x = nullptr;         ///< [capacity_rows][H] permuted tokens
  const bf16* w13 = nullptr;       ///< [G][2I][H]
  const bf16* w2 = nullptr;        ///< [G][H][I]
  bf16* y = nullptr;               ///< [capacity_rows][H]
  const std::int32_t* counts = nullptr;   ///< device [G]
  const std::int32_t* offsets = nullptr;  ///< device [G+1]
  std::int32_t rows_hint = 8;
  std::int32_t max_active_groups = 0;
};

namespace detail {
inline grouped_gemm_problem gate_up_part(const expert_ffn_problem& f, bf16* h) noexcept {
  return {f.num_groups, 2 * f.inter, f.hidden, f.capacity_rows, f.x, f.w13, h, f.counts, f.offsets, f.rows_hint,
          f.max_active_groups};
}
inline grouped_gemm_problem down_part(const expert_ffn_problem& f, const bf16* act) noexcept {
  return {f.num_groups, f.hidden, f.inter, f.capacity_rows, act, f.w2, f.y, f.counts, f.offsets, f.rows_hint,
          f.max_active_groups};
}
inline std::size_t act_bytes(const expert_ffn_problem& f) noexcept {
  return align256(static_cast<std::size_t>(f.capacity_rows) * static_cast<std::size_t>(f.inter) * sizeof(bf16));
}
}  // namespace detail

/// Whether expert_ffn_async can run `f` on `path`: both GEMMs implementable (the device path needs
/// hidden and inter multiples of 32), inter % 8 == 0 for SiLU·mul.
[[nodiscard]] inline status can_implement(const expert_ffn_problem& f, gemm_path path) noexcept {
  if (f.inter <= 0 || f.inter % 8 != 0 || f.hidden <= 0) return detail::bad_argument();
  if ((path == gemm_path::device_counts || path == gemm_path::automatic) && f.inter % 32 != 0)
    return {status_code::unsupported, cudaSuccess, 0};
  // f.y stands in for the workspace buffers (same alignment rule).
  if (auto s = can_implement(detail::gate_up_part(f, f.y), path); !s) return s;
  return can_implement(detail::down_part(f, f.y), path);
}

/// Device workspace bytes expert_ffn_async needs on `path`: the activations [rows][I] and, on the
/// cuBLAS paths, the gate/up output [rows][2I] and cuBLAS pointer arrays.
[[nodiscard]] inline std::size_t expert_ffn_workspace_size(const expert_ffn_problem& f, gemm_path path) noexcept {
  const auto act = detail::act_bytes(f);
  if (path == gemm_path::device_counts) return act;
  const auto h = detail::align256(static_cast<std::size_t>(f.capacity_rows) * 2 * static_cast<std::size_t>(f.inter) *
                                  sizeof(bf16));
  return act + h + grouped_gemm_workspace_size(detail::gate_up_part(f, nullptr), path);
}

/// Enqueues the expert FFN on `stream` and returns before it finishes. On device_counts (and
/// automatic without host sizes) it is two launches of gem's kernel, SiLU·mul fused into the first,
/// graph-capturable; on the cuBLAS paths, gate/up GEMM, SiLU·mul kernel, down GEMM. Rows outside
/// every group of y are not written.
[[nodiscard]] inline status expert_ffn_async(const expert_ffn_problem& f, gemm_path path, const host_group_sizes& sizes,
                                             const cublas_context& cublas, void* workspace, std::size_t workspace_bytes,
                                             cudaStream_t stream) noexcept {
  if (auto s = can_implement(f, path); !s) return s;
  auto* act = static_cast<bf16*>(workspace);
  const bool automatic = path == gemm_path::automatic;  // then the down GEMM picks its own cuBLAS path
  if (automatic) path = choose_gemm_path(detail::gate_up_part(f, act), sizes);
  if (!workspace || workspace_bytes < expert_ffn_workspace_size(f, path))
    return {status_code::workspace_too_small, cudaSuccess, 0};
  if (path == gemm_path::device_counts) {
    auto gu = detail::gate_up_part(f, act);
    gu.n = f.inter;  // the kernel writes silu(gate) * up: I columns per row
    if (!sizes.empty()) gu.rows_hint = detail::max_rows(sizes);
    if (auto s = detail::launch_gemv(gu, true, f.inter, static_cast<std::int64_t>(2) * f.inter * f.hidden, stream); !s)
      return s;
    return grouped_gemm_async(detail::down_part(f, act), path, sizes, cublas, nullptr, 0, stream);
  }
  auto* base = static_cast<char*>(workspace) + detail::act_bytes(f);
  auto* h = reinterpret_cast<bf16*>(base);
  const auto h_bytes = detail::align256(static_cast<std::size_t>(f.capacity_rows) * 2 * static_cast<std::size_t>(f.inter) *
                                        sizeof(bf16));
  void* ptrs = base + h_bytes;
  const auto ptr_bytes = workspace_bytes - detail::act_bytes(f) - h_bytes;
  if (auto s = grouped_gemm_async(detail::gate_up_part(f, h), path, sizes, cublas, ptrs, ptr_bytes, stream); !s) return s;
  if (f.capacity_rows > 0) {
    const auto e = detail::launch_pdl(detail::silu_mul_kernel<>, dim3(static_cast<unsigned>(f.capacity_rows)), dim3(128),
                                      0, stream, h, act, f.inter, f.counts, f.offsets, f.num_groups);
    if (auto s = from_cuda(e != cudaSuccess ? e : cudaGetLastError()); !s) return s;
  }
  return grouped_gemm_async(detail::down_part(f, act), automatic ? gemm_path::automatic : path, sizes, cublas, ptrs,
                            ptr_bytes, stream);
}

}  // namespace gem::cuda
