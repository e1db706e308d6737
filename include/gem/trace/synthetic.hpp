// gem/trace/synthetic.hpp — the seeded synthetic routing generator, gem's embedded default data:
// per-token top-k routing with a skewed per-layer load, planted consistent experts, planted
// temporal groups that co-activate in bursts, and a mixture of tasks; plus the plant (ground truth).
// Depends on gem/trace.hpp, gem/trace/batching.hpp.
//
// Calibration (defaults). Measured with gem::compute_stats (gem/trace/stats.hpp, default thresholds:
// hot = >= 1.5x the step's uniform share; consistent = hot in >= 75% of steps; temporal = >= 10%)
// on the real ESFT logs (../shared/traces/esft-deepseek-v2-lite: DeepSeek-V2-Lite, 26 MoE layers,
// 64 experts, top-6, ~8.3k tokens per task, B = 256 tokens per step), mean over the 26 layers, per
// task; and what the defaults give (mean over seeds 1..20, 4 layers each). The defaults were chosen
// so that every statistic lies within the range the three tasks span (tests/trace/synthetic_test.cpp
// checks that) while the plant stays recoverable (precision and recall >= 0.99 at these defaults).
//
//   statistic (mean over layers)                 intent   law    summary | synthetic defaults
//   hottest expert / mean load                    3.81    3.52    4.28   |  3.84
//   coldest expert / mean load                    0.069   0.180   0.120  |  0.164
//   Zipf exponent of the sorted loads             0.84    0.58    0.68   |  0.82
//   consistent experts per layer                  11.3    5.9     6.5    |  8
//   share of load carried by consistent experts   0.424   0.221   0.268  |  0.368
//   temporal experts per layer                    7.0     14.8    17.9   |  12
//   share of load carried by temporal experts     0.151   0.309   0.358  |  0.293
//   hot experts per step                          13.7    10.9    12.4   |  12.5
//   hot-set persistence (Jaccard, consecutive)    0.758   0.467   0.501  |  0.706
//   pair concentration: share of token pair
//     counts held by the top 5% of pairs          0.433   0.336   0.366  |  0.342
//   pairs with token co-activation score >= 0.5   0.118   0.107   0.095  |  0.012
//
// OLMoE-1B-7B (../shared/traces/olmoe-routing-analysis, read with gem::read_csv_counts; aggregate
// counts only, so one step and skew alone; 6 domains x layers 0, 7, 15): hottest / mean 2.5-7.8
// (mean 4.75), Zipf exponent 0.26-1.51 (mean 0.82) — the synthetic skew sits inside that range too.
// Other batch sizes on ESFT (mean of the three tasks): B = 64: consistent share 0.24, persistence
// 0.45; B = 1024: consistent share 0.34, persistence 0.69 (bigger steps average the noise out).
// What the generator does not reproduce: real routing has strong token-level pairs everywhere (11%
// of pairs; tokens of one kind pick one set of experts), the generator only inside its temporal
// groups and its token types (1%), so that the planted groups are well defined.
//
// Model, per layer (experts placed at random ids; weights in units of the uniform share 1/E, then
// normalised per step): `consistent_experts` experts weigh consistent_peak x rank^-consistent_skew;
// `temporal_groups` groups of `group_size` experts weigh `temporal_quiet`, each group a two-state
// chain (quiet -> burst with `burst_rate` per step; bursts last `burst_mean_steps` on average); the
// other (cold) experts weigh cold_min + (cold_max - cold_min) a^cold_shape with an affinity a mixing
// a per-layer and a per-task uniform draw (`task_spread`), times exp(step_noise x N(0,1)) per step.
// Steps come from `num_tasks` tasks in runs of `task_mean_steps` on average. Each token picks top_k
// distinct experts: with probability `joint_tokens` per bursting group it first takes that whole
// group (the planted co-activation); otherwise, with probability `typed_tokens`, it first takes 2
// experts of one of `token_types` sets of 4 cold experts; the remaining picks are drawn without
// replacement in proportion to the weights. Gate weights are the chosen experts' weights
// normalised to sum 1 per token.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/error.hpp"
#include "gem/trace.hpp"
#include "gem/trace/batching.hpp"

namespace gem {

/// Shape and statistics of a synthetic trace (defaults: calibrated to ESFT, see above).
struct synthetic_config {
  std::int32_t num_layers = 4;
  std::int32_t num_experts = 64;
  std::int32_t top_k = 6;
  std::int32_t num_steps = 128;
  std::int64_t tokens_per_step = 256;
  std::int32_t consistent_experts = 8;   ///< per layer.
  double consistent_peak = 3.75;          ///< weight of the hottest consistent expert (x uniform share).
  double consistent_skew = 0.25;         ///< Zipf exponent among the consistent experts.
  std::int32_t temporal_groups = 4;      ///< per layer.
  std::int32_t group_size = 3;
  double temporal_quiet = 0.6;          ///< weight of a temporal expert outside its bursts.
  double burst_rate = 0.30;              ///< chance per step that a quiet group starts a burst.
  double burst_mean_steps = 2.0;         ///< mean burst length in steps (geometric).
  double joint_tokens = 0.22;            ///< per bursting group, share of a step's tokens routed to the whole group.
  double cold_min = 0.05;                ///< cold weights lie in [cold_min, cold_max].
  double cold_max = 0.9;
  double cold_shape = 1.6;               ///< cold weight = cold_min + (cold_max - cold_min) * affinity^cold_shape.
  double step_noise = 0.0;               ///< per step, cold weights x exp(step_noise x N(0,1)) (churn of the hot set).
  double typed_tokens = 0.2;             ///< share of tokens that first pick 2 experts of their token type's set.
  std::int32_t token_types = 14;         ///< per layer, each a random set of 4 cold experts (token-level pairs).
  std::int32_t num_tasks = 3;
  double task_spread = 0.55;              ///< 0: tasks share the cold weights; 1: independent per task.
  double task_mean_steps = 16.0;         ///< mean run of consecutive steps from one task.
  std::uint64_t seed = 1;

  /// Throws config_error naming the field that is out of range.
  void validate() const {
    auto need = [](bool ok, const char* msg) {
      if (!ok) throw config_error(std::string("synthetic_config.") + msg);
    };
    need(num_layers > 0, "num_layers must be positive");
    need(num_experts > 0, "num_experts must be positive");
    need(top_k > 0 && top_k <= num_experts, "top_k must be in [1, num_experts]");
    need(num_steps >= 0, "num_steps must be >= 0");
    need(tokens_per_step > 0, "tokens_per_step must be positive");
    need(consistent_experts >= 0 && temporal_groups >= 0 && group_size >= 2,
         "consistent_experts and temporal_groups must be >= 0 and group_size >= 2");
    need(static_cast<std::int64_t>(consistent_experts) + static_cast<std::int64_t>(temporal_groups) * group_size <= num_experts,
         "consistent_experts + temporal_groups x group_size must not exceed num_experts");
    need(consistent_peak > 0 && std::isfinite(consistent_peak), "consistent_peak must be positive");
    need(consistent_skew >= 0 && std::isfinite(consistent_skew), "consistent_skew must be >= 0");
    need(temporal_quiet > 0 && std::isfinite(temporal_quiet), "temporal_quiet must be positive");
    need(burst_rate >= 0 && burst_rate <= 1, "burst_rate must be in [0, 1]");
    need(burst_mean_steps >= 1 && std::isfinite(burst_mean_steps), "burst_mean_steps must be >= 1");
    need(joint_tokens >= 0 && joint_tokens * temporal_groups <= 1, "joint_tokens x temporal_groups must be in [0, 1]");
    need(cold_min > 0 && cold_max >= cold_min && std::isfinite(cold_max), "cold weights need 0 < cold_min <= cold_max");
    need(cold_shape > 0 && std::isfinite(cold_shape), "cold_shape must be positive");
    need(step_noise >= 0 && std::isfinite(step_noise), "step_noise must be >= 0");
    need(typed_tokens >= 0 && typed_tokens <= 1, "typed_tokens must be in [0, 1]");
    need(token_types >= 1, "token_types must be >= 1");
    need(typed_tokens == 0 || num_experts - consistent_experts - temporal_groups * group_size >= 4,
         "typed_tokens needs at least 4 cold experts");
    need(num_tasks >= 1, "num_tasks must be >= 1");
    need(task_spread >= 0 && task_spread <= 1, "task_spread must be in [0, 1]");
    need(task_mean_steps >= 1 && std::isfinite(task_mean_steps), "task_mean_steps must be >= 1");
  }
};

/// What was planted (ground truth for tests of classes and clustering).
struct synthetic_plant {
  std::vector<std::vector<std::int32_t>> consistent{};            ///< [layer]: consistent experts, increasing.
  std::vector<std::vector<std::vector<std::int32_t>>> groups{};   ///< [layer][group]: temporal group, increasing.
  std::vector<std::vector<std::uint8_t>> bursting{};              ///< [layer][step * groups + g]: group g bursts.
  std::vector<std::int32_t> step_task{};                          ///< task of each step.
};

/// A synthetic trace and its plant.
struct synthetic_trace {
  routing_trace trace;  ///< counts and token routing (ids and gate weights), steps of tokens_per_step.
  synthetic_plant plant;
};

/// Generates a trace. Same config (seed included) gives the same trace on the same platform.
[[nodiscard]] inline synthetic_trace generate_synthetic(const synthetic_config& c = {}) {
  c.validate();
  detail::trace_rng rng(c.seed);
  const auto E = static_cast<std::size_t>(c.num_experts);
  const auto k = static_cast<std::size_t>(c.top_k);
  const auto S = static_cast<std::size_t>(c.num_steps);
  const auto B = static_cast<std::size_t>(c.tokens_per_step);
  const auto G = static_cast<std::size_t>(c.temporal_groups);
  const auto C = static_cast<std::size_t>(c.consistent_experts);
  const auto gs = static_cast<std::size_t>(c.group_size);

  synthetic_trace out;
  auto& plant = out.plant;
  // Tasks of the steps: runs of geometric length.
  plant.step_task.resize(S);
  {
    std::int32_t task = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(c.num_tasks)));
    for (std::size_t s = 0; s < S; ++s) {
      if (s > 0 && c.num_tasks > 1 && rng.uniform() < 1.0 / c.task_mean_steps)
        task = static_cast<std::int32_t>((task + 1 + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(c.num_tasks - 1)))) %
                                         c.num_tasks);
      plant.step_task[s] = task;
    }
  }

  token_routing tok;
  tok.top_k = c.top_k;
  tok.num_tokens = static_cast<std::int64_t>(S * B);
  tok.ids.resize(static_cast<std::size_t>(c.num_layers) * S * B * k);
  tok.weights.resize(tok.ids.size());
  std::vector<double> weight(E), cum(E);
  std::vector<std::int32_t> chosen;
  chosen.reserve(k);
  std::vector<std::uint8_t> taken(E, 0);

  for (std::int32_t l = 0; l < c.num_layers; ++l) {
    std::vector<std::int32_t> perm(E);
    std::iota(perm.begin(), perm.end(), 0);
    for (std::size_t i = E; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    std::vector<double> base(E, 0.0);  // consistent / temporal weights (cold filled per task)
    std::vector<std::int32_t> cons(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(C));
    for (std::size_t i = 0; i < C; ++i) base[static_cast<std::size_t>(perm[i])] = c.consistent_peak * std::pow(static_cast<double>(i + 1), -c.consistent_skew);
    std::vector<std::vector<std::int32_t>> groups(G);
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t j = 0; j < gs; ++j) {
        const auto e = perm[C + g * gs + j];
        groups[g].push_back(e);
        base[static_cast<std::size_t>(e)] = c.temporal_quiet;
      }
    const std::size_t first_cold = C + G * gs;
    // Cold weights per task: affinity a = (1 - spread) * layer affinity + spread * task affinity.
    std::vector<double> layer_aff(E);
    for (auto& a : layer_aff) a = rng.uniform();
    std::vector<std::vector<double>> task_w(static_cast<std::size_t>(c.num_tasks), base);
    for (auto& w : task_w)
      for (std::size_t i = first_cold; i < E; ++i) {
        const auto e = static_cast<std::size_t>(perm[i]);
        const double a = (1 - c.task_spread) * layer_aff[e] + c.task_spread * rng.uniform();
        w[e] = c.cold_min + (c.cold_max - c.cold_min) * std::pow(a, c.cold_shape);
      }
    // Token types: each a set of 4 distinct cold experts.
    constexpr std::size_t type_set = 4, type_picks = 2;
    std::vector<std::int32_t> types(static_cast<std::size_t>(c.token_types) * type_set);
    if (E - first_cold >= type_set)
      for (std::size_t ty = 0; ty < static_cast<std::size_t>(c.token_types); ++ty) {
        std::vector<std::int32_t> pool(perm.begin() + static_cast<std::ptrdiff_t>(first_cold), perm.end());
        for (std::size_t j = 0; j < type_set; ++j) {
          std::swap(pool[j], pool[j + rng.below(pool.size() - j)]);
          types[ty * type_set + j] = pool[j];
        }
      }
    // Burst chains.
    std::vector<std::uint8_t> burst(S * G, 0);
    for (std::size_t g = 0; g < G; ++g) {
      bool on = false;
      for (std::size_t s = 0; s < S; ++s) {
        on = on ? rng.uniform() >= 1.0 / c.burst_mean_steps : rng.uniform() < c.burst_rate;
        burst[s * G + g] = on;
      }
    }
    std::vector<std::size_t> bursting;
    for (std::size_t s = 0; s < S; ++s) {
      weight = task_w[static_cast<std::size_t>(plant.step_task[s])];
      if (c.step_noise > 0)
        for (std::size_t i = first_cold; i < E; ++i) {  // Box-Muller normal deviate
          const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
          const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
          weight[static_cast<std::size_t>(perm[i])] *= std::exp(c.step_noise * z);
        }
      bursting.clear();
      for (std::size_t g = 0; g < G; ++g)
        if (burst[s * G + g]) bursting.push_back(g);
      double total = 0;
      for (std::size_t e = 0; e < E; ++e) cum[e] = (total += weight[e]);
      for (std::size_t t = 0; t < B; ++t) {
        chosen.clear();
        const double u = rng.uniform();
        if (!bursting.empty() && u < c.joint_tokens * static_cast<double>(bursting.size())) {
          const auto g = bursting[static_cast<std::size_t>(u / c.joint_tokens)];
          for (std::size_t j = 0; j < gs && chosen.size() < k; ++j) chosen.push_back(groups[g][j]);
        } else if (c.typed_tokens > 0 && E - first_cold >= type_set && rng.uniform() < c.typed_tokens) {
          const auto* set = types.data() + rng.below(static_cast<std::uint64_t>(c.token_types)) * type_set;
          const auto a = rng.below(type_set), b = (a + 1 + rng.below(type_set - 1)) % type_set;
          for (auto j : {a, b})
            if (chosen.size() < std::min(k, type_picks)) chosen.push_back(set[j]);
        }
        for (auto e : chosen) taken[static_cast<std::size_t>(e)] = 1;
        while (chosen.size() < k) {
          std::size_t e = E;
          for (int attempt = 0; attempt < 16 && e == E; ++attempt) {
            const double x = rng.uniform() * total;
            auto it = std::upper_bound(cum.begin(), cum.end(), x);
            const auto cand = static_cast<std::size_t>(std::min<std::ptrdiff_t>(it - cum.begin(), static_cast<std::ptrdiff_t>(E) - 1));
            if (!taken[cand]) e = cand;
          }
          if (e == E) {  // many collisions: draw among the experts not taken yet
            double rest = 0;
            for (std::size_t i = 0; i < E; ++i)
              if (!taken[i]) rest += weight[i];
            double x = rng.uniform() * rest;
            for (std::size_t i = 0; i < E; ++i) {
              if (taken[i]) continue;
              e = i;
              if ((x -= weight[i]) < 0) break;
            }
          }
          taken[e] = 1;
          chosen.push_back(static_cast<std::int32_t>(e));
        }
        double wsum = 0;
        for (auto e : chosen) wsum += weight[static_cast<std::size_t>(e)];
        const auto row = ((static_cast<std::size_t>(l) * S + s) * B + t) * k;
        for (std::size_t j = 0; j < k; ++j) {
          const auto e = static_cast<std::size_t>(chosen[j]);
          tok.ids[row + j] = chosen[j];
          tok.weights[row + j] = static_cast<float>(weight[e] / wsum);
          taken[e] = 0;
        }
      }
    }
    std::sort(cons.begin(), cons.end());
    plant.consistent.push_back(cons);
    for (auto& g : groups) std::sort(g.begin(), g.end());
    plant.groups.push_back(groups);
    plant.bursting.push_back(burst);
  }
  out.trace = batch_tokens(c.num_layers, c.num_experts, std::move(tok), {.tokens_per_step = c.tokens_per_step});
  return out;
}

}  // namespace gem
