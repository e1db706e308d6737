// gem/speed/layer_shape.hpp — layer_shape (hidden size, routed-expert intermediate size, dtype,
// experts, top-k) with the FLOP and byte counts of one expert's GEMMs, dtype names, and the shapes
// of common MoE models. Depends on gem/error.hpp and the standard library.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gem/error.hpp"

namespace gem {

/// The shape of one MoE layer's routed experts (SwiGLU experts: gate and up projections
/// hidden -> intermediate, then down intermediate -> hidden). `num_experts` and `top_k` are 0 when
/// not known; they are informational (checked against a trace by callers), not used by the cost
/// formulas. An aggregate: `layer_shape{.hidden = 4096, .intermediate = 14336}`.
struct layer_shape {
  std::int64_t hidden = 0;        ///< model (hidden) dimension
  std::int64_t intermediate = 0;  ///< one routed expert's intermediate dimension
  std::int32_t dtype_bytes = 2;   ///< bytes per weight and activation element (bf16 = 2)
  std::int32_t num_experts = 0;   ///< routed experts per layer; 0 = not given
  std::int32_t top_k = 0;         ///< routed experts per token; 0 = not given

  friend constexpr bool operator==(const layer_shape&, const layer_shape&) = default;

  /// Throws config_error naming the field that is wrong.
  void validate() const {
    if (hidden <= 0) throw config_error("layer_shape.hidden must be positive, got " + std::to_string(hidden));
    if (intermediate <= 0)
      throw config_error("layer_shape.intermediate must be positive, got " + std::to_string(intermediate));
    if (dtype_bytes != 1 && dtype_bytes != 2 && dtype_bytes != 4)
      throw config_error("layer_shape.dtype_bytes must be 1, 2 or 4, got " + std::to_string(dtype_bytes));
    if (num_experts < 0)
      throw config_error("layer_shape.num_experts must be non-negative (0 = not given), got " +
                         std::to_string(num_experts));
    if (top_k < 0 || (num_experts > 0 && top_k > num_experts))
      throw config_error("layer_shape.top_k must be in [0, num_experts], got " + std::to_string(top_k));
  }

  /// FLOPs per token row of the fused gate/up GEMM: 2 * hidden * (2 * intermediate).
  [[nodiscard]] constexpr double gate_up_flops_per_row() const noexcept {
    return 4.0 * static_cast<double>(hidden) * static_cast<double>(intermediate);
  }
  /// FLOPs per token row of the down GEMM: 2 * intermediate * hidden.
  [[nodiscard]] constexpr double down_flops_per_row() const noexcept {
    return 2.0 * static_cast<double>(hidden) * static_cast<double>(intermediate);
  }
  /// FLOPs per token row of one expert (both GEMMs): 6 * hidden * intermediate.
  [[nodiscard]] constexpr double flops_per_row() const noexcept {
    return gate_up_flops_per_row() + down_flops_per_row();
  }
  /// Bytes of one expert's weights: 3 * hidden * intermediate * dtype_bytes (gate, up, down).
  [[nodiscard]] constexpr double weight_bytes_per_expert() const noexcept {
    return 3.0 * static_cast<double>(hidden) * static_cast<double>(intermediate) * dtype_bytes;
  }
  /// Activation bytes per token row moved by the two GEMMs: gate/up reads hidden and writes
  /// 2 * intermediate, down reads intermediate and writes hidden: (2 * hidden + 3 * intermediate)
  /// * dtype_bytes. (SiLU-mul is taken as fused into the gate/up epilogue.)
  [[nodiscard]] constexpr double activation_bytes_per_row() const noexcept {
    return (2.0 * static_cast<double>(hidden) + 3.0 * static_cast<double>(intermediate)) * dtype_bytes;
  }
};

/// Bytes per element of a dtype name: "fp8"/"e4m3"/"e5m2" 1, "bf16"/"fp16" 2, "fp32" 4; throws
/// config_error naming the unknown dtype.
[[nodiscard]] inline std::int32_t dtype_bytes_of(std::string_view dtype) {
  if (dtype == "bf16" || dtype == "fp16") return 2;
  if (dtype == "fp32") return 4;
  if (dtype == "fp8" || dtype == "e4m3" || dtype == "e5m2") return 1;
  throw config_error("unknown dtype '" + std::string(dtype) + "' (known: bf16, fp16, fp32, fp8, e4m3, e5m2)");
}

/// Routed-expert shapes of common MoE models, in bf16 (from each model's config.json:
/// hidden_size and moe_intermediate_size / intermediate_size; shared experts are not routed and not
/// part of these shapes).
namespace shapes {
inline constexpr layer_shape mixtral_8x7b{.hidden = 4096, .intermediate = 14336, .dtype_bytes = 2, .num_experts = 8, .top_k = 2};
inline constexpr layer_shape deepseek_v2_lite{.hidden = 2048, .intermediate = 1408, .dtype_bytes = 2, .num_experts = 64, .top_k = 6};
inline constexpr layer_shape deepseek_v3{.hidden = 7168, .intermediate = 2048, .dtype_bytes = 2, .num_experts = 256, .top_k = 8};
inline constexpr layer_shape qwen3_30b_a3b{.hidden = 2048, .intermediate = 768, .dtype_bytes = 2, .num_experts = 128, .top_k = 8};
inline constexpr layer_shape olmoe{.hidden = 2048, .intermediate = 1024, .dtype_bytes = 2, .num_experts = 64, .top_k = 8};
}  // namespace shapes

/// A named shape, for command-line lookup.
struct named_layer_shape {
  std::string_view name;
  layer_shape shape;
};

/// The named shapes: "mixtral-8x7b", "deepseek-v2-lite", "deepseek-v3", "qwen3-30b-a3b", "olmoe".
[[nodiscard]] inline std::span<const named_layer_shape> named_layer_shapes() noexcept {
  static constexpr std::array<named_layer_shape, 5> all{{
      {"mixtral-8x7b", shapes::mixtral_8x7b},
      {"deepseek-v2-lite", shapes::deepseek_v2_lite},
      {"deepseek-v3", shapes::deepseek_v3},
      {"qwen3-30b-a3b", shapes::qwen3_30b_a3b},
      {"olmoe", shapes::olmoe},
  }};
  return all;
}

/// The shape called `name` (see named_layer_shapes); throws config_error listing the known names.
[[nodiscard]] inline layer_shape layer_shape_by_name(std::string_view name) {
  std::string known;
  for (const auto& s : named_layer_shapes()) {
    if (s.name == name) return s.shape;
    known += (known.empty() ? "" : ", ") + std::string(s.name);
  }
  throw config_error("unknown layer shape '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace gem
