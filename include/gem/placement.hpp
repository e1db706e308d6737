// gem/placement.hpp — placement: per layer, which logical expert each physical slot holds, which
// GPU holds the slot, and what share of the expert's tokens the slot takes; with EPLB's derived
// views (phy2log, log2phy, logcnt). Depends on gem/cluster.hpp, gem/error.hpp, gem/ids.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/ids.hpp"

namespace gem {

/// One layer of a placement, indexed by physical slot p in [0, P).
/// - `phy2log[p]`: logical expert held by slot p.
/// - `slot_gpu[p]`: GPU that holds slot p.
/// - `share[p]`: fraction of its expert's tokens that slot p receives; empty means an even split
///   over the expert's replicas (what vLLM, SGLang and TRT-LLM do at run time).
/// - `replica_rank[p]`: position of slot p in `log2phy[e]`; empty means slot order. EPLB orders
///   replicas by the rank it assigned while replicating, which is not always slot order.
struct layer_placement {
  std::vector<std::int32_t> phy2log{};
  std::vector<std::int32_t> slot_gpu{};
  std::vector<double> share{};
  std::vector<std::int32_t> replica_rank{};

  friend bool operator==(const layer_placement&, const layer_placement&) = default;
};

/// A validated placement of `num_experts` logical experts on a cluster, for every layer.
/// Invariants, checked on construction (placement_error names layer and expert, slot or GPU):
/// every expert has at least one replica; no GPU holds more slots than the cluster gives it;
/// replica shares are finite, non-negative and sum to 1 within 1e-9 per expert; sizes agree;
/// replica ranks of an expert are 0..count-1.
class placement {
 public:
  static constexpr double share_tolerance = 1e-9;

  placement() = default;

  placement(cluster_spec cluster, std::int32_t num_experts, std::vector<layer_placement> layers)
      : cluster_(std::move(cluster)), num_experts_(num_experts), layers_(std::move(layers)) {
    cluster_.validate();
    if (num_experts_ <= 0)
      throw placement_error("placement: num_experts must be positive, got " + std::to_string(num_experts_));
    if (layers_.empty()) throw placement_error("placement: no layers");
    for (std::size_t l = 0; l < layers_.size(); ++l) normalize_and_validate(static_cast<std::int32_t>(l), layers_[l]);
    for (std::int32_t l = 0; l < num_layers(); ++l) {
      const auto c = logcnt(layer_id{l});
      max_replicas_ = std::max(max_replicas_, *std::max_element(c.begin(), c.end()));
    }
  }

  /// EPLB's convention: `phy2log[l]` has P = total slots entries and slot p lives on GPU
  /// p / (P / num_gpus) (rank-major blocks; needs equal slots); replicas split evenly; ranks in
  /// slot order unless `replica_rank` is given ([L][P]).
  [[nodiscard]] static placement from_phy2log(cluster_spec cluster, std::int32_t num_experts,
                                              const std::vector<std::vector<std::int32_t>>& phy2log,
                                              const std::vector<std::vector<std::int32_t>>& replica_rank = {}) {
    cluster.validate();
    std::vector<layer_placement> layers(phy2log.size());
    for (std::size_t l = 0; l < phy2log.size(); ++l) {
      const auto P = phy2log[l].size();
      if (P % static_cast<std::size_t>(cluster.num_gpus) != 0)
        throw placement_error("placement: layer " + std::to_string(l) + ": " + std::to_string(P) +
                              " slots do not divide evenly over " + std::to_string(cluster.num_gpus) + " GPUs");
      const auto per_gpu = P / static_cast<std::size_t>(cluster.num_gpus);
      layers[l].phy2log = phy2log[l];
      layers[l].slot_gpu.resize(P);
      for (std::size_t p = 0; p < P; ++p) layers[l].slot_gpu[p] = static_cast<std::int32_t>(p / per_gpu);
      if (!replica_rank.empty()) layers[l].replica_rank = replica_rank.at(l);
    }
    return placement(std::move(cluster), num_experts, std::move(layers));
  }

  [[nodiscard]] const cluster_spec& cluster() const noexcept { return cluster_; }
  [[nodiscard]] std::int32_t num_experts() const noexcept { return num_experts_; }
  [[nodiscard]] std::int32_t num_layers() const noexcept { return static_cast<std::int32_t>(layers_.size()); }
  [[nodiscard]] std::int32_t num_gpus() const noexcept { return cluster_.num_gpus; }
  [[nodiscard]] const layer_placement& layer(layer_id l) const { return layers_.at(static_cast<std::size_t>(l.value)); }
  [[nodiscard]] const std::vector<layer_placement>& layers() const noexcept { return layers_; }
  /// Number of physical slots used in layer `l`.
  [[nodiscard]] std::int32_t num_slots(layer_id l) const { return static_cast<std::int32_t>(layer(l).phy2log.size()); }

  /// `logcnt[e]`: replicas of each expert in layer `l`.
  [[nodiscard]] std::vector<std::int32_t> logcnt(layer_id l) const {
    std::vector<std::int32_t> cnt(static_cast<std::size_t>(num_experts_), 0);
    for (auto e : layer(l).phy2log) ++cnt[e];
    return cnt;
  }
  /// Largest replica count of any expert in any layer (the last dimension of `log2phy`).
  [[nodiscard]] std::int32_t max_replicas() const noexcept { return max_replicas_; }
  /// `log2phy[e][r]` for layer `l`, flattened [E][width]: slot of expert e's r-th replica, -1
  /// padded. `width` defaults to max_replicas() (EPLB pads every layer to the global maximum).
  [[nodiscard]] std::vector<std::int32_t> log2phy(layer_id l, std::int32_t width = 0) const {
    if (width <= 0) width = max_replicas();
    const auto& lp = layer(l);
    std::vector<std::int32_t> out(static_cast<std::size_t>(num_experts_) * width, -1);
    for (std::size_t p = 0; p < lp.phy2log.size(); ++p) {
      const auto r = lp.replica_rank[p];
      if (r < width) out[static_cast<std::size_t>(lp.phy2log[p]) * width + r] = static_cast<std::int32_t>(p);
    }
    return out;
  }
  /// Slots held by GPU `g` in layer `l`, ascending.
  [[nodiscard]] std::vector<std::int32_t> gpu_slots(layer_id l, gpu_id g) const {
    std::vector<std::int32_t> out;
    const auto& lp = layer(l);
    for (std::size_t p = 0; p < lp.slot_gpu.size(); ++p)
      if (lp.slot_gpu[p] == g.value) out.push_back(static_cast<std::int32_t>(p));
    return out;
  }

  friend bool operator==(const placement& a, const placement& b) {
    return a.cluster_.num_gpus == b.cluster_.num_gpus && a.cluster_.num_nodes == b.cluster_.num_nodes &&
           a.cluster_.total_slots() == b.cluster_.total_slots() && a.num_experts_ == b.num_experts_ &&
           a.layers_ == b.layers_;
  }

 private:
  void normalize_and_validate(std::int32_t l, layer_placement& lp) const {
    const auto where = "placement: layer " + std::to_string(l) + ": ";
    const auto P = lp.phy2log.size();
    if (lp.slot_gpu.size() != P)
      throw placement_error(where + "slot_gpu holds " + std::to_string(lp.slot_gpu.size()) +
                            " values but phy2log holds " + std::to_string(P));
    if (!lp.share.empty() && lp.share.size() != P)
      throw placement_error(where + "share holds " + std::to_string(lp.share.size()) +
                            " values but phy2log holds " + std::to_string(P));
    if (!lp.replica_rank.empty() && lp.replica_rank.size() != P)
      throw placement_error(where + "replica_rank holds " + std::to_string(lp.replica_rank.size()) +
                            " values but phy2log holds " + std::to_string(P));
    std::vector<std::int32_t> cnt(static_cast<std::size_t>(num_experts_), 0);
    std::vector<std::int32_t> used(static_cast<std::size_t>(cluster_.num_gpus), 0);
    for (std::size_t p = 0; p < P; ++p) {
      const auto e = lp.phy2log[p], g = lp.slot_gpu[p];
      if (e < 0 || e >= num_experts_)
        throw placement_error(where + "slot " + std::to_string(p) + " holds expert " + std::to_string(e) +
                              ", outside [0, " + std::to_string(num_experts_) + ")");
      if (g < 0 || g >= cluster_.num_gpus)
        throw placement_error(where + "slot " + std::to_string(p) + " is on GPU " + std::to_string(g) +
                              ", outside [0, " + std::to_string(cluster_.num_gpus) + ")");
      ++cnt[e];
      ++used[g];
    }
    for (std::int32_t e = 0; e < num_experts_; ++e)
      if (cnt[e] == 0) throw placement_error(where + "expert " + std::to_string(e) + " has no replica");
    for (std::int32_t g = 0; g < cluster_.num_gpus; ++g)
      if (used[g] > cluster_.slots(gpu_id{g}))
        throw placement_error(where + "GPU " + std::to_string(g) + " holds " + std::to_string(used[g]) +
                              " slots but has only " + std::to_string(cluster_.slots(gpu_id{g})));
    if (lp.share.empty()) {
      lp.share.resize(P);
      for (std::size_t p = 0; p < P; ++p) lp.share[p] = 1.0 / cnt[lp.phy2log[p]];
    }
    std::vector<double> sum(static_cast<std::size_t>(num_experts_), 0.0);
    for (std::size_t p = 0; p < P; ++p) {
      if (!std::isfinite(lp.share[p]) || lp.share[p] < 0.0 || lp.share[p] > 1.0 + share_tolerance)
        throw placement_error(where + "slot " + std::to_string(p) + " (expert " + std::to_string(lp.phy2log[p]) +
                              ") has share " + std::to_string(lp.share[p]) + ", outside [0, 1]");
      sum[lp.phy2log[p]] += lp.share[p];
    }
    for (std::int32_t e = 0; e < num_experts_; ++e)
      if (std::abs(sum[e] - 1.0) > share_tolerance)
        throw placement_error(where + "shares of expert " + std::to_string(e) + " sum to " +
                              std::to_string(sum[e]) + ", not 1");
    if (lp.replica_rank.empty()) {
      lp.replica_rank.resize(P);
      std::vector<std::int32_t> next(static_cast<std::size_t>(num_experts_), 0);
      for (std::size_t p = 0; p < P; ++p) lp.replica_rank[p] = next[lp.phy2log[p]]++;
    } else {
      std::vector<std::vector<char>> seen(static_cast<std::size_t>(num_experts_));
      for (std::int32_t e = 0; e < num_experts_; ++e) seen[e].assign(static_cast<std::size_t>(cnt[e]), 0);
      for (std::size_t p = 0; p < P; ++p) {
        const auto e = lp.phy2log[p], r = lp.replica_rank[p];
        if (r < 0 || r >= cnt[e] || seen[e][r])
          throw placement_error(where + "slot " + std::to_string(p) + " (expert " + std::to_string(e) +
                                ") has replica rank " + std::to_string(r) + ", not a distinct value in [0, " +
                                std::to_string(cnt[e]) + ")");
        seen[e][r] = 1;
      }
    }
  }

  cluster_spec cluster_{};
  std::int32_t num_experts_ = 0;
  std::vector<layer_placement> layers_{};
  std::int32_t max_replicas_ = 1;
};

}  // namespace gem
