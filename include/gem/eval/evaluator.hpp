// gem/eval/evaluator.hpp — replays trace steps through (placement, speed model): per step the
// per-GPU seconds and the straggler, summaries (mean, p50, p99), the fluid lower bound and the ratio
// to it, and the fit / held-out split of a trace's steps.
// Depends on gem/placement.hpp, gem/trace.hpp and gem/speed/speed_model.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "gem/error.hpp"
#include "gem/placement.hpp"
#include "gem/speed/speed_model.hpp"
#include "gem/trace.hpp"

namespace gem {

/// Mean and percentiles of a series of seconds. Percentiles interpolate linearly between order
/// statistics (numpy's default): p = q-quantile at position q * (n - 1) of the sorted values.
struct latency_summary {
  double mean = 0, p50 = 0, p99 = 0, max = 0;

  [[nodiscard]] static latency_summary of(std::vector<double> v) {
    latency_summary s;
    if (v.empty()) return s;
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    std::sort(v.begin(), v.end());
    const auto q = [&](double f) {
      const double pos = f * static_cast<double>(v.size() - 1);
      const auto i = static_cast<std::size_t>(pos);
      const double frac = pos - static_cast<double>(i);
      return i + 1 < v.size() ? v[i] + frac * (v[i + 1] - v[i]) : v[i];
    };
    s.p50 = q(0.5);
    s.p99 = q(0.99);
    s.max = v.back();
    return s;
  }
};

/// One layer replayed over S steps on G GPUs.
struct layer_replay {
  std::int32_t num_gpus = 0;
  std::vector<double> gpu_seconds{};  ///< [S][G] row-major: seconds GPU g spends in step s
  std::vector<double> straggler{};    ///< [S]: max over GPUs
  std::vector<double> bound{};        ///< [S]: fluid lower bound (see fluid_bound)
  latency_summary summary{};          ///< of straggler
  double mean_bound = 0;              ///< mean of bound
};

/// A placement replayed over the steps of a trace: per layer, and the model's total per step (the
/// layers run one after another, so step latency is the sum of the layers' stragglers).
struct evaluation {
  std::vector<layer_replay> layers{};
  std::vector<double> straggler{};  ///< [S]: sum over layers of the layer straggler
  std::vector<double> bound{};      ///< [S]: sum over layers of the layer bound
  latency_summary summary{};        ///< of straggler
  double mean_bound = 0;            ///< mean of bound
  /// summary.mean / mean_bound (>= 1 when the speed model meets the bound's two conditions).
  double ratio_to_bound = 0;
  /// mean straggler / mean over steps of the average GPU's seconds (1 = perfectly balanced).
  double imbalance = 0;
};

/// Seconds each GPU spends on one step: slot p receives counts[phy2log[p]] * share[p] rows, and a
/// GPU's work is the rows of its slots (in slot order). `counts` holds num_experts values.
/// Returns G values. Precondition: the layer belongs to a validated placement on num_gpus GPUs.
template <speed_model M>
[[nodiscard]] std::vector<double> gpu_seconds(const layer_placement& lp, std::int32_t num_gpus,
                                              std::span<const double> counts, const M& model) {
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(num_gpus));
  for (std::size_t p = 0; p < lp.phy2log.size(); ++p)
    rows[static_cast<std::size_t>(lp.slot_gpu[p])].push_back(counts[static_cast<std::size_t>(lp.phy2log[p])] * lp.share[p]);
  std::vector<double> out(static_cast<std::size_t>(num_gpus));
  for (std::int32_t g = 0; g < num_gpus; ++g)
    out[g] = rows[g].empty() ? 0.0 : static_cast<double>(model.seconds(gpu_id{g}, work{rows[g]}));
  return out;
}

// ---- the fluid lower bound ------------------------------------------------------------------------
//
// For one step with T token rows in total and A active experts (count > 0), no placement of any kind
// (any slots per GPU, any replicas, any shares) finishes sooner than
//
//     bound = max(B_tok, B_read)
//     B_tok  = min tau such that sum_g r_g(tau) >= T, r_g(tau) = most rows GPU g can run within tau
//              as ONE expert: max { r : seconds(g, [r]) <= tau }
//     B_read = min tau such that sum_g a_g(tau) >= A, a_g(tau) = most experts GPU g can hold active
//              within tau: max { a : seconds(g, [delta] * a) <= tau }, delta = smallest positive double
//
// Why it is valid. Take any placement; GPU g receives t_g rows (sum_g t_g = T) spread over a_g
// active slots (sum_g a_g >= A, since every active expert has at least one replica with rows; a
// replica with share 0 receives no rows and reads no weights). The bound needs two properties of
// the speed model, which hold for every model gem uses (uniform and scaled: seconds = rows / speed;
// roofline: max or sum of FLOP time and byte time with bytes = active experts x weight bytes + rows x
// activation bytes, optionally counted in GEMM tiles; table: per-GPU latency of tiles / active
// experts, interpolated between measured points, non-decreasing):
//   (a) monotone: seconds does not decrease when any row grows;
//   (b) merging: moving all rows of one slot onto another slot of the same GPU does not increase
//       seconds (the weight read of the emptied slot disappears; FLOPs and activation bytes stay;
//       ceil((a+b)/bm) <= ceil(a/bm) + ceil(b/bm) tiles).
// By (b) GPU g's seconds >= seconds(g, [t_g]) (all its rows merged into one expert, which still
// pays one weight read: no cost is dropped that a busy GPU could avoid); by (a) and since every
// active slot has >= delta rows, seconds >= seconds(g, [delta] * a_g). So if a placement finished
// within tau < bound, then t_g <= r_g(tau) and a_g <= a_g(tau) for all g, and either
// sum t_g < T or sum a_g < A: a contradiction. The per-active-expert weight-read cost is therefore
// counted at least once per busy GPU (in B_tok) and once per active expert (in B_read), which is the
// least any placement pays. With the linear models B_read is 0 and B_tok is T / sum of speeds.
// The search below is conservative: it returns the largest tau shown infeasible (within 1e-9
// relative), never more than the exact bound.

namespace detail {

/// Caches the two bound functions of one speed model on G GPUs (they depend only on T and A).
template <speed_model M>
class fluid_bound_cache {
 public:
  fluid_bound_cache(const M& model, std::int32_t num_gpus) : model_(&model), G_(num_gpus) {}

  [[nodiscard]] double bound(std::span<const double> counts) {
    double T = 0;
    std::int32_t A = 0;
    for (double c : counts) T += c, A += c > 0;
    if (T <= 0) return 0.0;
    auto it = tok_.find(T);
    if (it == tok_.end()) it = tok_.emplace(T, token_bound(T)).first;
    return std::max(it->second, read_bound(A));
  }

 private:
  [[nodiscard]] double one_expert(std::int32_t g, double r) const {
    const double row[1] = {r};
    return static_cast<double>(model_->seconds(gpu_id{g}, work{std::span<const double>(row, 1)}));
  }

  [[nodiscard]] double token_bound(double T) const {
    double hi = std::numeric_limits<double>::infinity();
    for (std::int32_t g = 0; g < G_; ++g) hi = std::min(hi, one_expert(g, T));
    double lo = 0;
    for (int it = 0; it < 64 && hi - lo > 1e-7 * hi; ++it) {
      const double tau = 0.5 * (lo + hi);
      double carried = 0;  // an over-estimate of sum_g r_g(tau)
      for (std::int32_t g = 0; g < G_ && carried < T; ++g) {
        if (one_expert(g, T) <= tau) {
          carried += T;
          continue;
        }
        double rl = 0, rh = T;  // seconds(rl) <= tau < seconds(rh)
        for (int k = 0; k < 64 && rh - rl > 1e-8 * T; ++k) {
          const double mid = 0.5 * (rl + rh);
          (one_expert(g, mid) <= tau ? rl : rh) = mid;
        }
        carried += rh;
      }
      (carried < T ? lo : hi) = tau;
    }
    return lo;
  }

  [[nodiscard]] double read_bound(std::int32_t A) {
    if (A <= 0) return 0.0;
    if (const auto it = read_memo_.find(A); it != read_memo_.end()) return it->second;
    if (A > max_a_) {
      read_.resize(static_cast<std::size_t>(G_));
      for (std::int32_t g = 0; g < G_; ++g) {
        auto& c = read_[g];
        c.clear();
        const std::vector<double> rows(static_cast<std::size_t>(A), std::numeric_limits<double>::min());
        for (std::int32_t a = 0; a <= A; ++a)
          c.push_back(a == 0 ? 0.0
                             : static_cast<double>(model_->seconds(gpu_id{g}, work{std::span<const double>(rows.data(), static_cast<std::size_t>(a))})));
      }
      max_a_ = A;
    }
    // The bound is one of the c_g[a] values: the least candidate tau at which the GPUs together
    // hold A experts.
    std::vector<double> cand;
    for (const auto& c : read_)
      for (std::int32_t a = 1; a <= A; ++a) cand.push_back(c[a]);
    std::sort(cand.begin(), cand.end());
    std::size_t lo = 0, hi = cand.size() - 1;
    const auto holds = [&](double tau) {
      std::int64_t n = 0;
      for (const auto& c : read_) {
        std::int32_t a = 0;
        while (a < A && c[a + 1] <= tau) ++a;
        n += a;
      }
      return n >= A;
    };
    while (lo < hi) {
      const auto mid = (lo + hi) / 2;
      if (holds(cand[mid])) hi = mid;
      else lo = mid + 1;
    }
    read_memo_.emplace(A, cand[lo]);
    return cand[lo];
  }

  const M* model_;
  std::int32_t G_;
  std::map<double, double> tok_{};
  std::map<std::int32_t, double> read_memo_{};
  std::vector<std::vector<double>> read_{};
  std::int32_t max_a_ = 0;
};

}  // namespace detail

/// The fluid lower bound of one step (expert counts `counts`) on `num_gpus` GPUs of `model`:
/// seconds no placement can beat (see the comment above for the two conditions on the model).
template <speed_model M>
[[nodiscard]] double fluid_bound(const M& model, std::int32_t num_gpus, std::span<const double> counts) {
  return detail::fluid_bound_cache<M>(model, num_gpus).bound(counts);
}

/// Replays one layer of `pl` over `steps` (each a row of num_experts counts). Throws
/// config_error when a row has the wrong length or a negative / non-finite count.
template <speed_model M>
[[nodiscard]] layer_replay replay_layer(const placement& pl, layer_id l, const std::vector<std::vector<double>>& steps,
                                        const M& model) {
  const auto G = pl.num_gpus();
  const auto& lp = pl.layer(l);
  layer_replay out;
  out.num_gpus = G;
  detail::fluid_bound_cache<M> cache(model, G);
  // Slots of each GPU, in slot order.
  std::vector<std::vector<std::int32_t>> slots(static_cast<std::size_t>(G));
  for (std::size_t p = 0; p < lp.slot_gpu.size(); ++p) slots[lp.slot_gpu[p]].push_back(static_cast<std::int32_t>(p));
  std::vector<double> rows;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const auto& c = steps[s];
    if (c.size() != static_cast<std::size_t>(pl.num_experts()))
      throw config_error("evaluate: layer " + std::to_string(l.value) + " step " + std::to_string(s) + " holds " +
                         std::to_string(c.size()) + " counts, the placement has " +
                         std::to_string(pl.num_experts()) + " experts");
    for (std::size_t e = 0; e < c.size(); ++e)
      if (!(c[e] >= 0) || !std::isfinite(c[e]))
        throw config_error("evaluate: layer " + std::to_string(l.value) + " step " + std::to_string(s) + " expert " +
                           std::to_string(e) + " has count " + std::to_string(c[e]));
    double worst = 0;
    for (std::int32_t g = 0; g < G; ++g) {
      rows.clear();
      for (auto p : slots[g]) rows.push_back(c[static_cast<std::size_t>(lp.phy2log[p])] * lp.share[p]);
      const double t = rows.empty() ? 0.0 : static_cast<double>(model.seconds(gpu_id{g}, work{rows}));
      out.gpu_seconds.push_back(t);
      worst = std::max(worst, t);
    }
    out.straggler.push_back(worst);
    out.bound.push_back(cache.bound(c));
  }
  out.summary = latency_summary::of(out.straggler);
  for (double b : out.bound) out.mean_bound += b;
  if (!out.bound.empty()) out.mean_bound /= static_cast<double>(out.bound.size());
  return out;
}

/// Replays every layer of `pl` over per-layer steps `steps[l][s][e]` (the same number of steps in
/// every layer) and sums the layers per step.
template <speed_model M>
[[nodiscard]] evaluation evaluate(const placement& pl, const std::vector<std::vector<std::vector<double>>>& steps,
                                  const M& model) {
  if (steps.size() != static_cast<std::size_t>(pl.num_layers()))
    throw config_error("evaluate: steps hold " + std::to_string(steps.size()) + " layers, the placement has " +
                       std::to_string(pl.num_layers()));
  evaluation ev;
  const auto S = steps.empty() ? std::size_t{0} : steps[0].size();
  ev.straggler.assign(S, 0.0);
  ev.bound.assign(S, 0.0);
  double avg_gpu = 0;
  for (std::int32_t l = 0; l < pl.num_layers(); ++l) {
    if (steps[l].size() != S)
      throw config_error("evaluate: layer " + std::to_string(l) + " holds " + std::to_string(steps[l].size()) +
                         " steps, layer 0 holds " + std::to_string(S));
    auto r = replay_layer(pl, layer_id{l}, steps[l], model);
    for (std::size_t s = 0; s < S; ++s) ev.straggler[s] += r.straggler[s], ev.bound[s] += r.bound[s];
    for (double t : r.gpu_seconds) avg_gpu += t;
    ev.layers.push_back(std::move(r));
  }
  ev.summary = latency_summary::of(ev.straggler);
  for (double b : ev.bound) ev.mean_bound += b;
  if (S > 0) {
    ev.mean_bound /= static_cast<double>(S);
    avg_gpu /= static_cast<double>(S) * pl.num_gpus();
  }
  ev.ratio_to_bound = ev.mean_bound > 0 ? ev.summary.mean / ev.mean_bound : 0.0;
  ev.imbalance = avg_gpu > 0 ? ev.summary.mean / avg_gpu : 0.0;
  return ev;
}

/// Steps [first, first + count) of a trace (count 0: to the last step).
struct step_range {
  std::int32_t first = 0;
  std::int32_t count = 0;
};

/// The counts of layer `l`, steps `r`, as rows of doubles.
[[nodiscard]] inline std::vector<std::vector<double>> step_rows(const routing_trace& t, layer_id l, step_range r = {}) {
  if (l.value < 0 || l.value >= t.num_layers())
    throw config_error("step_rows: layer " + std::to_string(l.value) + " is not in the trace (" +
                       std::to_string(t.num_layers()) + " layers)");
  const auto end = r.count == 0 ? t.num_steps() : r.first + r.count;
  if (r.first < 0 || r.count < 0 || end > t.num_steps())
    throw config_error("step_rows: steps [" + std::to_string(r.first) + ", " + std::to_string(end) +
                       ") are not in the trace (" + std::to_string(t.num_steps()) + " steps)");
  std::vector<std::vector<double>> out;
  for (std::int32_t s = r.first; s < end; ++s) {
    const auto c = t.step_counts(l, s);
    out.emplace_back(c.begin(), c.end());
  }
  return out;
}

/// Replays steps `r` of `trace` (every layer) through `pl` and `model`.
template <speed_model M>
[[nodiscard]] evaluation evaluate(const placement& pl, const routing_trace& trace, const M& model, step_range r = {}) {
  if (trace.num_layers() != pl.num_layers() || trace.num_experts() != pl.num_experts())
    throw config_error("evaluate: trace has " + std::to_string(trace.num_layers()) + " layers x " +
                       std::to_string(trace.num_experts()) + " experts, placement has " +
                       std::to_string(pl.num_layers()) + " x " + std::to_string(pl.num_experts()));
  std::vector<std::vector<std::vector<double>>> steps;
  for (std::int32_t l = 0; l < trace.num_layers(); ++l) steps.push_back(step_rows(trace, layer_id{l}, r));
  return evaluate(pl, steps, model);
}

/// A trace cut in two: strategies fit on `fit`, the evaluator replays `held_out`.
struct step_split {
  step_range fit{};
  step_range held_out{};
};

/// Fit on the first `fit_fraction` of the steps (rounded down, at least 1), evaluate on the rest
/// (at least 1). Throws config_error when the trace has fewer than 2 steps or the fraction is not
/// in (0, 1).
[[nodiscard]] inline step_split split_steps(const routing_trace& t, double fit_fraction = 0.5) {
  if (!(fit_fraction > 0 && fit_fraction < 1))
    throw config_error("split_steps: fit_fraction must be in (0, 1), got " + std::to_string(fit_fraction));
  if (t.num_steps() < 2)
    throw config_error("split_steps: the trace has " + std::to_string(t.num_steps()) +
                       " steps; a fit / held-out split needs at least 2");
  auto n = static_cast<std::int32_t>(std::floor(fit_fraction * t.num_steps()));
  n = std::clamp(n, 1, t.num_steps() - 1);
  return {.fit = {.first = 0, .count = n}, .held_out = {.first = n, .count = t.num_steps() - n}};
}

}  // namespace gem
