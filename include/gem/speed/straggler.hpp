// gem/speed/straggler.hpp — lock-step time of one step of one layer under any speed model: per-GPU
// seconds and their maximum (the straggler). The evaluator builds on these.
// Depends on gem/speed/speed_model.hpp, gem/speed/gpu_count.hpp, gem/error.hpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "gem/error.hpp"
#include "gem/speed/gpu_count.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// Seconds each GPU takes for its work in one step: out[g] = model.seconds(gpu_id{g}, per_gpu[g]).
/// Returns the straggler time, max over g (0 for no GPUs). Allocation-free.
/// Throws config_error when `out` and `per_gpu` differ in size or the model has data for fewer
/// GPUs than `per_gpu` holds (checked once per call, before any work).
template <speed_model M>
double step_gpu_seconds(const M& model, std::span<const work> per_gpu, std::span<double> out) {
  if (out.size() != per_gpu.size())
    throw config_error("step_gpu_seconds: " + std::to_string(out.size()) + " outputs for " +
                       std::to_string(per_gpu.size()) + " GPUs");
  require_gpus(model, static_cast<std::int32_t>(per_gpu.size()));
  double worst = 0;
  for (std::size_t g = 0; g < per_gpu.size(); ++g) {
    out[g] = static_cast<double>(model.seconds(gpu_id{static_cast<std::int32_t>(g)}, per_gpu[g]));
    worst = std::max(worst, out[g]);
  }
  return worst;
}

/// Straggler time of one step: max over GPUs g of model.seconds(gpu_id{g}, per_gpu[g]) (0 for no
/// GPUs): a lock-step layer ends when its slowest GPU ends. Allocation-free; throws config_error
/// when the model has data for fewer GPUs than `per_gpu` holds.
template <speed_model M>
double step_straggler_seconds(const M& model, std::span<const work> per_gpu) {
  require_gpus(model, static_cast<std::int32_t>(per_gpu.size()));
  double worst = 0;
  for (std::size_t g = 0; g < per_gpu.size(); ++g)
    worst = std::max(worst, static_cast<double>(model.seconds(gpu_id{static_cast<std::int32_t>(g)}, per_gpu[g])));
  return worst;
}

}  // namespace gem
