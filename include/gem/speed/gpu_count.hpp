// gem/speed/gpu_count.hpp — how many GPUs a speed model describes (models with per-GPU data expose
// `num_gpus()`; the others fit any count) and a one-time check that a model covers a cluster.
// Depends on gem/speed/speed_model.hpp and gem/error.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>

#include "gem/error.hpp"
#include "gem/speed/speed_model.hpp"

namespace gem {

/// A speed model that holds data for a fixed number of GPUs (`scaled`, `table`, `roofline`).
template <class M>
concept gpu_bounded_speed_model = speed_model<M> && requires(const M& m) {
  { m.num_gpus() } -> std::convertible_to<std::int32_t>;
};

/// GPUs `model` describes: its `num_gpus()`, or 0 when it fits any number of GPUs (`uniform`, or a
/// user model without `num_gpus()`).
template <speed_model M>
[[nodiscard]] constexpr std::int32_t model_gpus(const M& model) noexcept {
  if constexpr (gpu_bounded_speed_model<M>) {
    return static_cast<std::int32_t>(model.num_gpus());
  } else {
    (void)model;
    return 0;
  }
}

/// Throws config_error unless `model` can answer for GPUs 0 .. num_gpus-1. Call once before a loop
/// of `seconds` calls: `seconds` itself does not check its GPU id (it is on the hot path).
template <speed_model M>
void require_gpus(const M& model, std::int32_t num_gpus) {
  const std::int32_t have = model_gpus(model);
  if (num_gpus < 0) throw config_error("speed model: negative GPU count " + std::to_string(num_gpus));
  if (have != 0 && have < num_gpus)
    throw config_error("speed model describes " + std::to_string(have) + " GPUs, but " +
                       std::to_string(num_gpus) + " are asked for (GPU " + std::to_string(have) +
                       " has no data)");
}

}  // namespace gem
