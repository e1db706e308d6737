// gem/ids.hpp — strong id types for layers, experts, GPUs and slots, so that swapping two ids in a
// call does not compile silently. Depends on the standard library only.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace gem {

/// A typed integer id. `Tag` makes ids of different kinds distinct types; the value is public so
/// that indexing stays cheap and explicit (`counts[e.value]`).
template <class Tag>
struct strong_id {
  std::int32_t value{0};

  constexpr strong_id() = default;
  constexpr explicit strong_id(std::int32_t v) noexcept : value(v) {}

  friend constexpr auto operator<=>(strong_id, strong_id) = default;
  friend std::ostream& operator<<(std::ostream& os, strong_id id) { return os << id.value; }
};

struct layer_tag {};
struct expert_tag {};
struct gpu_tag {};
struct slot_tag {};

using layer_id = strong_id<layer_tag>;    ///< MoE layer index within a trace or placement.
using expert_id = strong_id<expert_tag>;  ///< logical expert index in [0, num_experts).
using gpu_id = strong_id<gpu_tag>;        ///< device (or emulated device) index in [0, num_gpus).
using slot_id = strong_id<slot_tag>;      ///< physical expert slot index in [0, num_slots).

}  // namespace gem

template <class Tag>
struct std::hash<gem::strong_id<Tag>> {
  std::size_t operator()(gem::strong_id<Tag> id) const noexcept {
    return std::hash<std::int32_t>{}(id.value);
  }
};
