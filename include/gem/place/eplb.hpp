// gem/place/eplb.hpp — DeepSeek EPLB's placement (hierarchical and global policies), output-identical
// to the reference (phy2log, log2phy, logcnt): the free function `rebalance_experts` and the `eplb`
// strategy. Depends on gem/place/problem.hpp and gem/placement.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "gem/error.hpp"
#include "gem/place/detail/assemble.hpp"
#include "gem/place/problem.hpp"
#include "gem/placement.hpp"

namespace gem {

/// What EPLB's `rebalance_experts` returns, plus the replica rank it assigned to each slot (needed
/// to rebuild log2phy from phy2log; EPLB computes it and uses it for the scatter).
struct eplb_result {
  std::vector<std::vector<std::int32_t>> phy2log{};   ///< [L][P] logical expert of slot p
  std::vector<std::int32_t> log2phy{};                ///< [L][E][max_replicas] row-major: slots, -1 padded
  std::int32_t max_replicas = 0;                      ///< last dimension of log2phy (EPLB's maxlogcnt)
  std::vector<std::vector<std::int32_t>> logcnt{};    ///< [L][E] replicas per expert
  std::vector<std::vector<std::int32_t>> phy_rank{};  ///< [L][P] replica rank of slot p

  /// log2phy[l][e][r] (-1 past the expert's replicas).
  [[nodiscard]] std::int32_t log2phy_at(std::size_t l, std::size_t e, std::size_t r) const {
    return log2phy[(l * logcnt.at(l).size() + e) * static_cast<std::size_t>(max_replicas) + r];
  }
  /// log2phy as nested rows [L][E][max_replicas] (what EPLB's JSON and torch tensors look like).
  [[nodiscard]] std::vector<std::vector<std::vector<std::int32_t>>> log2phy_nested() const {
    std::vector<std::vector<std::vector<std::int32_t>>> out(logcnt.size());
    for (std::size_t l = 0; l < logcnt.size(); ++l)
      for (std::size_t e = 0; e < logcnt[l].size(); ++e) {
        const auto* row = log2phy.data() + (l * logcnt[l].size() + e) * static_cast<std::size_t>(max_replicas);
        out[l].emplace_back(row, row + max_replicas);
      }
    return out;
  }
};

namespace detail {

// Both helpers work on one row in float32, as EPLB does after `weight.float()`: sums and
// divisions round to float, comparisons are on floats. The order of EPLB's descending sort is
// reproduced by sorting (weight, index) pairs with std::sort on "weight greater", which is what
// PyTorch's CPU sort does for `sort(descending=True)`: ties (replicas of one expert have equal
// weights) then come out in the same order, and so do the replica ranks in log2phy. (Checked
// against every reference vector with libstdc++; a different standard library may order ties
// differently, which changes log2phy's replica order but not phy2log or logcnt.)

/// EPLB's balanced_packing for one row: n items of weight w into m packs of n/m items each; each
/// item (heaviest first) goes to the lightest pack with room, lowest index on ties.
/// Scratch buffers reused across rows.
struct eplb_scratch {
  std::vector<std::pair<float, std::int32_t>> kv{};
  std::vector<float> pack_weight{};
  std::vector<std::int32_t> pack_items{};
};

inline void eplb_balanced_packing(const float* w, std::int32_t n, std::int32_t m, std::int32_t* pack,
                                  std::int32_t* rank, eplb_scratch& sc) {
  const std::int32_t per = n / m;
  if (per == 1) {
    for (std::int32_t i = 0; i < n; ++i) pack[i] = i, rank[i] = 0;
    return;
  }
  auto& kv = sc.kv;
  kv.resize(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) kv[i] = {w[i], i};
  std::sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  sc.pack_weight.assign(static_cast<std::size_t>(m), 0.0f);
  sc.pack_items.assign(static_cast<std::size_t>(m), 0);
  float* pw = sc.pack_weight.data();
  std::int32_t* pi = sc.pack_items.data();
  // A full pack's weight becomes +inf, so the first lightest pack is always one with room.
  for (const auto& [weight, item] : kv) {
    // The first lightest pack: a minimum over two independent chains (lower index on ties).
    std::int32_t b0 = 0, b1 = m / 2;
    for (std::int32_t p = 1; p < m / 2; ++p) b0 = pw[p] < pw[b0] ? p : b0;
    for (std::int32_t p = m / 2 + 1; p < m; ++p) b1 = pw[p] < pw[b1] ? p : b1;
    const std::int32_t best = m / 2 == 0 || pw[b0] <= pw[b1] ? b0 : b1;
    pack[item] = best;
    rank[item] = pi[best];
    pw[best] += weight;
    if (++pi[best] == per) pw[best] = std::numeric_limits<float>::infinity();
  }
}

/// EPLB's replicate_experts for one row: num_phy slots for num_log experts; each extra slot goes to
/// the expert with the largest w / count (float32; first index on ties).
inline void eplb_replicate(const float* w, std::int32_t num_log, std::int32_t num_phy, std::int32_t* phy2log,
                           std::int32_t* rank, std::int32_t* logcnt) {
  for (std::int32_t i = 0; i < num_log; ++i) phy2log[i] = i, rank[i] = 0, logcnt[i] = 1;
  if (num_phy == num_log) return;
  // ratio[e] = w[e] / logcnt[e] in float, recomputed only for the expert that changed.
  float ratio_buf[512];
  std::vector<float> ratio_big;
  float* ratio = ratio_buf;
  if (num_log > 512) ratio_big.resize(static_cast<std::size_t>(num_log)), ratio = ratio_big.data();
  for (std::int32_t e = 0; e < num_log; ++e) ratio[e] = w[e];
  for (std::int32_t i = num_log; i < num_phy; ++i) {
    // First index of the largest ratio: the maximum over four independent chains, then a scan.
    float m4[4] = {ratio[0], ratio[0], ratio[0], ratio[0]};
    std::int32_t e = 0;
    for (; e + 4 <= num_log; e += 4)
      for (int k = 0; k < 4; ++k) m4[k] = ratio[e + k] > m4[k] ? ratio[e + k] : m4[k];
    for (; e < num_log; ++e) m4[0] = ratio[e] > m4[0] ? ratio[e] : m4[0];
    const float best_v = std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
    std::int32_t best = 0;
    while (ratio[best] != best_v) ++best;
    phy2log[i] = best;
    rank[i] = logcnt[best];
    ++logcnt[best];
    ratio[best] = w[best] / static_cast<float>(logcnt[best]);
  }
}

}  // namespace detail

/// DeepSeek EPLB's `rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)`:
/// `weight[L][E]` is the expected load of each expert (converted to float32, as EPLB does). Uses
/// the hierarchical policy (groups packed onto nodes, replicas within nodes, then GPUs) when
/// num_groups % num_nodes == 0, else the global policy (the same with one group and one node).
/// Slot p lives on GPU p / (num_replicas / num_gpus). Throws config_error naming the argument
/// that breaks EPLB's preconditions (E % num_groups, num_gpus % num_nodes, num_replicas %
/// num_gpus, num_replicas >= E, finite non-negative weights).
[[nodiscard]] inline eplb_result rebalance_experts(const std::vector<std::vector<double>>& weight,
                                                   std::int32_t num_replicas, std::int32_t num_groups,
                                                   std::int32_t num_nodes, std::int32_t num_gpus) {
  const auto L = static_cast<std::int32_t>(weight.size());
  if (L == 0) throw config_error("rebalance_experts: weight has no layers");
  const auto E = static_cast<std::int32_t>(weight[0].size());
  if (E == 0) throw config_error("rebalance_experts: weight has no experts");
  for (std::int32_t l = 0; l < L; ++l) {
    if (static_cast<std::int32_t>(weight[l].size()) != E)
      throw config_error("rebalance_experts: weight layer " + std::to_string(l) + " holds " +
                         std::to_string(weight[l].size()) + " experts, layer 0 holds " + std::to_string(E));
    for (std::int32_t e = 0; e < E; ++e)
      if (!std::isfinite(weight[l][e]) || weight[l][e] < 0)
        throw config_error("rebalance_experts: weight of layer " + std::to_string(l) + " expert " +
                           std::to_string(e) + " is " + std::to_string(weight[l][e]) +
                           " (must be finite and non-negative)");
  }
  if (num_gpus <= 0) throw config_error("rebalance_experts: num_gpus must be positive");
  if (num_nodes <= 0) throw config_error("rebalance_experts: num_nodes must be positive");
  if (num_groups <= 0) throw config_error("rebalance_experts: num_groups must be positive");
  if (num_replicas < E)
    throw config_error("rebalance_experts: num_replicas (" + std::to_string(num_replicas) +
                       ") must be at least the number of experts (" + std::to_string(E) + ")");
  if (num_replicas % num_gpus != 0)
    throw config_error("rebalance_experts: num_replicas (" + std::to_string(num_replicas) +
                       ") must be a multiple of num_gpus (" + std::to_string(num_gpus) + ")");
  // Global policy: the hierarchical procedure with one group and one node (EPLB checks the
  // divisibility below only for the values it actually uses).
  const bool hierarchical = num_groups % num_nodes == 0;
  const std::int32_t ng = hierarchical ? num_groups : 1, nn = hierarchical ? num_nodes : 1;
  if (num_gpus % nn != 0)
    throw config_error("rebalance_experts: num_gpus (" + std::to_string(num_gpus) +
                       ") must be a multiple of num_nodes (" + std::to_string(nn) + ") for the hierarchical policy");
  if (E % ng != 0)
    throw config_error("rebalance_experts: num_groups (" + std::to_string(ng) +
                       ") must divide the number of experts (" + std::to_string(E) + ") for the hierarchical policy");
  const std::int32_t P = num_replicas, G = num_gpus;
  const std::int32_t group_size = E / ng, groups_per_node = ng / nn, per_gpu = P / G;
  const std::int32_t log_per_node = E / nn, phy_per_node = P / nn, gpus_per_node = G / nn;

  eplb_result out;
  out.phy2log.assign(static_cast<std::size_t>(L), std::vector<std::int32_t>(static_cast<std::size_t>(P)));
  out.phy_rank = out.phy2log;
  out.logcnt.assign(static_cast<std::size_t>(L), std::vector<std::int32_t>(static_cast<std::size_t>(E)));

  std::vector<float> w(static_cast<std::size_t>(E)), group_w(static_cast<std::size_t>(ng));
  std::vector<std::int32_t> gpack(static_cast<std::size_t>(ng)), grank(static_cast<std::size_t>(ng));
  std::vector<std::int32_t> log2mlog(static_cast<std::size_t>(E)), mlog2log(static_cast<std::size_t>(E));
  std::vector<float> mlog_w(static_cast<std::size_t>(log_per_node)), phy_w(static_cast<std::size_t>(phy_per_node));
  std::vector<std::int32_t> phy2mlog(static_cast<std::size_t>(phy_per_node)), phyrank(phy2mlog.size()),
      mlogcnt(static_cast<std::size_t>(E)), pack(phy2mlog.size()), rip(phy2mlog.size()), pphy2phy(phy2mlog.size());
  detail::eplb_scratch scratch;

  for (std::int32_t l = 0; l < L; ++l) {
    for (std::int32_t e = 0; e < E; ++e) w[e] = static_cast<float>(weight[l][e]);
    // Step 1: pack expert groups onto nodes by their summed load.
    for (std::int32_t g = 0; g < ng; ++g) {
      float s = 0.0f;
      for (std::int32_t j = 0; j < group_size; ++j) s += w[g * group_size + j];
      group_w[g] = s;
    }
    detail::eplb_balanced_packing(group_w.data(), ng, nn, gpack.data(), grank.data(), scratch);
    for (std::int32_t g = 0; g < ng; ++g)
      for (std::int32_t j = 0; j < group_size; ++j)
        log2mlog[g * group_size + j] = (gpack[g] * groups_per_node + grank[g]) * group_size + j;
    for (std::int32_t e = 0; e < E; ++e) mlog2log[log2mlog[e]] = e;
    // Steps 2 and 3, per node: replicate within the node, then pack replicas onto its GPUs.
    for (std::int32_t n = 0; n < nn; ++n) {
      for (std::int32_t k = 0; k < log_per_node; ++k) mlog_w[k] = w[mlog2log[n * log_per_node + k]];
      std::int32_t* cnt = mlogcnt.data() + n * log_per_node;
      detail::eplb_replicate(mlog_w.data(), log_per_node, phy_per_node, phy2mlog.data(), phyrank.data(), cnt);
      for (std::int32_t j = 0; j < phy_per_node; ++j)
        phy_w[j] = mlog_w[phy2mlog[j]] / static_cast<float>(cnt[phy2mlog[j]]);
      detail::eplb_balanced_packing(phy_w.data(), phy_per_node, gpus_per_node, pack.data(), rip.data(), scratch);
      for (std::int32_t j = 0; j < phy_per_node; ++j) pphy2phy[pack[j] * per_gpu + rip[j]] = j;
      for (std::int32_t q = 0; q < phy_per_node; ++q) {
        const std::int32_t j = pphy2phy[q];
        out.phy2log[l][n * phy_per_node + q] = mlog2log[phy2mlog[j] + n * log_per_node];
        out.phy_rank[l][n * phy_per_node + q] = phyrank[j];
      }
    }
    for (std::int32_t e = 0; e < E; ++e) out.logcnt[l][e] = mlogcnt[log2mlog[e]];
  }
  std::int32_t max_cnt = 1;
  for (const auto& row : out.logcnt) max_cnt = std::max(max_cnt, *std::max_element(row.begin(), row.end()));
  out.max_replicas = max_cnt;
  out.log2phy.assign(static_cast<std::size_t>(L) * E * max_cnt, -1);
  for (std::int32_t l = 0; l < L; ++l)
    for (std::int32_t p = 0; p < P; ++p)
      out.log2phy[(static_cast<std::size_t>(l) * E + out.phy2log[l][p]) * max_cnt + out.phy_rank[l][p]] = p;
  return out;
}

/// DeepSeek EPLB as a strategy: balances each layer's mean load (`layer_loads::mean`) over the
/// cluster's slots with `rebalance_experts`, ignoring GPU speed (what engines do today). Needs
/// equal slots per GPU; uses `placement_problem::num_groups` and `cluster.num_nodes`.
/// `policy` forces the hierarchical or global policy; `automatic` chooses as EPLB does.
struct eplb {
  enum class policy_kind { automatic, hierarchical, global };
  policy_kind policy = policy_kind::automatic;

  void validate() const {
    if (policy != policy_kind::automatic && policy != policy_kind::hierarchical && policy != policy_kind::global)
      throw config_error("eplb.policy is not one of automatic, hierarchical, global");
  }

  template <speed_model M>
  [[nodiscard]] placement place(const placement_problem& problem, const M& /*model*/) const {
    validate();
    problem.validate();
    const auto& c = problem.cluster;
    if (!c.equal_slots())
      throw config_error("eplb needs equal slots per GPU (cluster_spec.slots_per_gpu differs between GPUs)");
    std::int32_t groups = problem.num_groups, nodes = c.num_nodes;
    if (policy == policy_kind::hierarchical && groups % nodes != 0)
      throw config_error("eplb.policy is hierarchical but num_groups (" + std::to_string(groups) +
                         ") is not a multiple of cluster.num_nodes (" + std::to_string(nodes) + ")");
    if (policy == policy_kind::global) groups = 1, nodes = 1;
    std::vector<std::vector<double>> weight;
    weight.reserve(problem.layers.size());
    for (const auto& ll : problem.layers) weight.push_back(ll.mean);
    const auto r = rebalance_experts(weight, static_cast<std::int32_t>(c.total_slots()), groups, nodes, c.num_gpus);
    return placement::from_phy2log(c, problem.num_experts, r.phy2log, r.phy_rank);
  }
};
static_assert(placement_strategy<eplb, detail::speed_archetype>);

}  // namespace gem
