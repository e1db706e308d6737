// examples/moe_layer/ep_layer.cuh — one MoE layer expert-parallel over several real GPUs of one
// host, rows dispatched and returned with NCCL, in the shape engines run it: each rank (one GPU)
// holds a slice of the step's tokens (data-parallel attention before the layer), routes them to
// the placement's slots, permutes them (device-major slots: the rows for one GPU are one block), and
//   1. all-gathers every rank's per-slot row counts (P int32 each) and brings them to the host;
//   2. dispatch: one NCCL send per peer of the block of rows its slots need and one receive per
//      peer into a staging buffer (grouped), then one kernel reorders the received blocks (and the
//      rank's own block, which never leaves the GPU) slot-major: for each of its slots, source rank
//      0's rows, then rank 1's, ..., so the expert FFN reads one contiguous range per slot;
//   3. runs its slots' fused FFN (gem/cuda/profiler.cuh's device_experts);
//   4. return: the mirror image of 2 (reorder into per-source blocks, one send and receive per
//      peer), into the rank's permuted buffer;
//   5. combines its own tokens.
// Each rank decides from its own copy of the gathered counts, as one process per GPU would. Each
// rank's compute is enqueued from its own host thread, as a process per GPU would enqueue it (the
// expert phase may issue a hundred cuBLAS calls: from one thread, the last rank would start only
// when the others' launches were done); the driving thread makes NCCL's grouped calls for every
// rank, and a host barrier between phases times them.
// A rank's compute runs on its exec_device (a whole GPU, or an SM partition of one to emulate a
// slower GPU); its NCCL traffic on a stream of the GPU's primary context, ordered by events.
// NVLink multicast (NVLS) is not used: ep_comms sets NCCL_NVLS_ENABLE=0 unless the caller set it.
// Depends on NCCL, gem/cuda/{routing,permute,profiler}.cuh, moe_layer.cuh and rank_threads.hpp.
#pragma once

#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "moe_layer.cuh"
#include "rank_threads.hpp"

namespace gem::example {

/// What one expert-parallel step took. Phases are host wall-clock times between barriers.
struct ep_step_timing {
  std::vector<double> device_seconds{};    ///< [R] each rank's expert phase (events on its stream)
  std::vector<std::int32_t> device_rows{};  ///< [R] rows each rank's experts ran
  double latency = 0;   ///< lock-step latency of the expert phase: the slowest rank's seconds
  double dispatch = 0;  ///< route + permute + count exchange + rows out (wall)
  double experts = 0;   ///< the expert phase over all ranks (wall)
  double combine = 0;   ///< rows back + combine (wall)
  double wall = 0;      ///< dispatch + experts + combine
};

namespace detail {
inline void nccl_check(ncclResult_t r, const std::string& what) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  throw gem::cuda_error("ep_layer: " + what + " failed: " + ncclGetErrorString(r));
}
/// One contiguous run of rows to copy: `rows` rows of `vecs` 16-byte vectors each.
struct row_piece {
  const int4* src;
  int4* dst;
  std::int32_t rows;
};

/// Copies every piece (blockIdx.y) row by row; blocks along x stride over the piece's rows.
__global__ void copy_row_pieces(const row_piece* pieces, std::int32_t vecs) {
  const row_piece p = pieces[blockIdx.y];
  for (std::int32_t r = static_cast<std::int32_t>(blockIdx.x); r < p.rows; r += static_cast<std::int32_t>(gridDim.x))
    for (std::int32_t v = static_cast<std::int32_t>(threadIdx.x); v < vecs; v += static_cast<std::int32_t>(blockDim.x))
      p.dst[static_cast<std::int64_t>(r) * vecs + v] = p.src[static_cast<std::int64_t>(r) * vecs + v];
}
}  // namespace detail

/// One NCCL communicator per GPU of `devices` (one host thread drives them all), made once and
/// shared by every ep_layer over those devices. NVLink multicast (NVLS) stays off: it can take a
/// shared host's GPUs out of service; a caller's own NCCL_NVLS_ENABLE wins.
class ep_comms {
 public:
  explicit ep_comms(std::span<const cuda::exec_device> devices) {
    std::vector<int> ordinals;
    for (const auto& d : devices) {
      for (auto o : ordinals)
        if (o == d.ordinal())
          throw gem::config_error("ep_comms: two ranks on GPU " + std::to_string(o) + " (NCCL needs one GPU per rank)");
      ordinals.push_back(d.ordinal());
    }
    if (ordinals.empty()) throw gem::config_error("ep_comms: no devices");
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    comms_.resize(ordinals.size());
    detail::nccl_check(ncclCommInitAll(comms_.data(), static_cast<int>(ordinals.size()), ordinals.data()),
                       "ncclCommInitAll");
  }
  ep_comms(const ep_comms&) = delete;
  ep_comms& operator=(const ep_comms&) = delete;
  ~ep_comms() {
    for (auto c : comms_)
      if (c) (void)ncclCommDestroy(c);
  }
  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(comms_.size()); }
  [[nodiscard]] ncclComm_t operator[](std::int32_t r) const noexcept { return comms_[static_cast<std::size_t>(r)]; }

 private:
  std::vector<ncclComm_t> comms_{};
};

/// One layer of `plc` over R ranks, rank r on devices[r] (each on a different GPU). Setup
/// allocates and copies every slot's weights from `bank`; stage() and run_step() allocate nothing.
/// `comms` (made over the same devices) must outlive the layer.
class ep_layer {
 public:
  ep_layer(std::span<const cuda::exec_device> devices, const ep_comms& comms, const gem::placement& plc, gem::layer_id layer,
           const moe_shape& shape, const expert_bank& bank, cuda::gemm_path path = cuda::gemm_path::automatic)
      : shape_(shape) {
    const auto R = static_cast<std::int32_t>(devices.size());
    if (R != plc.num_gpus())
      throw gem::config_error("ep_layer: " + std::to_string(R) + " devices for a placement on " +
                              std::to_string(plc.num_gpus()) + " GPUs");
    if (plc.num_experts() != shape.num_experts)
      throw gem::config_error("ep_layer: the placement has " + std::to_string(plc.num_experts()) +
                              " experts, the layer " + std::to_string(shape.num_experts));
    if (shape.top_k <= 0 || shape.top_k > shape.num_experts || shape.max_tokens < R)
      throw gem::config_error("ep_layer: top_k must be in [1, num_experts] and max_tokens at least one per rank");
    if (shape.hidden <= 0 || shape.hidden % 8 != 0)
      throw gem::config_error("ep_layer: hidden must be a positive multiple of 8 (rows of 16-byte vectors)");
    if (comms.size() != R)
      throw gem::config_error("ep_layer: " + std::to_string(comms.size()) + " communicators for " + std::to_string(R) +
                              " devices");
    auto dm = device_major_tables(plc, layer);
    first_slot_ = dm.first_slot;
    P_ = dm.tables.num_slots;
    const auto& lp = plc.layer(layer);
    const auto K = static_cast<std::size_t>(shape.top_k), H = static_cast<std::size_t>(shape.hidden);
    const auto per_rank = (shape.max_tokens + R - 1) / R;

    ranks_.resize(static_cast<std::size_t>(R));
    try {
      for (std::int32_t r = 0; r < R; ++r) {
        auto& k = ranks_[static_cast<std::size_t>(r)];
        k.dev = &devices[static_cast<std::size_t>(r)];
        const std::string where = "ep_layer: rank " + std::to_string(r);
        k.nccl = comms[r];
        int on = -1;
        detail::nccl_check(ncclCommCuDevice(k.nccl, &on), "ncclCommCuDevice");
        if (on != k.dev->ordinal())
          throw gem::config_error(where + ": its communicator is on GPU " + std::to_string(on) + ", the device on GPU " +
                                  std::to_string(k.dev->ordinal()));
        cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), where + ": cudaSetDevice");
        k.pl_buf = device_alloc(cuda::placement_bytes(dm.tables), where + ": cudaMalloc");
        k.cfg = cuda::routing_config{.num_tokens = per_rank, .top_k = shape.top_k, .num_experts = shape.num_experts,
                                     .tile_rows = 1};
        check_status(cuda::upload_placement(dm.tables, k.pl_buf, cuda::placement_bytes(dm.tables), &k.cfg.placement),
                     where + ": upload_placement");
        if (auto s = cuda::can_implement(k.cfg); !s) throw gem::config_error(where + ": routing cannot run this shape");
        k.ws_bytes = cuda::routing_workspace_size(k.cfg);
        k.ws = device_alloc(k.ws_bytes, where + ": cudaMalloc");
        const auto cap = static_cast<std::size_t>(k.cfg.capacity_rows());
        k.x = static_cast<bf16*>(device_alloc(static_cast<std::size_t>(per_rank) * H * sizeof(bf16), where));
        k.out = static_cast<bf16*>(device_alloc(static_cast<std::size_t>(per_rank) * H * sizeof(bf16), where));
        k.xp = static_cast<bf16*>(device_alloc(cap * H * sizeof(bf16), where));
        k.yp = static_cast<bf16*>(device_alloc(cap * H * sizeof(bf16), where));
        k.ids = static_cast<std::int32_t*>(device_alloc(static_cast<std::size_t>(per_rank) * K * 4, where));
        k.weights = static_cast<float*>(device_alloc(static_cast<std::size_t>(per_rank) * K * 4, where));
        k.d_counts = static_cast<std::int32_t*>(device_alloc(static_cast<std::size_t>(R) * P_ * 4, where));
        // Staging for the blocks of other ranks (a rank may receive every row of the step), and the
        // reorder's piece tables: dispatch's then return's, R pieces per own slot each.
        k.stage = static_cast<bf16*>(
            device_alloc(static_cast<std::size_t>(shape.max_tokens) * K * H * sizeof(bf16), where));
        const auto table = 2 * static_cast<std::size_t>(R) * P_ * sizeof(detail::row_piece);
        k.d_pieces = static_cast<detail::row_piece*>(device_alloc(table, where));
        void* h = nullptr;
        cuda::detail::runtime_check(cudaHostAlloc(&h, static_cast<std::size_t>(R) * P_ * 4, cudaHostAllocPortable),
                                    where + ": cudaHostAlloc");
        k.h_counts = static_cast<std::int32_t*>(h);
        cuda::detail::runtime_check(cudaHostAlloc(&h, table, cudaHostAllocPortable), where + ": cudaHostAlloc");
        k.h_pieces = static_cast<detail::row_piece*>(h);
        cuda::detail::runtime_check(cudaStreamCreateWithFlags(&k.comm, cudaStreamNonBlocking), where + ": cudaStreamCreate");
        {
          const auto scope = k.dev->activate();
          cuda::detail::runtime_check(cudaEventCreateWithFlags(&k.routed, cudaEventDisableTiming),
                                      where + ": cudaEventCreate");
          cuda::detail::runtime_check(cudaEventCreateWithFlags(&k.reordered, cudaEventDisableTiming),
                                      where + ": cudaEventCreate");
        }
        const auto slots = first_slot_[r + 1] - first_slot_[r];
        if (slots == 0) throw gem::config_error("ep_layer: GPU " + std::to_string(r) + " holds no slot");
        // A rank may receive every row of the step.
        k.unit = std::make_unique<cuda::device_experts>(
            *k.dev, cuda::device_experts_config{.hidden = shape.hidden, .inter = shape.inter, .num_slots = slots,
                                                .max_rows = shape.max_tokens * shape.top_k, .path = path});
        load_slot_weights(*k.unit, bank, lp, std::span(dm.order).subspan(first_slot_[r], slots));
      }
      threads_ = std::make_unique<detail::rank_threads>(R);
    } catch (...) {
      release();
      throw;
    }
  }
  ep_layer(const ep_layer&) = delete;
  ep_layer& operator=(const ep_layer&) = delete;
  ~ep_layer() { release(); }

  [[nodiscard]] std::int32_t num_ranks() const noexcept { return static_cast<std::int32_t>(ranks_.size()); }
  /// Tokens rank r holds in a step of `num_tokens`: [first_token(r, T), first_token(r + 1, T)).
  [[nodiscard]] std::int32_t first_token(std::int32_t r, std::int32_t num_tokens) const noexcept {
    return static_cast<std::int32_t>(static_cast<std::int64_t>(num_tokens) * r / num_ranks());
  }

  /// Puts a step's inputs where the ranks hold them (not timed): rank r gets its tokens' ids and
  /// weights (host, [T][k]) and its rows of x ([T][H] bf16 on any GPU of the host). Throws
  /// config_error for T outside [R, max_tokens] or spans shorter than T * k.
  void stage(std::span<const std::int32_t> ids, std::span<const float> weights, std::int32_t num_tokens, const bf16* x) {
    const auto R = num_ranks();
    if (num_tokens < R || num_tokens > shape_.max_tokens)
      throw gem::config_error("ep_layer::stage: " + std::to_string(num_tokens) + " tokens; between " + std::to_string(R) +
                              " (one per rank) and " + std::to_string(shape_.max_tokens) + " fit");
    const auto K = static_cast<std::size_t>(shape_.top_k), H = static_cast<std::size_t>(shape_.hidden);
    if (ids.size() < static_cast<std::size_t>(num_tokens) * K || weights.size() < static_cast<std::size_t>(num_tokens) * K)
      throw gem::config_error("ep_layer::stage: ids and weights need " + std::to_string(num_tokens * shape_.top_k) +
                              " entries");
    for (std::int32_t r = 0; r < R; ++r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      const auto t0 = static_cast<std::size_t>(first_token(r, num_tokens));
      k.tokens = first_token(r + 1, num_tokens) - first_token(r, num_tokens);
      const auto n = static_cast<std::size_t>(k.tokens);
      cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), "ep_layer::stage: cudaSetDevice");
      cuda::detail::runtime_check(cudaMemcpy(k.ids, ids.data() + t0 * K, n * K * 4, cudaMemcpyHostToDevice),
                                  "ep_layer::stage: ids");
      cuda::detail::runtime_check(cudaMemcpy(k.weights, weights.data() + t0 * K, n * K * 4, cudaMemcpyHostToDevice),
                                  "ep_layer::stage: weights");
      cuda::detail::runtime_check(cudaMemcpy(k.x, x + t0 * H, n * H * sizeof(bf16), cudaMemcpyDefault), "ep_layer::stage: x");
    }
  }

  /// Runs the staged step (see the header) and blocks until every rank's output is written.
  /// Throws placement_error when a routed id is outside [0, E), gem::cuda_error naming the stage
  /// (and rank) that failed.
  ep_step_timing run_step() {
    const auto R = num_ranks();
    using clock = std::chrono::steady_clock;
    const auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    for (auto& k : ranks_)
      if (k.tokens <= 0) throw gem::config_error("ep_layer::run_step: no step staged");
    const auto H = static_cast<std::size_t>(shape_.hidden);
    const auto count_bytes = static_cast<std::size_t>(R) * P_ * 4;
    ep_step_timing t;
    auto t0 = clock::now();

    // 1. Route, permute and exchange the per-slot counts.
    threads_->run([&](std::int32_t r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      const std::string where = "ep_layer: rank " + std::to_string(r) + ": ";
      auto cfg = k.cfg;
      cfg.num_tokens = k.tokens;
      check_status(cuda::bind_routing_layout(cfg, k.ws, k.ws_bytes, &k.layout), where + "bind_routing_layout");
      const auto scope = k.dev->activate();
      const auto es = k.dev->stream();
      check_status(cuda::routing_layout_async(cfg, k.ids, k.weights, k.layout, es), where + "routing_layout_async");
      check_status(cuda::permute_async(k.layout, shape_.top_k, k.x, H * sizeof(bf16), k.xp, es), where + "permute_async");
      cuda::detail::runtime_check(cudaEventRecord(k.routed, es), where + "cudaEventRecord");
    });
    for (auto& k : ranks_) {
      cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), "ep_layer: cudaSetDevice");
      cuda::detail::runtime_check(cudaStreamWaitEvent(k.comm, k.routed), "ep_layer: cudaStreamWaitEvent");
    }
    detail::nccl_check(ncclGroupStart(), "ncclGroupStart");
    for (auto& k : ranks_)
      detail::nccl_check(ncclAllGather(k.layout.group_counts, k.d_counts, static_cast<std::size_t>(P_), ncclInt32, k.nccl, k.comm),
                         "ncclAllGather of the slot counts");
    detail::nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    for (auto& k : ranks_) {
      cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), "ep_layer: cudaSetDevice");
      cuda::detail::runtime_check(cudaMemcpyAsync(k.h_counts, k.d_counts, count_bytes, cudaMemcpyDeviceToHost, k.comm),
                                  "ep_layer: slot counts to the host");
    }
    threads_->run([&](std::int32_t r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      cuda::detail::runtime_check(cudaStreamSynchronize(k.comm), "ep_layer: rank " + std::to_string(r) + ": count exchange");
      const auto scope = k.dev->activate();
      if (auto s = cuda::check_routing(k.layout, k.dev->stream()); !s) {
        if (s.code == cuda::status_code::ids_out_of_range)
          throw gem::placement_error("ep_layer: rank " + std::to_string(r) + ": " + std::to_string(s.detail) +
                                     " routed ids outside [0, " + std::to_string(shape_.num_experts) + ")");
        check_status(s, "ep_layer: rank " + std::to_string(r) + ": check_routing");
      }
      plan(k, r);
    });
    // 2. Rows out: rank r's rows of slot p go to the rank holding p, slot-major there.
    exchange(/*returning=*/false, "dispatch");
    t.dispatch = since(t0);

    // 3. Each rank's experts, all at once, each enqueued from its rank's thread.
    t0 = clock::now();
    t.device_seconds.assign(static_cast<std::size_t>(R), 0.0);
    t.device_rows.assign(static_cast<std::size_t>(R), 0);
    threads_->run([&](std::int32_t r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      auto& u = *k.unit;
      const auto n = first_slot_[r + 1] - first_slot_[r];
      auto c = u.host_counts();
      auto o = u.host_offsets();
      for (std::int32_t i = 0; i < n; ++i) {
        c[i] = k.recv_offset[static_cast<std::size_t>(i + 1) * R] - k.recv_offset[static_cast<std::size_t>(i) * R];
        o[i] = k.recv_offset[static_cast<std::size_t>(i) * R];
      }
      o[n] = k.recv_offset[static_cast<std::size_t>(n) * R];
      t.device_rows[static_cast<std::size_t>(r)] = o[n];
      check_status(u.enqueue_async(o[n], nullptr, nullptr), "ep_layer: expert phase of " + u.device().name());
      // Waits for the phase's end event, the last work on the rank's stream.
      t.device_seconds[static_cast<std::size_t>(r)] = u.last_seconds();
    });
    t.experts = since(t0);
    t.latency = *std::max_element(t.device_seconds.begin(), t.device_seconds.end());

    // 4. Rows back, then 5. each rank combines its own tokens.
    t0 = clock::now();
    exchange(/*returning=*/true, "return");
    threads_->run([&](std::int32_t r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      const auto scope = k.dev->activate();
      check_status(cuda::combine_async(k.layout, k.tokens, shape_.top_k, k.weights, k.yp, shape_.hidden, nullptr, k.out,
                                       k.dev->stream()),
                   "ep_layer: rank " + std::to_string(r) + ": combine_async");
      cuda::detail::runtime_check(cudaStreamSynchronize(k.dev->stream()), "ep_layer: combine");
    });
    t.combine = since(t0);
    t.wall = t.dispatch + t.experts + t.combine;
    return t;
  }

  /// The last step's output [T][H], ranks' tokens in order (host copy).
  [[nodiscard]] std::vector<bf16> output() const {
    std::vector<bf16> out;
    const auto H = static_cast<std::size_t>(shape_.hidden);
    for (const auto& k : ranks_) {
      const auto at = out.size();
      out.resize(at + static_cast<std::size_t>(k.tokens) * H);
      cuda::detail::runtime_check(cudaMemcpy(out.data() + at, k.out, static_cast<std::size_t>(k.tokens) * H * sizeof(bf16),
                                             cudaMemcpyDefault),
                                  "ep_layer::output");
    }
    return out;
  }

 private:
  struct rank {
    const cuda::exec_device* dev = nullptr;
    cuda::routing_config cfg{};
    cuda::routing_layout layout{};
    void* pl_buf = nullptr;
    void* ws = nullptr;
    std::size_t ws_bytes = 0;
    bf16 *x = nullptr, *out = nullptr, *xp = nullptr, *yp = nullptr;
    std::int32_t* ids = nullptr;
    float* weights = nullptr;
    std::int32_t* d_counts = nullptr;  ///< [R][P] every rank's rows per slot (device)
    std::int32_t* h_counts = nullptr;  ///< the same on the host (pinned)
    std::int32_t tokens = 0;
    cudaStream_t comm = nullptr;   ///< NCCL's stream, primary context of the rank's GPU
    cudaEvent_t routed = nullptr;  ///< made in the exec device's context
    ncclComm_t nccl = nullptr;  ///< not owned (ep_comms)
    bf16* stage = nullptr;                  ///< other ranks' blocks, source-major
    detail::row_piece* d_pieces = nullptr;  ///< reorder tables (device): dispatch's, then return's
    detail::row_piece* h_pieces = nullptr;  ///< the same, pinned
    cudaEvent_t reordered = nullptr;        ///< made in the exec device's context
    std::vector<std::int32_t> send_offset{};   ///< [P+1] this rank's permuted rows per slot (prefix)
    std::vector<std::int32_t> recv_offset{};   ///< [(own slots)*R + 1] its experts' rows, slot-major then source
    std::vector<std::int32_t> block_offset{};  ///< [R+1] rows of each source's block in `stage` (own: 0)
    std::unique_ptr<cuda::device_experts> unit{};
  };

  /// From rank r's copy of the gathered counts: where its own rows of each slot start in its
  /// permuted buffer, and where each (own slot, source) piece lands in its experts' input.
  void plan(rank& k, std::int32_t r) const {
    const auto R = num_ranks();
    const auto* own = k.h_counts + static_cast<std::size_t>(r) * P_;
    k.send_offset.assign(static_cast<std::size_t>(P_) + 1, 0);
    for (std::int32_t p = 0; p < P_; ++p) k.send_offset[p + 1] = k.send_offset[p] + own[p];
    const auto f = first_slot_[r], n = first_slot_[r + 1] - f;
    k.recv_offset.assign(static_cast<std::size_t>(n) * R + 1, 0);
    for (std::int32_t i = 0; i < n; ++i)
      for (std::int32_t s = 0; s < R; ++s) {
        const auto at = static_cast<std::size_t>(i) * R + s;
        k.recv_offset[at + 1] = k.recv_offset[at] + k.h_counts[static_cast<std::size_t>(s) * P_ + f + i];
      }
    k.block_offset.assign(static_cast<std::size_t>(R) + 1, 0);
    for (std::int32_t s = 0; s < R; ++s) {
      std::int32_t rows = 0;
      for (std::int32_t i = 0; s != r && i < n; ++i) rows += k.h_counts[static_cast<std::size_t>(s) * P_ + f + i];
      k.block_offset[s + 1] = k.block_offset[s] + rows;
    }
  }

  /// Moves rows between the ranks' permuted buffers (xp out, yp back) and their experts' buffers
  /// (x in, y out); blocks until done. Out: one NCCL send per peer of the peer's block of xp, one
  /// receive per peer into `stage`, then the reorder into x (the rank's own block straight from
  /// xp). Back: the reorder of y into `stage` (own block straight into yp), then one send per peer
  /// and one receive per peer into yp.
  void exchange(bool returning, const char* what) {
    const auto R = num_ranks();
    const auto H = static_cast<std::size_t>(shape_.hidden);
    const std::string stage = what;
    if (returning) threads_->run([&](std::int32_t r) { reorder(r, true, stage); });
    for (std::int32_t r = 0; r < R; ++r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), "ep_layer: cudaSetDevice");
      if (returning)
        cuda::detail::runtime_check(cudaStreamWaitEvent(k.comm, k.reordered), "ep_layer: cudaStreamWaitEvent");
    }
    detail::nccl_check(ncclGroupStart(), "ncclGroupStart");
    for (std::int32_t r = 0; r < R; ++r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      for (std::int32_t g = 0; g < R; ++g) {
        if (g == r) continue;
        // This rank's rows of g's slots: one block of the permuted buffer.
        const auto first = static_cast<std::size_t>(k.send_offset[first_slot_[g]]);
        const auto rows = static_cast<std::size_t>(k.send_offset[first_slot_[g + 1]]) - first;
        if (rows > 0) {
          auto* at = (returning ? k.yp : k.xp) + first * H;
          detail::nccl_check(returning ? ncclRecv(at, rows * H, ncclBfloat16, g, k.nccl, k.comm)
                                       : ncclSend(at, rows * H, ncclBfloat16, g, k.nccl, k.comm),
                             stage + ": rank " + std::to_string(r) + " block for rank " + std::to_string(g));
        }
        // g's rows of this rank's slots: one block of the staging buffer.
        const auto b0 = static_cast<std::size_t>(k.block_offset[g]);
        const auto brows = static_cast<std::size_t>(k.block_offset[g + 1]) - b0;
        if (brows > 0) {
          auto* at = k.stage + b0 * H;
          detail::nccl_check(returning ? ncclSend(at, brows * H, ncclBfloat16, g, k.nccl, k.comm)
                                       : ncclRecv(at, brows * H, ncclBfloat16, g, k.nccl, k.comm),
                             stage + ": rank " + std::to_string(r) + " block of rank " + std::to_string(g));
        }
      }
    }
    detail::nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    for (std::int32_t r = 0; r < R; ++r) {
      auto& k = ranks_[static_cast<std::size_t>(r)];
      cuda::detail::runtime_check(cudaSetDevice(k.dev->ordinal()), "ep_layer: cudaSetDevice");
      cuda::detail::runtime_check(cudaStreamSynchronize(k.comm), "ep_layer: rank " + std::to_string(r) + ": " + stage);
    }
    if (!returning)
      threads_->run([&](std::int32_t r) {
        reorder(r, false, stage);
        const auto& k = ranks_[static_cast<std::size_t>(r)];
        const auto scope = k.dev->activate();
        cuda::detail::runtime_check(cudaStreamSynchronize(k.dev->stream()), "ep_layer: " + stage + " reorder");
      });
  }

  /// Enqueues rank r's reorder on its exec stream (then records `reordered`): out, from the
  /// per-source blocks (stage, own block in xp) into x slot-major; back, the reverse from y.
  void reorder(std::int32_t r, bool returning, const std::string& stage) {
    const auto R = num_ranks();
    const auto H = static_cast<std::size_t>(shape_.hidden);
    auto& k = ranks_[static_cast<std::size_t>(r)];
    const auto f = first_slot_[r], n = first_slot_[r + 1] - f;
    auto* table = k.h_pieces + (returning ? static_cast<std::size_t>(R) * P_ : 0);
    auto* d_table = k.d_pieces + (returning ? static_cast<std::size_t>(R) * P_ : 0);
    std::int32_t pieces = 0, most = 0;
    for (std::int32_t s = 0; s < R; ++s) {
      // Source s's block: in stage, or (own rows) where they sit in the permuted buffer.
      bf16* block = s == r ? (returning ? k.yp : k.xp) + static_cast<std::size_t>(k.send_offset[f]) * H
                           : k.stage + static_cast<std::size_t>(k.block_offset[s]) * H;
      std::size_t within = 0;
      for (std::int32_t i = 0; i < n; ++i) {
        const auto at = static_cast<std::size_t>(i) * R + s;
        const auto rows = k.recv_offset[at + 1] - k.recv_offset[at];
        bf16* mine = (returning ? k.unit->y() : k.unit->x()) + static_cast<std::size_t>(k.recv_offset[at]) * H;
        bf16* theirs = block + within * H;
        within += static_cast<std::size_t>(rows);
        if (rows == 0) continue;
        table[pieces++] = {reinterpret_cast<const int4*>(returning ? mine : theirs),
                           reinterpret_cast<int4*>(returning ? theirs : mine), rows};
        most = std::max(most, rows);
      }
    }
    const auto scope = k.dev->activate();
    const auto es = k.dev->stream();
    const std::string where = "ep_layer: rank " + std::to_string(r) + ": " + stage + " reorder";
    if (pieces > 0) {
      cuda::detail::runtime_check(
          cudaMemcpyAsync(d_table, table, static_cast<std::size_t>(pieces) * sizeof(detail::row_piece),
                          cudaMemcpyHostToDevice, es),
          where);
      const auto vecs = static_cast<std::int32_t>(H * sizeof(bf16) / 16);
      detail::copy_row_pieces<<<dim3(static_cast<unsigned>(std::min(most, 16)), static_cast<unsigned>(pieces)),
                                std::min(256, (vecs + 31) / 32 * 32), 0, es>>>(d_table, vecs);
      cuda::detail::runtime_check(cudaGetLastError(), where);
    }
    cuda::detail::runtime_check(cudaEventRecord(k.reordered, es), where);
  }

  void release() noexcept {
    for (auto& k : ranks_) {
      k.unit.reset();
      if (k.dev) (void)cudaSetDevice(k.dev->ordinal());
      for (void* p : {k.pl_buf, k.ws, static_cast<void*>(k.x), static_cast<void*>(k.out), static_cast<void*>(k.xp),
                      static_cast<void*>(k.yp), static_cast<void*>(k.ids), static_cast<void*>(k.weights),
                      static_cast<void*>(k.d_counts), static_cast<void*>(k.stage), static_cast<void*>(k.d_pieces)})
        if (p) (void)cudaFree(p);
      if (k.h_counts) (void)cudaFreeHost(k.h_counts);
      if (k.h_pieces) (void)cudaFreeHost(k.h_pieces);
      if (k.comm) (void)cudaStreamDestroy(k.comm);
      if (k.dev) {
        try {
          const auto scope = k.dev->activate();
          if (k.routed) (void)cudaEventDestroy(k.routed);
          if (k.reordered) (void)cudaEventDestroy(k.reordered);
        } catch (...) {
        }
      }
    }
    ranks_.clear();
  }

  moe_shape shape_;
  std::int32_t P_ = 0;
  std::vector<std::int32_t> first_slot_{};
  std::vector<rank> ranks_{};
  std::unique_ptr<detail::rank_threads> threads_{};  ///< one host thread per rank
};

}  // namespace gem::example
