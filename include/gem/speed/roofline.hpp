// gem/speed/roofline.hpp — `roofline`: per-GPU peak FLOP/s and bytes/s against the FLOPs and bytes
// of a layer's expert GEMMs, and `h200_roofline`, the documented default for the H200 until measured
// tables exist. Depends on gem/speed/layer_shape.hpp, gem/speed/speed_model.hpp, gem/error.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gem/error.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// The ceilings of one GPU: peak dense math rate (FLOP/s) for the layer's dtype and peak memory
/// bandwidth (bytes/s).
struct gpu_peak {
  double flops_per_second = 0;
  double bytes_per_second = 0;
};

/// Roofline time of one GPU's expert work for a layer shape. A step runs two dependent grouped
/// GEMMs over the GPU's active experts, and each is bound by the slower of math and memory:
///   gate/up: flops = 4*h*i * R            bytes = d * (2*h*i * A + (h + 2*i) * R)
///   down:    flops = 2*h*i * R            bytes = d * (  h*i * A + (i + h)   * R)
///   seconds = max(gate/up flops / P, gate/up bytes / B) + max(down flops / P, down bytes / B)
/// with h = hidden, i = intermediate, d = dtype bytes, R = token rows over all local experts, A =
/// active experts (rows > 0; each reads its weights once), P and B the GPU's peaks.
/// Why this combination: one grouped launch overlaps one expert's weight reads with another
/// expert's math, so within a GEMM the GPU is limited by its total FLOPs or its total bytes,
/// whichever takes longer (max); the down GEMM needs the gate/up output, so the two add. This
/// captures decode (few rows: every active expert's weights must stream in, time ~ A) and prefill
/// (many rows: time ~ R). It ignores tile quantization and launch overheads, which `table` captures.
class roofline {
 public:
  /// Throws config_error when `shape` is invalid, `gpus` is empty, or a peak is not finite and
  /// positive (naming gpus[g]).
  roofline(layer_shape shape, std::vector<gpu_peak> gpus) : shape_(shape), gpus_(std::move(gpus)) {
    shape_.validate();
    if (gpus_.empty()) throw config_error("roofline: gpus is empty (one peak per GPU is needed)");
    const double h = static_cast<double>(shape_.hidden);
    const double i = static_cast<double>(shape_.intermediate);
    const double d = shape_.dtype_bytes;
    coeffs_.reserve(gpus_.size());
    for (std::size_t g = 0; g < gpus_.size(); ++g) {
      const auto& p = gpus_[g];
      if (!std::isfinite(p.flops_per_second) || !(p.flops_per_second > 0))
        throw config_error("roofline: gpus[" + std::to_string(g) +
                           "].flops_per_second must be finite and positive, got " +
                           std::to_string(p.flops_per_second));
      if (!std::isfinite(p.bytes_per_second) || !(p.bytes_per_second > 0))
        throw config_error("roofline: gpus[" + std::to_string(g) +
                           "].bytes_per_second must be finite and positive, got " +
                           std::to_string(p.bytes_per_second));
      // Divide once here so that `seconds` only multiplies and adds.
      coeffs_.push_back({.gate_up_math_per_row = 4 * h * i / p.flops_per_second,
                         .gate_up_bytes_per_active = d * 2 * h * i / p.bytes_per_second,
                         .gate_up_bytes_per_row = d * (h + 2 * i) / p.bytes_per_second,
                         .down_math_per_row = 2 * h * i / p.flops_per_second,
                         .down_bytes_per_active = d * h * i / p.bytes_per_second,
                         .down_bytes_per_row = d * (i + h) / p.bytes_per_second});
    }
  }

  /// Seconds GPU `gpu` takes for `w`: O(local experts), allocation-free.
  /// Precondition: 0 <= gpu.value < num_gpus() (see require_gpus).
  [[nodiscard]] double seconds(gpu_id gpu, const work& w) const noexcept {
    double rows = 0;
    double active = 0;
    for (const double r : w.rows) {
      rows += r;
      active += r > 0 ? 1.0 : 0.0;
    }
    return seconds_from_totals(gpu, rows, active);
  }

  /// The same time from a GPU's totals: `rows` token rows over `active_experts` experts with rows
  /// > 0. O(1), for searches that keep per-GPU totals up to date as experts move.
  [[nodiscard]] double seconds_from_totals(gpu_id gpu, double rows, double active_experts) const noexcept {
    const auto& c = coeffs_[static_cast<std::size_t>(gpu.value)];
    const double gate_up = std::max(rows * c.gate_up_math_per_row,
                                    active_experts * c.gate_up_bytes_per_active + rows * c.gate_up_bytes_per_row);
    const double down = std::max(rows * c.down_math_per_row,
                                 active_experts * c.down_bytes_per_active + rows * c.down_bytes_per_row);
    return gate_up + down;
  }

  [[nodiscard]] std::int32_t num_gpus() const noexcept { return static_cast<std::int32_t>(gpus_.size()); }
  [[nodiscard]] const layer_shape& shape() const noexcept { return shape_; }
  [[nodiscard]] std::span<const gpu_peak> gpus() const noexcept { return gpus_; }

 private:
  struct coefficients {
    double gate_up_math_per_row;      // s per row
    double gate_up_bytes_per_active;  // s per active expert
    double gate_up_bytes_per_row;     // s per row
    double down_math_per_row;
    double down_bytes_per_active;
    double down_bytes_per_row;
  };
  layer_shape shape_;
  std::vector<gpu_peak> gpus_;
  std::vector<coefficients> coeffs_;
};
static_assert(speed_model<roofline>);

/// Measured ceilings of one NVIDIA H200 (141 GB HBM3e, 132 SMs, 700 W): dense bf16 GEMM
/// through cuBLAS reaches about 790 TFLOP/s (data sheet: 989) and a device-to-device copy about
/// 4.3 TB/s counting bytes read plus written (data sheet: 4.8). Re-measured 2026-11-29 on this
/// project's H200: cublasGemmEx bf16 in, fp32 accumulate, 8192^3, 50 launches after 5 warm-up, three
/// rounds: 894, 759, 788 TFLOP/s (the first round before clocks settle); cudaMemcpy device to device
/// of 4 GiB, 10 copies, three rounds: 4.30, 4.29, 4.29 TB/s. Achieved, not data-sheet, rates: a
/// roofline on data-sheet peaks would promise times no kernel reaches.
inline constexpr gpu_peak h200_peak{.flops_per_second = 790e12, .bytes_per_second = 4.3e12};

/// The default speed model until measured H200 tables exist: `num_gpus` identical H200s (`h200_peak`)
/// for `shape`. The bf16 math peak is used whatever `shape.dtype_bytes` says (fp8 math would be
/// about twice as fast; that rate has not been measured here). Combine with `scale` for variability.
/// Throws config_error when `shape` is invalid or num_gpus < 1.
[[nodiscard]] inline roofline h200_roofline(const layer_shape& shape, std::int32_t num_gpus) {
  if (num_gpus < 1) throw config_error("h200_roofline: num_gpus must be positive, got " + std::to_string(num_gpus));
  return roofline(shape, std::vector<gpu_peak>(static_cast<std::size_t>(num_gpus), h200_peak));
}

}  // namespace gem
