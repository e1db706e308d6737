// gem/speed/scaled.hpp — `scaled<Base>`: one time multiplier per GPU over any base speed model
// (how GPU variability enters every other model), and `scale`, which folds a scaled model's
// factors into new ones. Depends on gem/speed/speed_model.hpp, gem/speed/gpu_count.hpp, gem/error.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gem/error.hpp"
#include "gem/speed/gpu_count.hpp"
#include "gem/speed/speed_model.hpp"
#include "gem/speed/uniform.hpp"

namespace gem {

/// GPU g takes `factors[g]` times as long as `Base` says:
///   seconds(g, w) = factors[g] * base.seconds(g, w).
/// A factor is a TIME MULTIPLIER (slowdown): 1.277 means 27.7% slower than the base, 0.97 means 3%
/// faster. Factors multiply whole step times because the measured variability is per GPU and
/// workload-wide (clock, power and thermal limits slow every kernel of a GPU alike); see
/// gem/speed/variability.hpp for the named setups.
/// Scaled over scaled composes: `scaled<scaled<B>>{scaled<B>{b, f1}, f2}` gives
/// f2[g] * f1[g] * b.seconds(g, w), and `scale(scaled<B>{b, f1}, f2)` returns the same model flattened
/// into a `scaled<B>` with factors f1[g] * f2[g].
template <speed_model Base>
class scaled {
 public:
  /// Throws config_error when `factors` is empty, a factor is not finite and positive, or `base`
  /// holds data for a different number of GPUs.
  scaled(Base base, std::vector<double> factors) : base_(std::move(base)), factors_(std::move(factors)) {
    if (factors_.empty()) throw config_error("scaled: factors is empty (one factor per GPU is needed)");
    for (std::size_t g = 0; g < factors_.size(); ++g)
      if (!std::isfinite(factors_[g]) || !(factors_[g] > 0))
        throw config_error("scaled: factors[" + std::to_string(g) + "] must be finite and positive, got " +
                           std::to_string(factors_[g]));
    const std::int32_t base_gpus = model_gpus(base_);
    if (base_gpus != 0 && base_gpus != num_gpus())
      throw config_error("scaled: " + std::to_string(factors_.size()) + " factors over a base model of " +
                         std::to_string(base_gpus) + " GPUs");
  }

  /// Seconds GPU `gpu` takes for `w`. Precondition: 0 <= gpu.value < num_gpus() (see require_gpus).
  [[nodiscard]] double seconds(gpu_id gpu, const work& w) const
      noexcept(noexcept(std::declval<const Base&>().seconds(gpu, w))) {
    return factors_[static_cast<std::size_t>(gpu.value)] * base_.seconds(gpu, w);
  }

  [[nodiscard]] std::int32_t num_gpus() const noexcept { return static_cast<std::int32_t>(factors_.size()); }
  [[nodiscard]] double factor(gpu_id gpu) const { return factors_.at(static_cast<std::size_t>(gpu.value)); }
  [[nodiscard]] std::span<const double> factors() const noexcept { return factors_; }
  [[nodiscard]] const Base& base() const noexcept { return base_; }

 private:
  Base base_;
  std::vector<double> factors_;
};
static_assert(speed_model<scaled<uniform>>);
static_assert(speed_model<scaled<scaled<uniform>>>);

/// `base` with GPU g slowed by `factors[g]` (a time multiplier).
/// (The deduced return type lets a non-conforming Base fail on the speed_model constraint, with a
/// message naming the concept, rather than on the return type.)
template <speed_model Base>
[[nodiscard]] auto scale(Base base, std::vector<double> factors) {
  return scaled<Base>(std::move(base), std::move(factors));
}

/// Scaled over scaled, flattened: the result has factors `model.factors()[g] * factors[g]` over
/// `model.base()`, so its seconds equal those of the nested `scaled<scaled<Base>>`. Throws
/// config_error when the factor counts differ.
template <speed_model Base>
[[nodiscard]] scaled<Base> scale(const scaled<Base>& model, std::vector<double> factors) {
  if (static_cast<std::int32_t>(factors.size()) != model.num_gpus())
    throw config_error("scale: " + std::to_string(factors.size()) + " factors over a scaled model of " +
                       std::to_string(model.num_gpus()) + " GPUs");
  for (std::size_t g = 0; g < factors.size(); ++g) factors[g] *= model.factors()[g];
  return scaled<Base>(model.base(), std::move(factors));
}

}  // namespace gem
