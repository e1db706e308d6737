// gem/place/gem_search.hpp — `gem_search`, gem's own strategy: minimise the mean over sampled steps
// of the straggler's seconds under a speed model. A speed-aware, class-aware initial packing with
// anti-affinity for co-activated experts, then a local search that moves and swaps experts away
// from the GPU that straggles; engine-compatible or extended (per-GPU slot counts, speed-weighted
// replica shares). Depends on gem/place/problem.hpp, gem/place/speed_proportional.hpp (slot_mode)
// and gem/place/detail/{assemble,common,straggler_search}.hpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "gem/place/detail/assemble.hpp"
#include "gem/place/detail/common.hpp"
#include "gem/place/detail/straggler_search.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/problem.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/placement.hpp"

namespace gem {

/// gem's placement search. Per layer it optimises against `layer_loads::steps` (or `mean` as a
/// single step when there are none; or synthetic steps, see `bootstrap_steps` and `min_steps`):
/// 1. replicas: the spare slots go, one at a time, to the expert with the largest mean load per
///    replica (engine_compatible: every spare slot; extended: at most `max_redundant`);
/// 2. starting points: (a) a speed-aware packing: replicas heaviest first, each onto the GPU whose
///    predicted seconds (speed model, mean loads) after taking it is least, where a replica's load
///    is its mean plus `burst_weight` standard deviations over the steps (temporal, bursty experts
///    reserve headroom; consistent ones pack by their mean) and a GPU already holding an expert of
///    the same co-activation group (`layer_loads::groups`) is penalised by `anti_affinity` per such
///    expert; (b) a token-count balanced packing (what EPLB does); (c) `restarts` perturbed
///    copies of (a) drawn with `seed`;
/// 3. local search from each start (straggler-driven moves and swaps, exact under the model), then
///    `kicks` rounds of iterated local search (a few random swaps, descend again, keep if better),
///    all within `max_step_evals`; the best start wins.
/// Extended mode first searches with free per-GPU counts in every layer, fixes one count per GPU
/// (the layers' mean, same total), searches again with those counts, sets replica shares in
/// proportion to GPU speed where that lowers the objective, and keeps the engine-compatible result
/// when that is better on the searched steps. With `node_hierarchy`, expert groups
/// (`placement_problem::num_groups`) are packed onto nodes first and never leave them.
/// Same inputs and seed give the same bytes for any `threads`, unless `time_budget_ms` is set (then
/// the result depends on how fast the machine is).
struct gem_search {
  slot_mode mode = slot_mode::engine_compatible;
  std::uint64_t seed = 0;
  std::int32_t restarts = 0;              ///< perturbed starts besides the two deterministic ones
  std::int32_t kicks = 8;                 ///< per start: random 2-3 swap perturbations, each followed by a descent
  std::int64_t max_step_evals = 2000000;  ///< search budget per layer and start, in candidate x step evaluations; 0 = none
  double time_budget_ms = 0;              ///< wall-clock budget per layer; 0 = none (deterministic)
  std::int32_t max_redundant = -1;        ///< extended: most replicas beyond one per expert; -1 = every spare slot
  std::int32_t max_slots_per_gpu = 0;     ///< extended: most slots on one GPU; 0 = no limit
  bool node_hierarchy = false;            ///< keep each expert group on one node
  double anti_affinity = 0.05;            ///< score penalty per co-activated expert already on a GPU
  double burst_weight = 0.5;              ///< standard deviations added to a replica's load when packing
  std::int32_t max_steps = 0;             ///< optimise over at most this many of the steps (seeded sample); 0 = all
  std::int32_t max_targets = 0;           ///< GPUs (most slack first) tried per expert moved; 0 = all
  /// With fewer fitted steps than this, synthetic steps are added until there are this many: each
  /// expert's count drawn around its mean over the fitted steps with standard deviation
  /// sqrt(max(mean, variance)) (Poisson-like arrival noise, or the observed spread when larger),
  /// rounded and clipped at 0. Keeps a search on 1-4 steps from fitting their noise. 0 = off.
  std::int32_t min_steps = 0;
  /// With windows of the fitted tokens (`layer_loads::windows`, e.g. empirical_load's
  /// `window_tokens`) and fewer fitted steps than this, the search optimises over this many
  /// synthetic steps instead of the fitted ones: each the sum of `windows_per_step` windows drawn
  /// uniformly with replacement (a block bootstrap, drawn from the layer's seed). They carry what
  /// the next steps will vary in (which sequences a batch holds, experts routed together), which
  /// one to a few fitted steps cannot show. What is searched is these steps: the packing loads'
  /// mean and spread, the objective, and extended mode's choices between layouts. The confidence
  /// test against EPLB (`keep_eplb_confidence`) still runs on the fitted steps: the synthetic ones
  /// are redraws of the same tokens, and counting them as independent steps would shrink the
  /// test's noise width. Takes the place of `min_steps` where it applies. 0 = off. On by default
  /// (it acts only where a load model was asked for windows): on the ESFT evaluation (windows of
  /// 128 tokens; 1-16 fitted steps per layer) it lowered or kept every setup's mean ratio to eplb
  /// for three seeds, and the cases worse than eplb by > 0.5% went from 2 to 0-1; the search costs
  /// 3-85x more time there, since it weighs 64 steps (bench/RESULTS.md, issue 5).
  std::int32_t bootstrap_steps = 64;
  /// With `eplb_start`, engine-compatible layers (equal slots, no node hierarchy) start from EPLB's
  /// own layout (global policy on the mean loads) instead of the token-count packing, and keep it
  /// unless the search beats it on the searched steps by at least `min_gain` (a fraction).
  bool eplb_start = false;
  double min_gain = 0.0;
  /// Robust choice against EPLB. On engine-compatible layers that EPLB can lay out (equal slots,
  /// no node hierarchy), the searched layout replaces EPLB's (global policy on the mean loads)
  /// only when it wins on unseen steps with this confidence; 0 = off (always the searched one).
  /// Why: the search fits the fitted steps exactly, and with few of them (one step of 4096 tokens
  /// per layer in the ESFT evaluation) a gain of 1-2% on them is smaller than the shift to the
  /// next steps (between halves of one ESFT task, 2-7% of the tokens change expert), so on
  /// nearly-equal GPUs the searched layout is as often worse than EPLB's as better. The test:
  /// plausible unseen steps are drawn as a smoothed bootstrap of the S fitted steps (each fitted
  /// step's count x plus normal noise of variance 2 * phi * x / S). Model: every step deviates
  /// from the expected count m with variance phi * m (an overdispersed Poisson law), so an unseen
  /// step deviates from the fitted mean with variance phi * m * (1 + 1/S); the fitted steps
  /// already spread by phi * m * (S - 1) / S, and the noise adds the rest, 2 * phi * m / S.
  /// phi is the pooled index of dispersion of the fitted steps, shrunk toward a prior with weight 1
  /// against their S - 1 degrees of freedom (one fitted step: the prior alone); the prior is
  /// `dispersion`, or the layer's own estimate from its windows (`window_dispersion`); d = straggler
  /// seconds of the searched layout minus EPLB's on each drawn step; the searched layout is kept
  /// when mean(d) + z * sd(d) / sqrt(S) < 0, z the normal quantile of `keep_eplb_confidence`
  /// (an unseen set of S steps, as many as were fitted, favours it with that confidence). Where
  /// the GPUs differ enough to matter, the gain is many noise widths and the test passes; where
  /// it is within the noise, the layer keeps EPLB's layout and cannot lose to it.
  double keep_eplb_confidence = 0.9;
  double dispersion = 4.0;             ///< prior phi (one fitted step: phi) unless window_dispersion applies (ESFT: 0.5-8.5 at 1024-4096 tokens)
  /// With windows of the fitted tokens and at least 16 windows per step, the confidence test's
  /// prior phi (what one fitted step uses, and what several are shrunk toward) is measured from the
  /// layer's own windows instead of `dispersion` (detail::window_dispersion): the pooled index of
  /// dispersion at a quarter step, extrapolated to a whole step by the power law that the index
  /// follows between a sixteenth and a quarter step (exponent clipped to [0, 1]). Why: the index of
  /// a step grows with its tokens while routing drifts within the sequences a step holds (ESFT
  /// summary: 4.4 at 256 tokens, 8.5 at 1024) and stops growing once a step spans several
  /// sequences, so one prior cannot fit every task and batch size; a step's own windows show where
  /// on that curve it sits. Without such windows (fewer than 16 per step, or none) `dispersion`
  /// stays the prior. false = always `dispersion`. On by default: on the ESFT evaluation (batch
  /// 4096: 32 windows of 128 tokens per step) it removed the last case worse than eplb by > 0.5%
  /// for three seeds, and moved engine gem / speed_proportional on `high` from 0.960 to 0.967-0.970
  /// (bench/RESULTS.md, issue 5).
  bool window_dispersion = true;
  std::int32_t resample_steps = 64;    ///< steps drawn for that test, around the fitted steps in turn
  std::int32_t threads = 1;               ///< layers searched in parallel

  /// A configuration for re-running online at large scale (DeepSeek-V3: 58 layers, 256 experts,
  /// 32 GPUs): no kicks, 32 sampled steps, 8 target GPUs per move, 6000 step evaluations per layer
  /// and start, 16 steps drawn for the confidence test against EPLB. The search is budget-bound
  /// at this scale, so 32 steps (rather than 64) let it weigh twice as many candidates: it fits
  /// the benchmark's 256 steps better (0.9688 of eplb's mean straggler against 0.9723) in less
  /// time. The default configuration searches much longer (offline quality).
  [[nodiscard]] static gem_search online(slot_mode m = slot_mode::engine_compatible, std::uint64_t s = 0) {
    return gem_search{.mode = m, .seed = s, .kicks = 0, .max_step_evals = 6000, .max_steps = 32, .max_targets = 8, .resample_steps = 16};
  }

  /// Throws config_error naming the field that is out of range.
  void validate() const {
    if (mode != slot_mode::engine_compatible && mode != slot_mode::extended)
      throw config_error("gem_search.mode is not a slot_mode value");
    if (restarts < 0) throw config_error("gem_search.restarts must be >= 0, got " + std::to_string(restarts));
    if (kicks < 0) throw config_error("gem_search.kicks must be >= 0, got " + std::to_string(kicks));
    if (max_step_evals < 0) throw config_error("gem_search.max_step_evals must be >= 0 (0 = no limit)");
    if (!(time_budget_ms >= 0) || !std::isfinite(time_budget_ms))
      throw config_error("gem_search.time_budget_ms must be finite and >= 0 (0 = no limit)");
    if (max_redundant < -1) throw config_error("gem_search.max_redundant must be >= -1 (-1 = every spare slot)");
    if (max_slots_per_gpu < 0) throw config_error("gem_search.max_slots_per_gpu must be >= 0 (0 = no limit)");
    if (!(anti_affinity >= 0) || !std::isfinite(anti_affinity))
      throw config_error("gem_search.anti_affinity must be finite and >= 0");
    if (!(burst_weight >= 0) || !std::isfinite(burst_weight))
      throw config_error("gem_search.burst_weight must be finite and >= 0");
    if (max_steps < 0) throw config_error("gem_search.max_steps must be >= 0 (0 = all)");
    if (max_targets < 0) throw config_error("gem_search.max_targets must be >= 0 (0 = all)");
    if (min_steps < 0) throw config_error("gem_search.min_steps must be >= 0 (0 = no synthetic steps)");
    if (bootstrap_steps < 0)
      throw config_error("gem_search.bootstrap_steps must be >= 0 (0 = off), got " + std::to_string(bootstrap_steps));
    if (!(min_gain >= 0 && min_gain < 1)) throw config_error("gem_search.min_gain must be in [0, 1)");
    if (!(keep_eplb_confidence >= 0 && keep_eplb_confidence < 1))
      throw config_error("gem_search.keep_eplb_confidence must be in [0, 1) (0 = off)");
    if (!(dispersion >= 0) || !std::isfinite(dispersion)) throw config_error("gem_search.dispersion must be finite and >= 0");
    if (resample_steps < 1) throw config_error("gem_search.resample_steps must be >= 1, got " + std::to_string(resample_steps));
    if (threads < 1) throw config_error("gem_search.threads must be >= 1, got " + std::to_string(threads));
  }

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& model) const;
};
static_assert(placement_strategy<gem_search, detail::speed_archetype>);

namespace detail {

/// One searched layer: experts and shares per GPU, and the objective on the searched steps.
struct gem_layer_result {
  std::vector<std::vector<std::int32_t>> experts{};
  std::vector<std::vector<double>> shares{};
  double objective = 0;
};

/// Layer `l`'s steps to optimise over (all, or a seeded sample of `max_steps`, in trace order);
/// `storage` holds them unless they are the layer's own steps.
inline const std::vector<std::vector<double>>& gem_steps(const layer_loads& ll, std::int32_t max_steps, std::uint64_t seed,
                                                        std::vector<std::vector<double>>& storage) {
  if (ll.steps.empty()) return storage = {ll.mean};
  if (max_steps <= 0 || static_cast<std::size_t>(max_steps) >= ll.steps.size()) return ll.steps;
  std::vector<std::size_t> idx(ll.steps.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  splitmix64 rng{seed};
  for (std::size_t i = 0; i < static_cast<std::size_t>(max_steps); ++i) std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
  idx.resize(static_cast<std::size_t>(max_steps));
  std::sort(idx.begin(), idx.end());
  storage.clear();
  for (auto i : idx) storage.push_back(ll.steps[i]);
  return storage;
}

/// `count` synthetic steps of `ll` (gem_search::bootstrap_steps): each the sum of
/// ll.windows_per_step windows drawn uniformly with replacement with `seed`. `ll.windows` must not
/// be empty.
inline std::vector<std::vector<double>> block_bootstrap(const layer_loads& ll, std::int32_t count, std::uint64_t seed) {
  const auto E = ll.windows.front().size();
  std::vector<std::vector<double>> out(static_cast<std::size_t>(count), std::vector<double>(E, 0.0));
  splitmix64 rng{seed};
  for (auto& row : out)
    for (std::int32_t k = 0; k < ll.windows_per_step; ++k) {
      const auto& w = ll.windows[rng.below(ll.windows.size())];
      for (std::size_t e = 0; e < E; ++e) row[e] += w[e];
    }
  return out;
}

/// The seed of layer `l`'s search, synthetic steps and confidence test under gem_search's `seed`.
inline std::uint64_t gem_layer_seed(std::uint64_t seed, std::size_t l) {
  return splitmix64{seed ^ (0x9E3779B97F4A7C15ull * (l + 1))}.next();
}

/// The synthetic steps searched instead of the `observed` ones (a layer's fitted steps, mean and
/// sd their step_stats): `bootstrap_steps` block-bootstrap steps when the layer has windows and
/// fewer fitted steps than that; else, with fewer observed steps than `min_steps`, the observed
/// ones plus steps whose counts are drawn around `mean` with standard deviation
/// sqrt(max(mean, sd^2)), rounded and clipped at 0; else none.
inline std::vector<std::vector<double>> synthetic_steps(const gem_search& cfg, const layer_loads& ll,
                                                        const std::vector<std::vector<double>>& observed, const std::vector<double>& mean,
                                                        const std::vector<double>& sd, std::uint64_t layer_seed) {
  if (!ll.windows.empty() && ll.steps.size() < static_cast<std::size_t>(cfg.bootstrap_steps))
    return block_bootstrap(ll, cfg.bootstrap_steps, layer_seed ^ 0xb5ad4eceda1ce2a9ull);
  if (ll.steps.empty() || static_cast<std::int32_t>(observed.size()) >= cfg.min_steps) return {};
  auto out = observed;
  splitmix64 noise{layer_seed ^ 0x5bd1e995ull};
  while (static_cast<std::int32_t>(out.size()) < cfg.min_steps) {
    std::vector<double> row(mean.size());
    for (std::size_t e = 0; e < mean.size(); ++e) {
      // Box-Muller normal from two uniforms in (0, 1].
      const double u1 = 1.0 - noise.uniform(), u2 = noise.uniform();
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      row[e] = std::max(0.0, std::round(mean[e] + std::sqrt(std::max(mean[e], sd[e] * sd[e])) * z));
    }
    out.push_back(std::move(row));
  }
  return out;
}

/// Inputs of one layer's search that do not change between starts.
struct gem_layer_setup {
  std::vector<search_item> items{};
  std::vector<double> packing_load{};        ///< per item: share x (mean + burst_weight x sd)
  std::vector<std::int32_t> expert_node{};   ///< empty: no hierarchy
  std::vector<char> coactive{};              ///< [E][E]: experts share a co-activation group
  bool any_coactive = false;                 ///< some pair of experts shares a group
  std::vector<std::size_t> order{};          ///< items by packing load, heaviest first (stable)
  std::vector<double> speed{};
};

/// Greedy packing of the items onto GPUs with at most caps[g] items each (heaviest first). With
/// `use_model` a GPU's score is the model's seconds for its packing loads plus the item, times the
/// anti-affinity penalty (and a seeded perturbation when `noise` > 0); without, the sum of loads.
/// The item goes to the GPU of least score, the lowest index on ties.
/// Without noise the GPUs are visited by increasing score before the item, `cur` (the seconds of
/// their present loads, or the loads), and the scan stops at the first whose `cur` exceeds the best
/// score so far: a GPU's score is at least its `cur`, since adding an expert never lowers a GPU's
/// seconds (true of every model in gem/speed, and assumed by straggler_search's bounds) and the
/// penalty is a factor >= 1. The result is the full scan's; only the model calls for GPUs that
/// cannot win are skipped. With noise every GPU draws its perturbation, in index order.
template <speed_model M>
std::vector<std::int32_t> gem_pack(const M& model, std::int32_t G, std::int32_t E, const gem_layer_setup& st,
                                   const std::vector<std::int32_t>& caps, std::int32_t gpus_per_node, bool use_model,
                                   double anti_affinity, double noise, splitmix64& rng) {
  const auto n = st.items.size();
  std::vector<std::int32_t> gpu_of(n, -1);
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(G));
  std::vector<std::vector<std::int32_t>> experts(static_cast<std::size_t>(G));
  std::vector<double> load(static_cast<std::size_t>(G), 0.0);
  const bool prune = !(noise > 0);
  std::vector<double> cur(static_cast<std::size_t>(G), 0.0);  // score of GPU g before the item (0: empty)
  std::vector<std::int32_t> by_cur(static_cast<std::size_t>(G));  // GPUs by (cur, index)
  std::iota(by_cur.begin(), by_cur.end(), 0);
  for (const auto i : st.order) {
    const auto e = st.items[i].expert;
    const bool confined = !st.expert_node.empty() && st.expert_node[e] >= 0;
    std::int32_t best = -1;
    double best_score = 0;
    for (int pass = 0; pass < 3 && best < 0; ++pass)  // 1: allow a second copy on a GPU; 2: leave the node
      for (std::int32_t k = 0; k < G; ++k) {
        const std::int32_t g = prune ? by_cur[k] : k;
        // Without the model the score is cur + the item's load, itself non-decreasing in cur.
        if (prune && best >= 0 && (use_model ? cur[g] : cur[g] + st.packing_load[i]) > best_score) break;
        if (static_cast<std::int32_t>(experts[g].size()) >= caps[g]) continue;
        if (pass < 2 && confined && g / gpus_per_node != st.expert_node[e]) continue;
        if (pass == 0 && std::find(experts[g].begin(), experts[g].end(), e) != experts[g].end()) continue;
        double score;
        if (use_model) {
          rows[g].push_back(st.packing_load[i]);
          score = static_cast<double>(model.seconds(gpu_id{g}, work{rows[g]}));
          rows[g].pop_back();
          std::int32_t same = 0;
          if (st.any_coactive)
            for (auto f : experts[g]) same += st.coactive[static_cast<std::size_t>(e) * E + f];
          score *= 1.0 + anti_affinity * same;
          if (noise > 0) score *= 1.0 + noise * rng.uniform();
        } else {
          score = load[g] + st.packing_load[i];
        }
        if (best < 0 || score < best_score || (score == best_score && g < best)) best = g, best_score = score;
      }
    if (best < 0) throw config_error("gem_search: the slots cannot hold every replica (internal capacity error)");
    gpu_of[i] = best;
    rows[best].push_back(st.packing_load[i]);
    experts[best].push_back(e);
    load[best] += st.packing_load[i];
    if (prune) {
      // `best`'s score before the next item; it only grows, so it moves toward the back.
      cur[best] = use_model ? static_cast<double>(model.seconds(gpu_id{best}, work{rows[best]})) : load[best];
      auto k = static_cast<std::size_t>(std::find(by_cur.begin(), by_cur.end(), best) - by_cur.begin());
      for (; k + 1 < by_cur.size(); ++k) {
        const auto h = by_cur[k + 1];
        if (cur[h] < cur[best] || (cur[h] == cur[best] && h < best)) by_cur[k] = h;
        else break;
      }
      by_cur[k] = best;
    }
  }
  return gpu_of;
}

/// The standard normal quantile of q in (0, 1) (bisection on erfc; exact to ~1e-12).
inline double normal_quantile(double q) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

/// Straggler seconds of one step when GPU g holds the items members[g].
template <speed_model M>
double placed_straggler(const M& model, const std::vector<std::vector<std::int32_t>>& members,
                        const std::vector<search_item>& items, const std::vector<double>& step, std::vector<double>& rows) {
  double worst = 0;
  for (std::size_t g = 0; g < members.size(); ++g) {
    rows.clear();
    for (auto i : members[g]) rows.push_back(step[items[i].expert] * items[i].share);
    if (!rows.empty()) worst = std::max(worst, static_cast<double>(model.seconds(gpu_id{static_cast<std::int32_t>(g)}, work{rows})));
  }
  return worst;
}

/// Pooled index of dispersion of `ll.windows` summed in consecutive runs of `run` windows (trace
/// order; windows left over after the last whole run are dropped): the sum over experts of the
/// sample variance of a run's tokens over the sum of their means. Negative when there are fewer
/// than two runs or no tokens (no estimate).
inline double window_index(const layer_loads& ll, std::size_t run) {
  const std::size_t runs = run == 0 ? 0 : ll.windows.size() / run;
  if (runs < 2) return -1;
  const auto E = ll.windows.front().size();
  std::vector<double> sum(E, 0.0), sum2(E, 0.0), x(E);
  for (std::size_t r = 0; r < runs; ++r) {
    std::fill(x.begin(), x.end(), 0.0);
    for (std::size_t w = r * run; w < (r + 1) * run; ++w)
      for (std::size_t e = 0; e < E; ++e) x[e] += ll.windows[w][e];
    for (std::size_t e = 0; e < E; ++e) sum[e] += x[e], sum2[e] += x[e] * x[e];
  }
  const double n = static_cast<double>(runs);
  double var = 0, load = 0;
  for (std::size_t e = 0; e < E; ++e) {
    const double m = sum[e] / n;
    var += std::max(0.0, (sum2[e] - n * m * m) / (n - 1)), load += m;
  }
  return load > 0 ? var / load : -1;
}

/// gem_search::window_dispersion: the index of dispersion of one step of layer `ll`, from its
/// windows. With k = windows_per_step >= 16: q = k / 4 and s = k / 16 windows (integer division;
/// a quarter and a sixteenth of a step), I(n) = window_index(ll, n), alpha = log(I(q) / I(s)) /
/// log(q / s) clipped to [0, 1], and phi = I(q) (k / q)^alpha. Why a power law with that clip: the
/// index of counts over n tokens is 1-ish for independent tokens and grows with n while tokens
/// share a drifting routing mix (linearly, alpha = 1, when the mix is one for the whole step) and
/// stops growing once n spans many independent sequences (alpha = 0); the two largest scales with
/// several runs each say where between those the layer is. `fallback` (gem_search::dispersion)
/// when k < 16 or an index is missing.
inline double window_dispersion(const layer_loads& ll, double fallback) {
  const auto k = static_cast<std::size_t>(std::max(0, ll.windows_per_step));
  if (ll.windows.empty() || k < 16) return fallback;
  const std::size_t q = k / 4, s = k / 16;
  const double iq = window_index(ll, q), is = window_index(ll, s);
  if (!(iq > 0) || !(is > 0)) return fallback;
  const double alpha = std::clamp(std::log(iq / is) / std::log(static_cast<double>(q) / static_cast<double>(s)), 0.0, 1.0);
  return iq * std::pow(static_cast<double>(k) / static_cast<double>(q), alpha);
}

/// gem_search::keep_eplb_confidence's test: true when layout `ours` beats `theirs` on unseen
/// steps drawn around the fitted `steps` with the stated confidence (see gem_search). `mean` and
/// `sd`: step_stats of `steps`; `prior`: phi with one fitted step, and what the fitted steps'
/// pooled index is shrunk toward (gem_search::dispersion, or window_dispersion's estimate).
template <speed_model M>
bool robust_gain(const gem_search& cfg, const M& model, std::int32_t G, const std::vector<std::vector<double>>& steps,
                 const std::vector<double>& mean, const std::vector<double>& sd, const std::vector<search_item>& items,
                 const std::vector<std::int32_t>& ours, const std::vector<std::int32_t>& theirs, std::uint64_t seed,
                 double prior) {
  const auto S = static_cast<std::int32_t>(steps.size());
  if (S == 0) return true;
  const auto E = steps[0].size();
  double phi = prior;
  if (S >= 2) {
    double var = 0, load = 0;
    for (std::size_t e = 0; e < E; ++e) var += sd[e] * sd[e] * S / (S - 1.0), load += mean[e];
    if (load > 0) phi = ((S - 1) * (var / load) + prior) / S;
  }
  std::vector<std::vector<std::int32_t>> a(static_cast<std::size_t>(G)), b(static_cast<std::size_t>(G));
  for (std::size_t i = 0; i < items.size(); ++i) a[ours[i]].push_back(static_cast<std::int32_t>(i)), b[theirs[i]].push_back(static_cast<std::int32_t>(i));
  // resample_steps draws, the fitted steps in turn (spread evenly over them when there are more).
  const std::int32_t draws = cfg.resample_steps;
  splitmix64 rng{seed ^ 0x2545F4914F6CDD1Dull};
  std::vector<double> drawn(E), rows;
  double sum = 0, sum2 = 0;
  for (std::int32_t j = 0; j < draws; ++j) {
    const auto& step = steps[draws >= S ? j % S : static_cast<std::int32_t>(static_cast<std::int64_t>(j) * S / draws)];
    for (std::size_t e = 0; e < E; ++e) {
      const double x = step[e];
      if (!(x > 0)) {
        drawn[e] = 0;
        continue;
      }
      // A standard normal as the sum of four uniforms (Irwin-Hall, the four 16-bit quarters of one
      // draw, variance scaled to 1): cheap, and the same numbers on every platform.
      const std::uint64_t r = rng.next();
      const double u = static_cast<double>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
      const double z = (u / 65536.0 - 2.0) * std::sqrt(3.0);
      drawn[e] = std::max(0.0, std::round(x + std::sqrt(2.0 * phi * x / S) * z));
    }
    const double d = placed_straggler(model, a, items, drawn, rows) - placed_straggler(model, b, items, drawn, rows);
    sum += d, sum2 += d * d;
  }
  const double n = draws;
  const double m = sum / n;
  const double v = n > 1 ? std::max(0.0, (sum2 - n * m * m) / (n - 1)) : 0.0;
  return m + normal_quantile(cfg.keep_eplb_confidence) * std::sqrt(v / S) < 0;
}

/// Searches one layer: `num_items` replicas (>= E) on GPUs with at most caps[g] each; `start_caps`
/// bound the count-balanced start (the cluster's own slots). `allow_moves`: per-GPU counts may
/// change during the search.
template <speed_model M>
gem_layer_result gem_layer(const gem_search& cfg, const placement_problem& p, std::size_t l, const M& model,
                           const std::vector<std::int32_t>& caps, const std::vector<std::int32_t>& start_caps,
                           std::int32_t num_items, bool allow_moves, bool speed_shares) {
  const auto& ll = p.layers[l];
  const auto G = p.cluster.num_gpus;
  const auto E = p.num_experts;
  const std::uint64_t layer_seed = gem_layer_seed(cfg.seed, l);
  std::vector<std::vector<double>> storage;
  // `observed`: the fitted steps (the confidence test's); `steps`: what is searched, they or
  // synthetic steps (bootstrap_steps, else min_steps).
  const auto& observed = gem_steps(ll, cfg.max_steps, layer_seed, storage);
  std::vector<double> mean, sd;  // of the observed steps
  step_stats(observed, static_cast<std::size_t>(E), mean, sd);
  const auto synthetic = synthetic_steps(cfg, ll, observed, mean, sd, layer_seed);
  const auto& steps = synthetic.empty() ? observed : synthetic;
  std::vector<double> step_mean = mean, step_sd = sd;  // of the searched steps
  if (!synthetic.empty()) step_stats(steps, static_cast<std::size_t>(E), step_mean, step_sd);

  gem_layer_setup st;
  const auto cnt = replica_counts(ll.mean, num_items - E);
  for (std::int32_t e = 0; e < E; ++e)
    for (std::int32_t r = 0; r < cnt[e]; ++r) {
      st.items.push_back({.expert = e, .share = 1.0 / cnt[e]});
      st.packing_load.push_back((step_mean[e] + cfg.burst_weight * step_sd[e]) / cnt[e]);
    }
  st.coactive.assign(static_cast<std::size_t>(E) * E, 0);
  for (const auto& grp : ll.groups)
    for (auto a : grp)
      for (auto b : grp)
        if (a != b) st.coactive[static_cast<std::size_t>(a) * E + b] = 1, st.any_coactive = true;
  st.order.resize(st.items.size());
  std::iota(st.order.begin(), st.order.end(), std::size_t{0});
  std::stable_sort(st.order.begin(), st.order.end(),
                   [&](auto a, auto b) { return st.packing_load[a] > st.packing_load[b]; });
  const double mean_row = std::accumulate(ll.mean.begin(), ll.mean.end(), 0.0) / E;
  st.speed = probe_speeds(model, G, std::max<std::int32_t>(1, num_items / G), mean_row);

  const auto& c = p.cluster;
  const std::int32_t gpn = c.gpus_per_node();
  if (cfg.node_hierarchy && c.num_nodes > 1) {
    // Pack expert groups (EPLB's groups, or single experts) onto nodes: heaviest group first onto
    // the node with room whose (load + group load) / node speed is least.
    const std::int32_t ng = p.num_groups % c.num_nodes == 0 ? p.num_groups : E;
    const std::int32_t gs = E / ng;
    std::vector<double> gload(static_cast<std::size_t>(ng), 0.0);
    std::vector<std::int32_t> gitems(static_cast<std::size_t>(ng), 0);
    for (std::int32_t e = 0; e < E; ++e) gload[e / gs] += ll.mean[e], gitems[e / gs] += cnt[e];
    std::vector<std::int32_t> order(static_cast<std::size_t>(ng));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return gload[a] > gload[b]; });
    std::vector<double> nload(static_cast<std::size_t>(c.num_nodes), 0.0), nspeed(nload.size(), 0.0);
    std::vector<std::int32_t> room(nload.size(), 0);
    for (std::int32_t g = 0; g < G; ++g) nspeed[g / gpn] += st.speed[g], room[g / gpn] += caps[g];
    st.expert_node.assign(static_cast<std::size_t>(E), -1);
    for (auto grp : order) {
      std::int32_t best = -1;
      for (std::int32_t nd = 0; nd < c.num_nodes; ++nd) {
        if (room[nd] < gitems[grp]) continue;
        if (best < 0 || (nload[nd] + gload[grp]) / nspeed[nd] < (nload[best] + gload[grp]) / nspeed[best]) best = nd;
      }
      if (best < 0) continue;  // no node has room: the group may go anywhere
      nload[best] += gload[grp];
      room[best] -= gitems[grp];
      for (std::int32_t e = grp * gs; e < (grp + 1) * gs; ++e) st.expert_node[e] = best;
    }
  }

  typename straggler_search<M>::options opt;
  opt.allow_moves = allow_moves;
  opt.cap = caps;
  opt.expert_node = st.expert_node;
  opt.gpus_per_node = gpn;
  opt.max_step_evals = cfg.max_step_evals;
  opt.max_targets = cfg.max_targets;
  const auto t0 = std::chrono::steady_clock::now();
  if (cfg.time_budget_ms > 0)
    opt.deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double, std::milli>(cfg.time_budget_ms));

  // EPLB's layout of this layer (global policy on the mean loads) as items, when it applies.
  std::vector<std::int32_t> eplb_gpu;
  double eplb_obj = std::numeric_limits<double>::infinity();
  if ((cfg.eplb_start || cfg.keep_eplb_confidence > 0) && !allow_moves && !cfg.node_hierarchy && std::all_of(caps.begin(), caps.end(), [&](auto x) { return x == caps[0]; }) &&
      num_items == caps[0] * G) {
    const auto r = rebalance_experts({ll.mean}, num_items, 1, 1, G);
    std::vector<std::int32_t> first(static_cast<std::size_t>(E) + 1, 0), next(static_cast<std::size_t>(E), 0);
    for (std::int32_t e = 0; e < E; ++e) first[e + 1] = first[e] + cnt[e];
    eplb_gpu.assign(st.items.size(), -1);
    for (std::int32_t p = 0; p < num_items && !eplb_gpu.empty(); ++p) {
      const auto e = r.phy2log[0][p];
      if (next[e] >= cnt[e]) eplb_gpu.clear();  // EPLB replicated differently (a float tie)
      else eplb_gpu[first[e] + next[e]++] = p / caps[0];
    }
  }

  splitmix64 rng{layer_seed};
  std::vector<std::int32_t> best_gpu;
  double best_obj = std::numeric_limits<double>::infinity();
  const std::int32_t starts = 2 + cfg.restarts;
  // One search serves every start (its step tables and memo are built once); each start gets
  // the whole budget.
  straggler_search<M> search(model, G, steps, st.items, opt);
  for (std::int32_t k = 0; k < starts; ++k) {
    if (k > 0 && cfg.time_budget_ms > 0 && std::chrono::steady_clock::now() > opt.deadline) break;
    const auto start = k == 1 ? (eplb_gpu.empty() || !cfg.eplb_start ? gem_pack(model, G, E, st, start_caps, gpn, false, 0.0, 0.0, rng) : eplb_gpu)
                              : gem_pack(model, G, E, st, caps, gpn, true, cfg.anti_affinity, k == 0 ? 0.0 : 0.3, rng);
    search.reset_budget();
    search.assign(start);
    if (k == 1 && !eplb_gpu.empty() && cfg.eplb_start) eplb_obj = search.objective();
    search.run();
    if (search.objective() < best_obj) best_obj = search.objective(), best_gpu = search.gpu_of();
    // Iterated local search: kick the start's best with a few random swaps, descend again, keep
    // what improves, and return to the best otherwise.
    auto local_best = search.gpu_of();
    double local_obj = search.objective();
    for (std::int32_t r = 0; r < cfg.kicks && search.budget_left(); ++r) {
      search.kick_and_descend(rng, 2 + static_cast<std::int32_t>(rng.below(2)));
      if (search.objective() < local_obj * (1 - 1e-9)) {
        local_obj = search.objective(), local_best = search.gpu_of();
      } else {
        search.assign(local_best);
      }
    }
    if (local_obj < best_obj) best_obj = local_obj, best_gpu = local_best;
  }
  if (!eplb_gpu.empty() && cfg.eplb_start && !(best_obj < eplb_obj * (1 - cfg.min_gain))) best_obj = eplb_obj, best_gpu = eplb_gpu;
  if (!eplb_gpu.empty() && cfg.keep_eplb_confidence > 0 && best_gpu != eplb_gpu &&
      !robust_gain(cfg, model, G, observed, mean, sd, st.items, best_gpu, eplb_gpu, layer_seed,
                   cfg.window_dispersion ? window_dispersion(ll, cfg.dispersion) : cfg.dispersion)) {
    search.assign(eplb_gpu);
    best_obj = search.objective(), best_gpu = eplb_gpu;
  }

  gem_layer_result out;
  out.objective = best_obj;
  out.experts.assign(static_cast<std::size_t>(G), {});
  out.shares.assign(static_cast<std::size_t>(G), {});
  for (std::size_t i = 0; i < st.items.size(); ++i) {
    out.experts[best_gpu[i]].push_back(st.items[i].expert);
    out.shares[best_gpu[i]].push_back(st.items[i].share);
  }
  if (speed_shares) {
    // Replica shares in proportion to the speed of the replica's GPU, kept when they help.
    std::vector<double> speed_sum(static_cast<std::size_t>(E), 0.0);
    for (std::size_t i = 0; i < st.items.size(); ++i) speed_sum[st.items[i].expert] += st.speed[best_gpu[i]];
    auto weighted = st.items;
    bool any = false;
    for (std::size_t i = 0; i < weighted.size(); ++i)
      if (cnt[weighted[i].expert] > 1) weighted[i].share = st.speed[best_gpu[i]] / speed_sum[weighted[i].expert], any = true;
    if (any) {
      straggler_search<M> check(model, G, steps, weighted, opt);
      check.assign(best_gpu);
      if (check.objective() < best_obj) {
        out.objective = check.objective();
        for (auto& s : out.shares) s.clear();
        for (std::size_t i = 0; i < weighted.size(); ++i) out.shares[best_gpu[i]].push_back(weighted[i].share);
      }
    }
  }
  return out;
}

/// Runs `fn(l)` for every layer on `threads` threads; rethrows the first exception.
template <class F>
void for_each_layer(std::size_t layers, std::int32_t threads, F&& fn) {
  if (threads <= 1 || layers <= 1) {
    for (std::size_t l = 0; l < layers; ++l) fn(l);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(layers);
  std::vector<std::thread> pool;
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(threads), layers);
  for (std::size_t t = 0; t < n; ++t)
    pool.emplace_back([&] {
      for (std::size_t l; (l = next.fetch_add(1)) < layers;) try {
          fn(l);
        } catch (...) {
          errors[l] = std::current_exception();
        }
    });
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace detail

template <speed_model M>
placement gem_search::place(const placement_problem& problem, const M& model) const {
  validate();
  problem.validate();
  const auto& c = problem.cluster;
  const auto G = c.num_gpus;
  const auto E = problem.num_experts;
  const auto P = static_cast<std::int32_t>(c.total_slots());
  const auto L = problem.layers.size();
  std::vector<std::int32_t> cluster_caps(static_cast<std::size_t>(G));
  for (std::int32_t g = 0; g < G; ++g) cluster_caps[g] = c.slots(gpu_id{g});

  const auto run = [&](const std::vector<std::int32_t>& caps, const std::vector<std::int32_t>& start_caps,
                       std::int32_t items, bool moves, bool shares) {
    std::vector<detail::gem_layer_result> res(L);
    detail::for_each_layer(L, threads, [&](std::size_t l) {
      res[l] = detail::gem_layer(*this, problem, l, model, caps, start_caps, items, moves, shares);
    });
    return res;
  };
  const auto total = [](const std::vector<detail::gem_layer_result>& r) {
    double t = 0;
    for (const auto& x : r) t += x.objective;
    return t;
  };
  const auto build = [&](cluster_spec cl, const std::vector<detail::gem_layer_result>& r, bool shares) {
    std::vector<layer_placement> layers;
    for (const auto& x : r) layers.push_back(detail::layer_from_gpus(x.experts, shares ? x.shares : std::vector<std::vector<double>>{}));
    return placement(std::move(cl), E, std::move(layers));
  };

  const auto engine = run(cluster_caps, cluster_caps, P, false, false);
  if (mode == slot_mode::engine_compatible) return build(c, engine, false);

  // Extended: free per-GPU counts in every layer (starting, among others, from counts in proportion
  // to speed), then one count per GPU for all layers. Candidates: the layers' mean counts of the
  // free search, and counts in proportion to speed; each is searched again with its counts fixed,
  // and the best on the searched steps wins (the engine-compatible result included).
  const std::int32_t spare = P - E;
  const std::int32_t items = E + (max_redundant < 0 ? spare : std::min(max_redundant, spare));
  const std::int32_t limit = max_slots_per_gpu > 0 ? max_slots_per_gpu : items;
  std::vector<double> speed(static_cast<std::size_t>(G), 0.0);
  for (const auto& ll : problem.layers) {
    const auto v = detail::probe_speeds(model, G, std::max<std::int32_t>(1, items / G),
                                        std::accumulate(ll.mean.begin(), ll.mean.end(), 0.0) / E);
    for (std::int32_t g = 0; g < G; ++g) speed[g] += v[g];
  }
  const auto capped = [&](std::vector<std::int32_t> counts) {
    // Respect the per-GPU limit after rounding: move any excess to the GPU with the fewest slots.
    for (std::int32_t g = 0; g < G; ++g)
      while (counts[g] > limit) {
        --counts[g];
        ++*std::min_element(counts.begin(), counts.end());
      }
    return counts;
  };
  const auto speed_counts = capped(detail::proportional_counts(speed, items));
  std::vector<std::int32_t> free_caps(static_cast<std::size_t>(G), limit);
  const auto free = run(free_caps, speed_counts, items, true, false);
  std::vector<double> mean_count(static_cast<std::size_t>(G), 0.0);
  for (const auto& r : free)
    for (std::int32_t g = 0; g < G; ++g) mean_count[g] += static_cast<double>(r.experts[g].size()) / static_cast<double>(L);
  std::vector<std::vector<std::int32_t>> candidates{capped(detail::proportional_counts(mean_count, items))};
  if (speed_counts != candidates.front()) candidates.push_back(speed_counts);
  double best_total = total(engine);
  std::vector<detail::gem_layer_result> best;
  std::vector<std::int32_t> best_counts;
  for (const auto& counts : candidates) {
    if (counts == cluster_caps) continue;  // the engine-compatible search already covers it
    auto fixed = run(counts, counts, items, false, true);
    if (total(fixed) < best_total) best_total = total(fixed), best = std::move(fixed), best_counts = counts;
  }
  if (best.empty()) return build(c, engine, false);
  cluster_spec out{.num_gpus = G, .slots_per_gpu = best_counts, .num_nodes = c.num_nodes};
  return build(std::move(out), best, true);
}

}  // namespace gem
