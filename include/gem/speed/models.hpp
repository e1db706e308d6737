// gem/speed/models.hpp — every speed model (uniform, scaled, table, roofline and the H200 default),
// layer shapes, variability setups and the step helpers, in one include. Host-only, standard library
// only; speed profiles (JSON) are in gem/speed/profile.hpp, which needs nlohmann-json.
#pragma once

#include "gem/speed/gpu_count.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/speed_model.hpp"
#include "gem/speed/straggler.hpp"
#include "gem/speed/table.hpp"
#include "gem/speed/uniform.hpp"
#include "gem/speed/variability.hpp"

namespace gem {
static_assert(speed_model<uniform> && speed_model<table> && speed_model<roofline>);
static_assert(speed_model<scaled<table>> && speed_model<scaled<roofline>>);
}  // namespace gem
