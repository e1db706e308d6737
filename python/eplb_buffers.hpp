// python/eplb_buffers.hpp — DeepSeek EPLB's rebalance_experts writing straight into caller-owned
// flat buffers (float32 or float64 weights in, int64 phy2log / logcnt / log2phy out), so that the
// Python binding fills numpy's arrays without a conversion pass. Same steps, same detail helpers and
// so the same results as gem::rebalance_experts (gem/place/eplb.hpp); depends only on that header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "gem/error.hpp"
#include "gem/place/eplb.hpp"

namespace gem::python {

/// The shape of an EPLB call, checked as gem::rebalance_experts checks it (same messages).
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
void check_weights(const T* weight, const eplb_shape& s) {
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

/// Steps 1-3 of EPLB for every layer: weight [L][E] row-major (checked beforehand), out phy2log
/// [L][P], phy_rank [L][P] (replica rank of each slot) and logcnt [L][E]. Returns the largest
/// replica count (log2phy's last dimension).
template <class T, class Int>
std::int32_t rebalance_experts_into(const T* weight, const eplb_shape& s, Int* phy2log, std::int32_t* phy_rank,
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
  detail::eplb_scratch scratch;
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
void log2phy_into(const Int* phy2log, const std::int32_t* phy_rank, const eplb_shape& s, std::int32_t R, Int* log2phy) {
  static_assert(std::is_signed_v<Int>, "-1 must be representable");
  const std::size_t E = static_cast<std::size_t>(s.num_experts), P = static_cast<std::size_t>(s.num_replicas);
  std::memset(log2phy, 0xff, static_cast<std::size_t>(s.num_layers) * E * static_cast<std::size_t>(R) * sizeof(Int));  // all -1
  for (std::size_t l = 0; l < static_cast<std::size_t>(s.num_layers); ++l)
    for (std::size_t p = 0; p < P; ++p)
      log2phy[(l * E + static_cast<std::size_t>(phy2log[l * P + p])) * static_cast<std::size_t>(R) +
              static_cast<std::size_t>(phy_rank[l * P + p])] = static_cast<Int>(p);
}

}  // namespace gem::python
