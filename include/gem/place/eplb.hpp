// gem/place/eplb.hpp — DeepSeek EPLB's placement (hierarchical and global policies), output-identical
// to the reference (phy2log, log2phy, logcnt): the free function `rebalance_experts` and the `eplb`
// strategy. Depends on gem/place/problem.hpp and gem/placement.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
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

/// The shape of an EPLB call and EPLB's preconditions on it (messages name the argument).
struct eplb_shape {
  std::int32_t num_layers = 0, num_experts = 0, num_replicas = 0, num_groups = 0, num_nodes = 0, num_gpus = 0;

  void validate() const {
    if (num_layers <= 0) throw config_error("rebalance_experts: weight has no layers");
    if (num_experts <= 0) throw config_error("rebalance_experts: weight has no experts");
    if (num_gpus <= 0) throw config_error("rebalance_experts: num_gpus must be positive");
    if (num_nodes <= 0) throw config_error("rebalance_experts: num_nodes must be positive");
    if (num_groups <= 0) throw config_error("rebalance_experts: num_groups must be positive");
    if (num_replicas < num_experts)
      throw config_error("rebalance_experts: num_replicas (" + std::to_string(num_replicas) +
                         ") must be at least the number of experts (" + std::to_string(num_experts) + ")");
    if (num_replicas % num_gpus != 0)
      throw config_error("rebalance_experts: num_replicas (" + std::to_string(num_replicas) +
                         ") must be a multiple of num_gpus (" + std::to_string(num_gpus) + ")");
    if (num_gpus % nodes() != 0)
      throw config_error("rebalance_experts: num_gpus (" + std::to_string(num_gpus) + ") must be a multiple of num_nodes (" +
                         std::to_string(nodes()) + ") for the hierarchical policy");
    if (num_experts % groups() != 0)
      throw config_error("rebalance_experts: num_groups (" + std::to_string(groups()) +
                         ") must divide the number of experts (" + std::to_string(num_experts) +
                         ") for the hierarchical policy");
  }
  /// EPLB's policy choice: hierarchical when groups divide over nodes, else global (one group, one node).
  [[nodiscard]] bool hierarchical() const { return num_groups % num_nodes == 0; }
  [[nodiscard]] std::int32_t groups() const { return hierarchical() ? num_groups : 1; }
  [[nodiscard]] std::int32_t nodes() const { return hierarchical() ? num_nodes : 1; }
};

/// Throws config_error naming the first weight that is not finite and non-negative.
template <class T>
void eplb_check_weights(const T* weight, const eplb_shape& s) {
  const std::size_t n = static_cast<std::size_t>(s.num_layers) * static_cast<std::size_t>(s.num_experts);
  bool ok = true;
  for (std::size_t i = 0; i < n; ++i) ok &= std::isfinite(weight[i]) && weight[i] >= 0;  // no early exit: vectorizes
  if (ok) return;
  for (std::size_t i = 0; i < n; ++i)
    if (!(std::isfinite(weight[i]) && weight[i] >= 0))
      throw config_error("rebalance_experts: weight of layer " + std::to_string(i / s.num_experts) + " expert " +
                         std::to_string(i % s.num_experts) + " is " + std::to_string(static_cast<double>(weight[i])) +
                         " (must be finite and non-negative)");
}

/// Steps 1-3 of EPLB for every layer, into caller-owned flat buffers (what the Python binding hands
/// numpy's arrays to): weight [L][E] row-major (checked beforehand), out phy2log
/// [L][P], phy_rank [L][P] (replica rank of each slot) and logcnt [L][E]. Returns the largest
/// replica count (log2phy's last dimension).
template <class T, class Int>
std::int32_t eplb_rebalance_into(const T* weight, const eplb_shape& s, Int* phy2log, std::int32_t* phy_rank,
                                    Int* logcnt) {
  const std::int32_t L = s.num_layers, E = s.num_experts, P = s.num_replicas, G = s.num_gpus;
  const std::int32_t ng = s.groups(), nn = s.nodes();
  const std::int32_t group_size = E / ng, groups_per_node = ng / nn, per_gpu = P / G;
  const std::int32_t log_per_node = E / nn, phy_per_node = P / nn, gpus_per_node = G / nn;

  std::vector<float> w(static_cast<std::size_t>(E)), group_w(static_cast<std::size_t>(ng));
  std::vector<std::int32_t> gpack(static_cast<std::size_t>(ng)), grank(static_cast<std::size_t>(ng));
  std::vector<std::int32_t> log2mlog(static_cast<std::size_t>(E)), mlog2log(static_cast<std::size_t>(E));
  std::vector<float> mlog_w(static_cast<std::size_t>(log_per_node)), phy_w(static_cast<std::size_t>(phy_per_node));
  std::vector<std::int32_t> phy2mlog(static_cast<std::size_t>(phy_per_node)), phyrank(phy2mlog.size()),
      mlogcnt(static_cast<std::size_t>(E)), pack(phy2mlog.size()), rip(phy2mlog.size()), pphy2phy(phy2mlog.size());
  eplb_scratch scratch;
  std::int32_t max_cnt = 1;

  for (std::int32_t l = 0; l < L; ++l) {
    const T* wl = weight + static_cast<std::size_t>(l) * E;
    Int* p2l = phy2log + static_cast<std::size_t>(l) * P;
    std::int32_t* rank = phy_rank + static_cast<std::size_t>(l) * P;
    for (std::int32_t e = 0; e < E; ++e) w[e] = static_cast<float>(wl[e]);  // EPLB's weight.float()
    // Step 1: pack expert groups onto nodes by their summed load.
    for (std::int32_t g = 0; g < ng; ++g) {
      float sum = 0.0f;
      for (std::int32_t j = 0; j < group_size; ++j) sum += w[g * group_size + j];
      group_w[g] = sum;
    }
    eplb_balanced_packing(group_w.data(), ng, nn, gpack.data(), grank.data(), scratch);
    for (std::int32_t g = 0; g < ng; ++g)
      for (std::int32_t j = 0; j < group_size; ++j)
        log2mlog[g * group_size + j] = (gpack[g] * groups_per_node + grank[g]) * group_size + j;
    for (std::int32_t e = 0; e < E; ++e) mlog2log[log2mlog[e]] = e;
    // Steps 2 and 3, per node: replicate within the node, then pack replicas onto its GPUs.
    for (std::int32_t n = 0; n < nn; ++n) {
      for (std::int32_t k = 0; k < log_per_node; ++k) mlog_w[k] = w[mlog2log[n * log_per_node + k]];
      std::int32_t* cnt = mlogcnt.data() + n * log_per_node;
      eplb_replicate(mlog_w.data(), log_per_node, phy_per_node, phy2mlog.data(), phyrank.data(), cnt);
      for (std::int32_t j = 0; j < phy_per_node; ++j)
        phy_w[j] = mlog_w[phy2mlog[j]] / static_cast<float>(cnt[phy2mlog[j]]);
      eplb_balanced_packing(phy_w.data(), phy_per_node, gpus_per_node, pack.data(), rip.data(), scratch);
      for (std::int32_t j = 0; j < phy_per_node; ++j) pphy2phy[pack[j] * per_gpu + rip[j]] = j;
      for (std::int32_t q = 0; q < phy_per_node; ++q) {
        const std::int32_t j = pphy2phy[q];
        p2l[n * phy_per_node + q] = mlog2log[phy2mlog[j] + n * log_per_node];
        rank[n * phy_per_node + q] = phyrank[j];
      }
    }
    Int* cl = logcnt + static_cast<std::size_t>(l) * E;
    for (std::int32_t e = 0; e < E; ++e) {
      cl[e] = mlogcnt[log2mlog[e]];
      max_cnt = std::max(max_cnt, mlogcnt[log2mlog[e]]);
    }
  }
  return max_cnt;
}

/// log2phy [L][E][R] (R = the largest replica count; -1 past an expert's replicas) from phy2log and
/// the slots' replica ranks.
template <class Int>
void eplb_log2phy_into(const Int* phy2log, const std::int32_t* phy_rank, const eplb_shape& s, std::int32_t R, Int* log2phy) {
  static_assert(std::is_signed_v<Int>, "-1 must be representable");
  const std::size_t E = static_cast<std::size_t>(s.num_experts), P = static_cast<std::size_t>(s.num_replicas);
  std::memset(log2phy, 0xff, static_cast<std::size_t>(s.num_layers) * E * static_cast<std::size_t>(R) * sizeof(Int));  // all -1
  for (std::size_t l = 0; l < static_cast<std::size_t>(s.num_layers); ++l)
    for (std::size_t p = 0; p < P; ++p)
      log2phy[(l * E + static_cast<std::size_t>(phy2log[l * P + p])) * static_cast<std::size_t>(R) +
              static_cast<std::size_t>(phy_rank[l * P + p])] = static_cast<Int>(p);
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
  for (std::int32_t l = 0; l < L; ++l)
    if (static_cast<std::int32_t>(weight[l].size()) != E)
      throw config_error("rebalance_experts: weight layer " + std::to_string(l) + " holds " +
                         std::to_string(weight[l].size()) + " experts, layer 0 holds " + std::to_string(E));
  const detail::eplb_shape shape{.num_layers = L, .num_experts = E, .num_replicas = num_replicas,
                                 .num_groups = num_groups, .num_nodes = num_nodes, .num_gpus = num_gpus};
  std::vector<double> flat;
  flat.reserve(static_cast<std::size_t>(L) * static_cast<std::size_t>(E));
  for (const auto& row : weight) flat.insert(flat.end(), row.begin(), row.end());
  detail::eplb_check_weights(flat.data(), shape);
  shape.validate();
  const auto P = static_cast<std::size_t>(num_replicas), Es = static_cast<std::size_t>(E);
  std::vector<std::int32_t> phy2log(static_cast<std::size_t>(L) * P), phy_rank(phy2log.size()), logcnt(L * Es);
  eplb_result out;
  out.max_replicas = detail::eplb_rebalance_into(flat.data(), shape, phy2log.data(), phy_rank.data(), logcnt.data());
  out.log2phy.resize(static_cast<std::size_t>(L) * Es * static_cast<std::size_t>(out.max_replicas));
  detail::eplb_log2phy_into(phy2log.data(), phy_rank.data(), shape, out.max_replicas, out.log2phy.data());
  for (std::size_t l = 0; l < static_cast<std::size_t>(L); ++l) {
    out.phy2log.emplace_back(phy2log.begin() + static_cast<std::ptrdiff_t>(l * P), phy2log.begin() + static_cast<std::ptrdiff_t>((l + 1) * P));
    out.phy_rank.emplace_back(phy_rank.begin() + static_cast<std::ptrdiff_t>(l * P), phy_rank.begin() + static_cast<std::ptrdiff_t>((l + 1) * P));
    out.logcnt.emplace_back(logcnt.begin() + static_cast<std::ptrdiff_t>(l * Es), logcnt.begin() + static_cast<std::ptrdiff_t>((l + 1) * Es));
  }
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
