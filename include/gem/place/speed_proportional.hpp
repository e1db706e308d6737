// gem/place/speed_proportional.hpp — `speed_proportional` (ViBE-like): each GPU gets expected load in
// proportion to its speed, hottest experts first onto the GPU that stays least loaded relative to
// its speed. Also `slot_mode`, shared with gem_search. Depends on gem/place/problem.hpp and
// gem/place/detail/{assemble,common}.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "gem/place/detail/assemble.hpp"
#include "gem/place/detail/common.hpp"
#include "gem/place/problem.hpp"
#include "gem/placement.hpp"

namespace gem {

/// What a strategy may change besides which expert sits where.
enum class slot_mode {
  /// Every GPU keeps the cluster's slot count and replicas split an expert's tokens evenly: what
  /// vLLM, SGLang and TensorRT-LLM accept today.
  engine_compatible,
  /// Per-GPU slot counts are chosen (same total, the same counts in every layer) and replica shares
  /// are weighted by the speed of the replica's GPU (SGLang's per-replica probabilities, or a
  /// patched engine).
  extended,
};

/// Speed-proportional placement: GPU speeds are probed from the speed model (a reference step of
/// equal experts); replicas are chosen as EPLB does (largest mean load per replica); replicas are
/// placed heaviest first onto the GPU minimising (load + replica load) / speed among GPUs with a
/// free slot (engine_compatible: the cluster's slots; extended: slot counts in proportion to speed,
/// same total, and replica shares in proportion to speed).
struct speed_proportional {
  slot_mode mode = slot_mode::engine_compatible;

  void validate() const {
    if (mode != slot_mode::engine_compatible && mode != slot_mode::extended)
      throw config_error("speed_proportional.mode is not a slot_mode value");
  }

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& model) const {
    validate();
    problem.validate();
    const auto& c = problem.cluster;
    const auto G = c.num_gpus;
    const auto E = problem.num_experts;
    const auto P = static_cast<std::int32_t>(c.total_slots());
    std::vector<layer_placement> layers;
    // Extended: slot counts in proportion to the speeds probed on the first layer's mean load.
    std::vector<std::int32_t> caps(static_cast<std::size_t>(G));
    for (std::int32_t g = 0; g < G; ++g) caps[g] = c.slots(gpu_id{g});
    if (mode == slot_mode::extended) {
      const auto& m0 = problem.layers.front().mean;
      const auto speed = detail::probe_speeds(model, G, std::max(1, P / G), std::accumulate(m0.begin(), m0.end(), 0.0) / E);
      caps = detail::proportional_counts(speed, P);
    }
    for (const auto& ll : problem.layers) {
      const double mean_row = std::accumulate(ll.mean.begin(), ll.mean.end(), 0.0) / E;
      const auto speed = detail::probe_speeds(model, G, std::max(1, P / G), mean_row);
      const auto cnt = detail::replica_counts(ll.mean, P - E);
      std::vector<std::pair<double, std::int32_t>> reps;  // (load per replica, expert)
      for (std::int32_t e = 0; e < E; ++e)
        for (std::int32_t r = 0; r < cnt[e]; ++r) reps.emplace_back(ll.mean[e] / cnt[e], e);
      std::stable_sort(reps.begin(), reps.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      std::vector<double> load(static_cast<std::size_t>(G), 0.0);
      std::vector<std::vector<std::int32_t>> gpus(static_cast<std::size_t>(G));
      for (const auto& [w, e] : reps) {
        std::int32_t best = -1;
        double best_score = 0;
        for (int pass = 0; pass < 2 && best < 0; ++pass)  // pass 1 allows a second copy on one GPU
          for (std::int32_t g = 0; g < G; ++g) {
            if (static_cast<std::int32_t>(gpus[g].size()) >= caps[g]) continue;
            if (pass == 0 && std::find(gpus[g].begin(), gpus[g].end(), e) != gpus[g].end()) continue;
            const double score = (load[g] + w) / speed[g];
            if (best < 0 || score < best_score) best = g, best_score = score;
          }
        gpus[best].push_back(e);
        load[best] += w;
      }
      std::vector<std::vector<double>> shares;
      if (mode == slot_mode::extended) {
        std::vector<double> speed_sum(static_cast<std::size_t>(E), 0.0);
        for (std::int32_t g = 0; g < G; ++g)
          for (auto e : gpus[g]) speed_sum[e] += speed[g];
        shares.resize(static_cast<std::size_t>(G));
        for (std::int32_t g = 0; g < G; ++g)
          for (auto e : gpus[g]) shares[g].push_back(speed[g] / speed_sum[e]);
      }
      layers.push_back(detail::layer_from_gpus(gpus, shares));
    }
    cluster_spec out = c;
    if (mode == slot_mode::extended) out.slots_per_gpu = caps;
    return placement(std::move(out), E, std::move(layers));
  }
};
static_assert(placement_strategy<speed_proportional, detail::speed_archetype>);

}  // namespace gem
