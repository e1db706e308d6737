// examples/moe_layer/moe_layer.cuh — one MoE layer in lock-step over execution devices (whole GPUs
// or SM partitions of one, gem/cuda/partition.cuh) for a placement: route (top-k ids and weights
// of a step) to the placement's slots, permute, dispatch each device its slots' rows, run the fused
// expert FFN per device, return the rows, combine; a host barrier ends every step, and each
// device's expert phase is timed with CUDA events. Depends on gem/cuda/{routing,permute,profiler}.cuh
// and gem/placement.hpp.
//
// Dispatch here is a device-to-device copy inside one GPU (partitions hold local copies of their
// slots' weights). On several real GPUs, ep_layer.cuh moves the rows with NCCL instead (one rank
// per GPU, each holding a slice of the step's tokens); it shares this file's slot tables and helpers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gem/cuda/partition.cuh"
#include "gem/cuda/permute.cuh"
#include "gem/cuda/profiler.cuh"
#include "gem/cuda/routing.cuh"
#include "gem/error.hpp"
#include "gem/placement.hpp"

namespace gem::example {

using cuda::bf16;

/// The layer's shape and capacity. An aggregate.
struct moe_shape {
  std::int32_t hidden = 2048;
  std::int32_t inter = 1408;
  std::int32_t num_experts = 64;
  std::int32_t top_k = 6;
  std::int32_t max_tokens = 1024;  ///< most tokens one step may hold
};

/// How devices run a step: all at once, or one at a time (each alone on the GPU).
enum class run_mode { concurrent, isolated };

/// What one step took.
struct step_timing {
  std::vector<double> device_seconds{};  ///< [G] each device's expert phase (events on its stream)
  std::vector<std::int32_t> device_rows{};
  double latency = 0;                    ///< lock-step latency: the slowest device's seconds
};

/// The model's expert weights on the GPU: w13 [E][2I][H] (gate rows then up rows), w2 [E][H][I].
struct expert_bank {
  const bf16* w13 = nullptr;
  const bf16* w2 = nullptr;
};

/// cudaMalloc of at least 256 bytes on the current device; throws gem::cuda_error naming `what`.
inline void* device_alloc(std::size_t bytes, const std::string& what = "moe_layer: cudaMalloc") {
  void* p = nullptr;
  cuda::detail::runtime_check(cudaMalloc(&p, std::max<std::size_t>(bytes, 256)), what);
  return p;
}

/// Throws gem::cuda_error "<what> failed: <code> (<CUDA error>)" unless `s` is a success.
inline void check_status(cuda::status s, const std::string& what) {
  if (s) return;
  throw gem::cuda_error(what + " failed: " + cuda::to_string(s.code) +
                        (s.cuda != cudaSuccess ? std::string(" (") + cudaGetErrorString(s.cuda) + ")" : ""));
}

/// A layer's placement tables with slots renumbered device-major (GPU 0's slots first, each GPU's
/// slots in the placement's order), so that a GPU's rows are one contiguous range of the permuted
/// buffer. order[i] = the placement's slot behind new slot i; GPU g holds [first_slot[g], first_slot[g+1]).
struct device_major {
  cuda::placement_tables tables{};
  std::vector<std::int32_t> order{};
  std::vector<std::int32_t> first_slot{};
};

[[nodiscard]] inline device_major device_major_tables(const gem::placement& plc, gem::layer_id layer) {
  device_major d;
  d.tables = cuda::make_placement_tables(plc, layer);
  auto& t = d.tables;
  std::vector<std::int32_t> renum(static_cast<std::size_t>(t.num_slots));
  d.first_slot.push_back(0);
  for (std::int32_t g = 0; g < plc.num_gpus(); ++g) {
    for (auto p : plc.gpu_slots(layer, gem::gpu_id{g})) {
      renum[static_cast<std::size_t>(p)] = static_cast<std::int32_t>(d.order.size());
      d.order.push_back(p);
    }
    d.first_slot.push_back(static_cast<std::int32_t>(d.order.size()));
  }
  for (auto& s : t.log2phy)
    if (s >= 0) s = renum[static_cast<std::size_t>(s)];
  std::vector<std::int32_t> slot_gpu(static_cast<std::size_t>(t.num_slots));
  for (std::size_t i = 0; i < slot_gpu.size(); ++i) slot_gpu[i] = t.slot_gpu[static_cast<std::size_t>(d.order[i])];
  t.slot_gpu = std::move(slot_gpu);
  return d;
}

/// Copies the weights of the experts behind `slots` (the placement's slot ids, in the unit's slot
/// order) from `bank` into `unit`; the bank may live on another GPU of the host (unified addressing).
inline void load_slot_weights(cuda::device_experts& unit, const expert_bank& bank, const gem::layer_placement& lp,
                              std::span<const std::int32_t> slots) {
  const auto I = static_cast<std::size_t>(unit.config().inter), H = static_cast<std::size_t>(unit.config().hidden);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto e = static_cast<std::size_t>(lp.phy2log[static_cast<std::size_t>(slots[i])]);
    cuda::detail::runtime_check(cudaMemcpy(unit.w13() + i * 2 * I * H, bank.w13 + e * 2 * I * H, 2 * I * H * sizeof(bf16),
                                           cudaMemcpyDefault),
                                "copying expert weights");
    cuda::detail::runtime_check(
        cudaMemcpy(unit.w2() + i * H * I, bank.w2 + e * H * I, H * I * sizeof(bf16), cudaMemcpyDefault),
        "copying expert weights");
  }
}

/// One layer of `plc` over `devices` (device g runs the placement's GPU g). Setup allocates and
/// copies every slot's weights from `bank` into its device's buffer; run_step then allocates nothing.
class moe_layer {
 public:
  moe_layer(std::span<const cuda::exec_device> devices, const cuda::exec_device& coordinator, const gem::placement& plc,
            gem::layer_id layer, const moe_shape& shape, const expert_bank& bank,
            cuda::gemm_path path = cuda::gemm_path::automatic)
      : coord_(&coordinator), shape_(shape) {
    if (static_cast<std::int32_t>(devices.size()) != plc.num_gpus())
      throw gem::config_error("moe_layer: " + std::to_string(devices.size()) + " devices for a placement on " +
                              std::to_string(plc.num_gpus()) + " GPUs");
    if (plc.num_experts() != shape.num_experts)
      throw gem::config_error("moe_layer: the placement has " + std::to_string(plc.num_experts()) +
                              " experts, the layer " + std::to_string(shape.num_experts));
    if (shape.top_k <= 0 || shape.top_k > shape.num_experts || shape.max_tokens <= 0)
      throw gem::config_error("moe_layer: top_k must be in [1, num_experts] and max_tokens positive");
    auto dm = device_major_tables(plc, layer);
    auto& t = dm.tables;
    const auto& order = dm.order;
    first_slot_ = dm.first_slot;
    const auto P = t.num_slots, G = plc.num_gpus();
    const auto& lp = plc.layer(layer);

    cuda::detail::runtime_check(cudaSetDevice(coordinator.ordinal()), "moe_layer: cudaSetDevice");
    pl_buf_ = device_alloc(cuda::placement_bytes(t));
    cfg_ = cuda::routing_config{.num_tokens = shape.max_tokens, .top_k = shape.top_k, .num_experts = shape.num_experts, .tile_rows = 1};
    check_status(cuda::upload_placement(t, pl_buf_, cuda::placement_bytes(t), &cfg_.placement), "moe_layer: upload_placement");
    if (auto s = cuda::can_implement(cfg_); !s) throw gem::config_error("moe_layer: routing cannot run this shape");
    ws_bytes_ = cuda::routing_workspace_size(cfg_);
    ws_ = device_alloc(ws_bytes_);
    const auto cap = static_cast<std::size_t>(cfg_.capacity_rows());
    xp_ = static_cast<bf16*>(device_alloc(cap * shape.hidden * sizeof(bf16)));
    yp_ = static_cast<bf16*>(device_alloc(cap * shape.hidden * sizeof(bf16)));
    void* h = nullptr;
    cuda::detail::runtime_check(cudaHostAlloc(&h, (2 * static_cast<std::size_t>(P) + 1) * 4, cudaHostAllocPortable),
                                "moe_layer: cudaHostAlloc");
    h_sizes_ = static_cast<std::int32_t*>(h);

    for (std::int32_t g = 0; g < G; ++g) {
      const auto slots = first_slot_[g + 1] - first_slot_[g];
      if (slots == 0) throw gem::config_error("moe_layer: GPU " + std::to_string(g) + " holds no slot");
      units_.push_back(std::make_unique<cuda::device_experts>(
          devices[static_cast<std::size_t>(g)],
          cuda::device_experts_config{.hidden = shape.hidden, .inter = shape.inter, .num_slots = slots,
                                      .max_rows = static_cast<std::int32_t>(cap), .path = path}));
      load_slot_weights(*units_.back(), bank, lp, std::span(order).subspan(first_slot_[g], slots));
    }
  }
  moe_layer(const moe_layer&) = delete;
  moe_layer& operator=(const moe_layer&) = delete;
  ~moe_layer() {
    units_.clear();
    for (void* p : {pl_buf_, ws_, static_cast<void*>(xp_), static_cast<void*>(yp_)})
      if (p) (void)cudaFree(p);
    if (h_sizes_) (void)cudaFreeHost(h_sizes_);
  }

  [[nodiscard]] std::int32_t num_devices() const noexcept { return static_cast<std::int32_t>(units_.size()); }

  /// Runs one step of `num_tokens` tokens: ids and weights [T][k] (device, int32 / float), x [T][H]
  /// (device bf16); writes out [T][H]. Blocks until the step is done (the lock-step barrier).
  /// Throws gem::cuda_error naming the stage that failed, config_error for T out of range, and
  /// placement_error when ids fall outside [0, E).
  step_timing run_step(const std::int32_t* ids, const float* weights, std::int32_t num_tokens, const bf16* x, bf16* out,
                       run_mode mode) {
    if (num_tokens <= 0 || num_tokens > shape_.max_tokens)
      throw gem::config_error("moe_layer::run_step: " + std::to_string(num_tokens) + " tokens, capacity " +
                              std::to_string(shape_.max_tokens));
    auto cfg = cfg_;
    cfg.num_tokens = num_tokens;
    cuda::routing_layout layout;
    check_status(cuda::bind_routing_layout(cfg, ws_, ws_bytes_, &layout), "moe_layer: bind_routing_layout");
    const auto cs = coord_->stream();
    const auto H = static_cast<std::size_t>(shape_.hidden);
    {
      const auto scope = coord_->activate();
      check_status(cuda::routing_layout_async(cfg, ids, weights, layout, cs), "moe_layer: routing_layout_async");
      check_status(cuda::permute_async(layout, shape_.top_k, x, H * sizeof(bf16), xp_, cs), "moe_layer: permute_async");
      check_status(cuda::copy_group_sizes_async(layout, h_sizes_, cs), "moe_layer: copy_group_sizes_async");
      if (auto s = cuda::check_routing(layout, cs); !s) {  // synchronizes the coordinator
        if (s.code == cuda::status_code::ids_out_of_range)
          throw gem::placement_error("moe_layer::run_step: " + std::to_string(s.detail) + " routed ids outside [0, " +
                                     std::to_string(shape_.num_experts) + ")");
        check_status(s, "moe_layer: check_routing");
      }
    }
    const auto P = layout.num_groups;
    const std::int32_t* counts = h_sizes_;
    const std::int32_t* offsets = h_sizes_ + P;
    step_timing t;
    const auto G = num_devices();
    std::vector<std::int32_t> begin(static_cast<std::size_t>(G));
    for (std::int32_t g = 0; g < G; ++g) {
      auto& u = *units_[static_cast<std::size_t>(g)];
      const auto f = first_slot_[g], n = first_slot_[g + 1] - f;
      begin[g] = offsets[f];
      auto c = u.host_counts();
      auto o = u.host_offsets();
      for (std::int32_t i = 0; i < n; ++i) {
        c[i] = counts[f + i];
        o[i] = offsets[f + i] - offsets[f];
      }
      o[n] = offsets[f + n] - offsets[f];
      t.device_rows.push_back(o[n]);
    }
    const auto launch = [&](std::int32_t g) {
      auto& u = *units_[static_cast<std::size_t>(g)];
      const auto b = static_cast<std::size_t>(begin[g]) * H;
      check_status(u.enqueue_async(t.device_rows[g], xp_ + b, yp_ + b), "moe_layer: expert phase of " + u.device().name());
    };
    t.device_seconds.assign(static_cast<std::size_t>(G), 0.0);
    if (mode == run_mode::concurrent) {
      for (std::int32_t g = 0; g < G; ++g) launch(g);
      for (std::int32_t g = 0; g < G; ++g) t.device_seconds[g] = units_[g]->last_seconds();
    } else {
      for (std::int32_t g = 0; g < G; ++g) {
        launch(g);
        t.device_seconds[g] = units_[g]->last_seconds();
      }
    }
    for (std::int32_t g = 0; g < G; ++g)  // every device's rows are back before the combine
      cuda::detail::runtime_check(cudaStreamSynchronize(units_[g]->device().stream()), "moe_layer: device barrier");
    {
      const auto scope = coord_->activate();
      check_status(cuda::combine_async(layout, num_tokens, shape_.top_k, weights, yp_, shape_.hidden, nullptr, out, cs),
            "moe_layer: combine_async");
      cuda::detail::runtime_check(cudaStreamSynchronize(cs), "moe_layer: combine");
    }
    t.latency = *std::max_element(t.device_seconds.begin(), t.device_seconds.end());
    return t;
  }

 private:
  const cuda::exec_device* coord_;
  moe_shape shape_;
  cuda::routing_config cfg_{};
  void* pl_buf_ = nullptr;
  void* ws_ = nullptr;
  std::size_t ws_bytes_ = 0;
  bf16* xp_ = nullptr;
  bf16* yp_ = nullptr;
  std::int32_t* h_sizes_ = nullptr;
  std::vector<std::int32_t> first_slot_{};
  std::vector<std::unique_ptr<cuda::device_experts>> units_{};
};

/// The placement that puts every expert on one GPU (the single-device reference).
[[nodiscard]] inline gem::placement single_device_placement(std::int32_t num_experts, std::int32_t num_layers = 1) {
  std::vector<std::vector<std::int32_t>> phy2log(static_cast<std::size_t>(num_layers));
  for (auto& row : phy2log)
    for (std::int32_t e = 0; e < num_experts; ++e) row.push_back(e);
  return gem::placement::from_phy2log(gem::cluster_spec{.num_gpus = 1, .slots_per_gpu = {num_experts}}, num_experts,
                                      phy2log);
}

}  // namespace gem::example
