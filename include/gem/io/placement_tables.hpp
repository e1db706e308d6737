// gem/io/placement_tables.hpp — the tables engines load a placement from (DeepSeek EPLB / vLLM
// triple, SGLang's physical_to_logical_map plus per-replica LP probabilities, TensorRT-LLM's
// initial_global_assignments), conversions to and from gem::placement, and each engine's documented
// constraints as checks. Text formats live in gem/io/placement_formats.hpp.
// Depends on gem/placement.hpp, gem/cluster.hpp, gem/error.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/placement.hpp"

namespace gem::io {

/// The engine convention every engine format shares: P slots per layer, P/G contiguous slots per
/// GPU, slot p on GPU p / (P/G) ("rank-major"). Returns an equal placement in that convention:
/// slots stably sorted by GPU (so a placement already rank-major comes back unchanged), on
/// `cluster_spec::equal(G, P/G, num_nodes)`; replica ranks and shares move with their slots.
/// Throws placement_error when GPUs hold different numbers of slots, or layers different P.
[[nodiscard]] inline placement to_rank_major(const placement& p) {
  const auto G = p.num_gpus();
  std::int32_t P = -1;
  std::vector<layer_placement> layers(static_cast<std::size_t>(p.num_layers()));
  for (std::int32_t l = 0; l < p.num_layers(); ++l) {
    const auto& src = p.layer(layer_id{l});
    const auto slots = static_cast<std::int32_t>(src.phy2log.size());
    if (P >= 0 && slots != P)
      throw placement_error("engine formats need the same number of slots in every layer: layer " + std::to_string(l) +
                            " has " + std::to_string(slots) + ", layer 0 has " + std::to_string(P));
    P = slots;
    std::vector<std::int32_t> used(static_cast<std::size_t>(G), 0);
    for (auto g : src.slot_gpu) ++used[static_cast<std::size_t>(g)];
    for (std::int32_t g = 1; g < G; ++g)
      if (used[g] != used[0])
        throw placement_error("engine formats need the same number of slots on every GPU (rank-major blocks): layer " +
                              std::to_string(l) + ": GPU " + std::to_string(g) + " holds " + std::to_string(used[g]) +
                              " slots, GPU 0 holds " + std::to_string(used[0]) + "; write --format gem instead");
    std::vector<std::size_t> order(src.phy2log.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return src.slot_gpu[a] < src.slot_gpu[b]; });
    auto& dst = layers[static_cast<std::size_t>(l)];
    for (auto s : order) {
      dst.phy2log.push_back(src.phy2log[s]);
      dst.slot_gpu.push_back(src.slot_gpu[s]);
      dst.share.push_back(src.share[s]);
      dst.replica_rank.push_back(src.replica_rank[s]);
    }
  }
  return placement(cluster_spec::equal(G, P / G, p.cluster().num_nodes), p.num_experts(), std::move(layers));
}

/// True when every expert's replicas split its tokens evenly (what vLLM, EPLB and TRT-LLM do).
[[nodiscard]] inline bool has_even_shares(const placement& p) {
  for (std::int32_t l = 0; l < p.num_layers(); ++l) {
    const auto cnt = p.logcnt(layer_id{l});
    const auto& lp = p.layer(layer_id{l});
    for (std::size_t s = 0; s < lp.phy2log.size(); ++s)
      if (std::abs(lp.share[s] - 1.0 / cnt[lp.phy2log[s]]) > placement::share_tolerance) return false;
  }
  return true;
}

// ---- DeepSeek EPLB / vLLM ------------------------------------------------------------------------

/// What DeepSeek EPLB's `rebalance_experts` returns (and vLLM's policies): `phy2log [L][P]`,
/// `log2phy [L][E][R]` (slots of each expert by replica rank, -1 padded, R = largest replica count
/// over all layers), `logcnt [L][E]`.
struct eplb_tables {
  std::vector<std::vector<std::int32_t>> phy2log{};
  std::vector<std::vector<std::vector<std::int32_t>>> log2phy{};
  std::vector<std::vector<std::int32_t>> logcnt{};
};

/// EPLB's contract, checked: rectangular shapes; ids in range; `logcnt[l][e]` = number of slots p
/// with `phy2log[l][p] == e` = number of non-(-1) entries of `log2phy[l][e]`, which come first; each
/// listed slot holds that expert and is listed once; every expert has a replica; when `num_gpus` > 0,
/// P is a multiple of it. Throws placement_error naming the table, layer, expert or slot.
inline void check_eplb_tables(const eplb_tables& t, std::int32_t num_gpus = 0) {
  const auto L = t.phy2log.size();
  if (L == 0) throw placement_error("eplb: phy2log has no layers");
  if (t.log2phy.size() != L || t.logcnt.size() != L)
    throw placement_error("eplb: phy2log has " + std::to_string(L) + " layers but log2phy has " +
                          std::to_string(t.log2phy.size()) + " and logcnt " + std::to_string(t.logcnt.size()));
  const auto P = t.phy2log[0].size();
  const auto E = t.logcnt[0].size();
  if (P == 0 || E == 0) throw placement_error("eplb: layer 0 has no slots or no experts");
  if (num_gpus > 0 && P % static_cast<std::size_t>(num_gpus) != 0)
    throw placement_error("eplb: " + std::to_string(P) + " slots do not divide over " + std::to_string(num_gpus) + " GPUs");
  const auto R = t.log2phy[0].empty() ? 0 : t.log2phy[0][0].size();
  for (std::size_t l = 0; l < L; ++l) {
    const auto where = "eplb: layer " + std::to_string(l) + ": ";
    if (t.phy2log[l].size() != P)
      throw placement_error(where + "phy2log holds " + std::to_string(t.phy2log[l].size()) + " slots, layer 0 holds " + std::to_string(P));
    if (t.logcnt[l].size() != E)
      throw placement_error(where + "logcnt holds " + std::to_string(t.logcnt[l].size()) + " experts, layer 0 holds " + std::to_string(E));
    if (t.log2phy[l].size() != E)
      throw placement_error(where + "log2phy holds " + std::to_string(t.log2phy[l].size()) + " experts, logcnt holds " + std::to_string(E));
    std::vector<std::int32_t> count(E, 0);
    for (std::size_t p = 0; p < P; ++p) {
      const auto e = t.phy2log[l][p];
      if (e < 0 || static_cast<std::size_t>(e) >= E)
        throw placement_error(where + "phy2log slot " + std::to_string(p) + " holds expert " + std::to_string(e) +
                              ", outside [0, " + std::to_string(E) + ")");
      ++count[static_cast<std::size_t>(e)];
    }
    std::vector<char> listed(P, 0);
    for (std::size_t e = 0; e < E; ++e) {
      const auto& row = t.log2phy[l][e];
      if (row.size() != R)
        throw placement_error(where + "log2phy expert " + std::to_string(e) + " has width " + std::to_string(row.size()) +
                              ", others " + std::to_string(R));
      std::int32_t valid = 0;
      bool padding = false;
      for (std::size_t r = 0; r < R; ++r) {
        const auto p = row[r];
        if (p == -1) {
          padding = true;
          continue;
        }
        if (padding)
          throw placement_error(where + "log2phy expert " + std::to_string(e) + " lists slot " + std::to_string(p) +
                                " after -1 padding");
        if (p < 0 || static_cast<std::size_t>(p) >= P)
          throw placement_error(where + "log2phy expert " + std::to_string(e) + " lists slot " + std::to_string(p) +
                                ", outside [0, " + std::to_string(P) + ")");
        if (t.phy2log[l][static_cast<std::size_t>(p)] != static_cast<std::int32_t>(e))
          throw placement_error(where + "log2phy expert " + std::to_string(e) + " lists slot " + std::to_string(p) +
                                ", but phy2log says that slot holds expert " + std::to_string(t.phy2log[l][static_cast<std::size_t>(p)]));
        if (listed[static_cast<std::size_t>(p)]++)
          throw placement_error(where + "log2phy lists slot " + std::to_string(p) + " twice");
        ++valid;
      }
      if (t.logcnt[l][e] != count[e] || valid != count[e])
        throw placement_error(where + "expert " + std::to_string(e) + ": logcnt says " + std::to_string(t.logcnt[l][e]) +
                              " replicas, phy2log holds " + std::to_string(count[e]) + ", log2phy lists " + std::to_string(valid));
      if (count[e] == 0) throw placement_error(where + "expert " + std::to_string(e) + " has no replica");
    }
  }
}

/// The EPLB triple of a placement, in the rank-major convention (see to_rank_major); log2phy
/// follows the placement's replica ranks and is padded to its largest replica count.
[[nodiscard]] inline eplb_tables to_eplb_tables(const placement& p) {
  const auto q = to_rank_major(p);
  eplb_tables t;
  const auto R = q.max_replicas();
  for (std::int32_t l = 0; l < q.num_layers(); ++l) {
    t.phy2log.push_back(q.layer(layer_id{l}).phy2log);
    t.logcnt.push_back(q.logcnt(layer_id{l}));
    const auto flat = q.log2phy(layer_id{l}, R);
    auto& rows = t.log2phy.emplace_back();
    for (std::int32_t e = 0; e < q.num_experts(); ++e)
      rows.emplace_back(flat.begin() + static_cast<std::ptrdiff_t>(e) * R, flat.begin() + static_cast<std::ptrdiff_t>(e + 1) * R);
  }
  return t;
}

/// The placement an engine builds from EPLB tables on `num_gpus` GPUs in `num_nodes` nodes: slot p
/// on GPU p / (P / num_gpus), replica ranks from log2phy, even shares. Checks the tables first.
[[nodiscard]] inline placement from_eplb_tables(const eplb_tables& t, std::int32_t num_gpus, std::int32_t num_nodes = 1) {
  check_eplb_tables(t, num_gpus);
  const auto P = static_cast<std::int32_t>(t.phy2log[0].size());
  const auto E = static_cast<std::int32_t>(t.logcnt[0].size());
  std::vector<std::vector<std::int32_t>> rank(t.phy2log.size(), std::vector<std::int32_t>(static_cast<std::size_t>(P), 0));
  for (std::size_t l = 0; l < t.log2phy.size(); ++l)
    for (const auto& row : t.log2phy[l])
      for (std::size_t r = 0; r < row.size(); ++r)
        if (row[r] >= 0) rank[l][static_cast<std::size_t>(row[r])] = static_cast<std::int32_t>(r);
  return placement::from_phy2log(cluster_spec::equal(num_gpus, P / num_gpus, num_nodes), E, t.phy2log, rank);
}

// ---- SGLang ----------------------------------------------------------------------------------------

/// What SGLang loads. `physical_to_logical_map [L][P]` is the whole `--init-expert-location` file
/// (SGLang passes the file's keys as arguments, so nothing else may be in it). The per-replica
/// probabilities for `--ep-dispatch-algorithm lp` come beside it:
/// `logical_to_all_physical_map [L][E][R]` (slots of each expert in ascending slot order, -1 padded,
/// exactly as SGLang derives it from the map) and `log2phy_prob [L][E][R]` (probability that a
/// token of expert e goes to that slot; 0 on padding; each expert's row sums to 1).
/// SGLang indexes these rows by MODEL layer (its `num_layers` is the model's num_hidden_layers,
/// dense layers included), so `layer_ids[l]` says which row holds placement layer l; rows of other
/// layers hold SGLang's trivial map (slot p holds expert p mod E) and even probabilities. Empty
/// `layer_ids`: row l is placement layer l.
struct sglang_tables {
  std::vector<std::vector<std::int32_t>> physical_to_logical_map{};
  std::vector<std::vector<std::vector<std::int32_t>>> logical_to_all_physical_map{};  ///< empty: no LP file
  std::vector<std::vector<std::vector<double>>> log2phy_prob{};                      ///< empty: no LP file
  std::vector<std::int32_t> layer_ids{};
};

/// SGLang's constraints: every layer lists P slots with ids in [0, E) and every expert at least
/// once; the EP size divides P (`num_local_physical_experts = P / ep_size`); P - E equals
/// `--ep-num-redundant-experts` when `num_redundant` >= 0. When LP tables are present: shapes
/// [L][E][R], the map equals SGLang's derivation, probabilities in [0, 1] summing to 1 (1e-9) per
/// expert and 0 on padding. Throws placement_error naming the field, layer, expert or slot.
inline void check_sglang_tables(const sglang_tables& t, std::int32_t ep_size, std::int32_t num_experts,
                                std::int32_t num_redundant = -1) {
  const auto& map = t.physical_to_logical_map;
  if (map.empty()) throw placement_error("sglang: physical_to_logical_map has no layers");
  if (num_experts <= 0) throw placement_error("sglang: num_experts must be positive");
  const auto P = map[0].size();
  if (ep_size <= 0 || P % static_cast<std::size_t>(ep_size) != 0)
    throw placement_error("sglang: the EP size (" + std::to_string(ep_size) + ") must divide the " + std::to_string(P) +
                          " physical experts");
  if (P < static_cast<std::size_t>(num_experts))
    throw placement_error("sglang: " + std::to_string(P) + " physical experts cannot hold " + std::to_string(num_experts) + " experts");
  if (num_redundant >= 0 && static_cast<std::int64_t>(P) - num_experts != num_redundant)
    throw placement_error("sglang: P - E = " + std::to_string(static_cast<std::int64_t>(P) - num_experts) +
                          " but --ep-num-redundant-experts is " + std::to_string(num_redundant));
  for (std::size_t l = 0; l < map.size(); ++l) {
    const auto where = "sglang: layer " + std::to_string(l) + ": ";
    if (map[l].size() != P)
      throw placement_error(where + "physical_to_logical_map holds " + std::to_string(map[l].size()) + " slots, layer 0 holds " + std::to_string(P));
    std::vector<std::int32_t> cnt(static_cast<std::size_t>(num_experts), 0);
    for (std::size_t p = 0; p < P; ++p) {
      const auto e = map[l][p];
      if (e < 0 || e >= num_experts)
        throw placement_error(where + "slot " + std::to_string(p) + " holds expert " + std::to_string(e) + ", outside [0, " +
                              std::to_string(num_experts) + ")");
      ++cnt[static_cast<std::size_t>(e)];
    }
    for (std::int32_t e = 0; e < num_experts; ++e)
      if (cnt[e] == 0) throw placement_error(where + "expert " + std::to_string(e) + " has no physical slot");
  }
  if (t.logical_to_all_physical_map.empty() && t.log2phy_prob.empty()) return;
  const auto L = map.size();
  if (t.logical_to_all_physical_map.size() != L || t.log2phy_prob.size() != L)
    throw placement_error("sglang: logical_to_all_physical_map and log2phy_prob must have " + std::to_string(L) + " layers");
  std::size_t R = 0;
  for (std::size_t l = 0; l < L; ++l) {
    std::vector<std::vector<std::int32_t>> expect(static_cast<std::size_t>(num_experts));
    for (std::size_t p = 0; p < P; ++p) expect[static_cast<std::size_t>(map[l][p])].push_back(static_cast<std::int32_t>(p));
    for (const auto& v : expect) R = std::max(R, v.size());
  }
  for (std::size_t l = 0; l < L; ++l) {
    const auto where = "sglang: layer " + std::to_string(l) + ": ";
    if (t.logical_to_all_physical_map[l].size() != static_cast<std::size_t>(num_experts) ||
        t.log2phy_prob[l].size() != static_cast<std::size_t>(num_experts))
      throw placement_error(where + "LP tables must hold " + std::to_string(num_experts) + " experts");
    std::vector<std::vector<std::int32_t>> expect(static_cast<std::size_t>(num_experts));
    for (std::size_t p = 0; p < P; ++p) expect[static_cast<std::size_t>(map[l][p])].push_back(static_cast<std::int32_t>(p));
    for (std::int32_t e = 0; e < num_experts; ++e) {
      const auto& row = t.logical_to_all_physical_map[l][e];
      const auto& prob = t.log2phy_prob[l][e];
      if (row.size() < R || prob.size() != row.size())
        throw placement_error(where + "expert " + std::to_string(e) + ": LP rows must have equal width >= " + std::to_string(R));
      double sum = 0;
      for (std::size_t r = 0; r < row.size(); ++r) {
        const auto want = r < expect[e].size() ? expect[e][r] : -1;
        if (row[r] != want)
          throw placement_error(where + "expert " + std::to_string(e) + ": logical_to_all_physical_map[" + std::to_string(r) +
                                "] is " + std::to_string(row[r]) + ", SGLang derives " + std::to_string(want));
        if (!(prob[r] >= 0.0 && prob[r] <= 1.0 + placement::share_tolerance))
          throw placement_error(where + "expert " + std::to_string(e) + ": log2phy_prob[" + std::to_string(r) + "] = " +
                                std::to_string(prob[r]) + " is outside [0, 1]");
        if (want == -1 && prob[r] != 0.0)
          throw placement_error(where + "expert " + std::to_string(e) + ": log2phy_prob[" + std::to_string(r) +
                                "] is on padding but not 0");
        sum += prob[r];
      }
      if (std::abs(sum - 1.0) > placement::share_tolerance)
        throw placement_error(where + "expert " + std::to_string(e) + ": log2phy_prob sums to " + std::to_string(sum) + ", not 1");
    }
  }
}

/// SGLang's tables of a placement (rank-major convention): the map, and LP tables whose
/// probabilities are the placement's replica shares. With `layer_ids` (model layer index of each
/// placement layer, increasing), the tables get max(layer_ids) + 1 rows, the others trivial.
[[nodiscard]] inline sglang_tables to_sglang_tables(const placement& p, const std::vector<std::int32_t>& layer_ids = {}) {
  const auto q = to_rank_major(p);
  if (!layer_ids.empty()) {
    if (layer_ids.size() != static_cast<std::size_t>(q.num_layers()))
      throw config_error("sglang: layer_ids holds " + std::to_string(layer_ids.size()) + " values for " +
                         std::to_string(q.num_layers()) + " layers");
    for (std::size_t l = 0; l < layer_ids.size(); ++l)
      if (layer_ids[l] < 0 || (l > 0 && layer_ids[l] <= layer_ids[l - 1]) || layer_ids[l] > (1 << 20))
        throw config_error("sglang: layer_ids must be increasing model layer indices in [0, 2^20]");
  }
  const auto E = q.num_experts();
  const auto P = q.num_slots(layer_id{0});
  std::vector<const layer_placement*> row_of;
  if (layer_ids.empty()) {
    for (std::int32_t l = 0; l < q.num_layers(); ++l) row_of.push_back(&q.layer(layer_id{l}));
  } else {
    row_of.assign(static_cast<std::size_t>(layer_ids.back()) + 1, nullptr);
    for (std::size_t l = 0; l < layer_ids.size(); ++l) row_of[static_cast<std::size_t>(layer_ids[l])] = &q.layer(layer_id{static_cast<std::int32_t>(l)});
  }
  layer_placement trivial;
  for (std::int32_t s = 0; s < P; ++s) trivial.phy2log.push_back(s % E);
  {
    std::vector<std::int32_t> cnt(static_cast<std::size_t>(E), 0);
    for (auto e : trivial.phy2log) ++cnt[static_cast<std::size_t>(e)];
    for (auto e : trivial.phy2log) trivial.share.push_back(1.0 / cnt[static_cast<std::size_t>(e)]);
  }
  std::size_t R = 1;
  for (const auto* lp : row_of) {
    std::vector<std::size_t> cnt(static_cast<std::size_t>(E), 0);
    for (auto e : (lp ? lp : &trivial)->phy2log) R = std::max(R, ++cnt[static_cast<std::size_t>(e)]);
  }
  sglang_tables t;
  t.layer_ids = layer_ids;
  for (const auto* row : row_of) {
    const auto& lp = row ? *row : trivial;
    t.physical_to_logical_map.push_back(lp.phy2log);
    auto& map = t.logical_to_all_physical_map.emplace_back(static_cast<std::size_t>(E), std::vector<std::int32_t>(R, -1));
    auto& prob = t.log2phy_prob.emplace_back(static_cast<std::size_t>(E), std::vector<double>(R, 0.0));
    std::vector<std::size_t> next(static_cast<std::size_t>(E), 0);
    for (std::size_t s = 0; s < lp.phy2log.size(); ++s) {
      const auto e = static_cast<std::size_t>(lp.phy2log[s]);
      map[e][next[e]] = static_cast<std::int32_t>(s);
      prob[e][next[e]++] = lp.share[s];
    }
  }
  return t;
}

/// The placement SGLang runs from its tables on `ep_size` GPUs: rank-major slots, replica ranks in
/// slot order, shares from log2phy_prob when the LP tables are present (else even); the rows named
/// by `t.layer_ids` (every row when empty). Checks first.
[[nodiscard]] inline placement from_sglang_tables(const sglang_tables& t, std::int32_t ep_size, std::int32_t num_nodes,
                                                  std::int32_t num_experts) {
  check_sglang_tables(t, ep_size, num_experts);
  const auto P = static_cast<std::int32_t>(t.physical_to_logical_map[0].size());
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < t.physical_to_logical_map.size(); ++r) rows.push_back(r);
  if (!t.layer_ids.empty()) {
    rows.clear();
    for (std::size_t i = 0; i < t.layer_ids.size(); ++i) {
      const auto id = t.layer_ids[i];
      if (id < 0 || static_cast<std::size_t>(id) >= t.physical_to_logical_map.size() || (i > 0 && id <= t.layer_ids[i - 1]))
        throw placement_error("sglang: layer_ids must be increasing rows of physical_to_logical_map, got " + std::to_string(id));
      rows.push_back(static_cast<std::size_t>(id));
    }
  }
  std::vector<layer_placement> layers;
  for (const auto l : rows) {
    layer_placement lp;
    lp.phy2log = t.physical_to_logical_map[l];
    for (std::int32_t s = 0; s < P; ++s) lp.slot_gpu.push_back(s / (P / ep_size));
    if (!t.log2phy_prob.empty()) {
      lp.share.assign(static_cast<std::size_t>(P), 0.0);
      for (std::size_t e = 0; e < t.logical_to_all_physical_map[l].size(); ++e)
        for (std::size_t r = 0; r < t.logical_to_all_physical_map[l][e].size(); ++r)
          if (const auto s = t.logical_to_all_physical_map[l][e][r]; s >= 0)
            lp.share[static_cast<std::size_t>(s)] = t.log2phy_prob[l][e][r];
    }
    layers.push_back(std::move(lp));
  }
  return placement(cluster_spec::equal(ep_size, P / ep_size, num_nodes), num_experts, std::move(layers));
}

// ---- TensorRT-LLM ----------------------------------------------------------------------------------

/// TensorRT-LLM's MoE load-balancer config: `num_slots` (P), `initial_global_assignments` (model
/// layer index -> P expert ids, rank-major: rank r holds entries [r*P/ep, (r+1)*P/ep)), and
/// `layer_updates_per_iter` (0 = static placement).
struct trtllm_config {
  std::int32_t num_slots = 0;
  std::map<std::int32_t, std::vector<std::int32_t>> initial_global_assignments{};
  std::int32_t layer_updates_per_iter = 0;
};

/// TensorRT-LLM's constraints: num_slots >= E and a multiple of the EP size; every layer lists
/// exactly num_slots ids in [0, E), every expert at least once; layer indices non-negative;
/// layer_updates_per_iter >= 0. Throws placement_error naming the field and layer.
inline void check_trtllm_config(const trtllm_config& c, std::int32_t ep_size, std::int32_t num_experts) {
  if (c.initial_global_assignments.empty()) throw placement_error("trtllm: initial_global_assignments has no layers");
  if (num_experts <= 0) throw placement_error("trtllm: num_experts must be positive");
  if (c.num_slots < num_experts)
    throw placement_error("trtllm: num_slots (" + std::to_string(c.num_slots) + ") must be at least the " +
                          std::to_string(num_experts) + " experts");
  if (ep_size <= 0 || c.num_slots % ep_size != 0)
    throw placement_error("trtllm: num_slots (" + std::to_string(c.num_slots) + ") must be a multiple of the EP size (" +
                          std::to_string(ep_size) + ")");
  if (c.layer_updates_per_iter < 0) throw placement_error("trtllm: layer_updates_per_iter must be >= 0");
  for (const auto& [layer, ids] : c.initial_global_assignments) {
    const auto where = "trtllm: initial_global_assignments layer " + std::to_string(layer) + ": ";
    if (layer < 0) throw placement_error(where + "layer index must be non-negative");
    if (ids.size() != static_cast<std::size_t>(c.num_slots))
      throw placement_error(where + "lists " + std::to_string(ids.size()) + " expert ids, num_slots is " + std::to_string(c.num_slots));
    std::vector<char> seen(static_cast<std::size_t>(num_experts), 0);
    for (std::size_t s = 0; s < ids.size(); ++s) {
      if (ids[s] < 0 || ids[s] >= num_experts)
        throw placement_error(where + "slot " + std::to_string(s) + " holds expert " + std::to_string(ids[s]) + ", outside [0, " +
                              std::to_string(num_experts) + ")");
      seen[static_cast<std::size_t>(ids[s])] = 1;
    }
    for (std::int32_t e = 0; e < num_experts; ++e)
      if (!seen[e]) throw placement_error(where + "expert " + std::to_string(e) + " has no slot");
  }
}

/// TensorRT-LLM's config of a placement (rank-major convention); layer l gets key `layer_ids[l]`
/// (model layer index; empty means 0..L-1). Static: layer_updates_per_iter = 0.
[[nodiscard]] inline trtllm_config to_trtllm_config(const placement& p, const std::vector<std::int32_t>& layer_ids = {}) {
  if (!layer_ids.empty() && layer_ids.size() != static_cast<std::size_t>(p.num_layers()))
    throw config_error("trtllm: layer_ids holds " + std::to_string(layer_ids.size()) + " values for " +
                       std::to_string(p.num_layers()) + " layers");
  const auto q = to_rank_major(p);
  trtllm_config c;
  c.num_slots = q.num_slots(layer_id{0});
  for (std::int32_t l = 0; l < q.num_layers(); ++l) {
    const auto key = layer_ids.empty() ? l : layer_ids[static_cast<std::size_t>(l)];
    if (!c.initial_global_assignments.emplace(key, q.layer(layer_id{l}).phy2log).second)
      throw config_error("trtllm: layer id " + std::to_string(key) + " given twice");
  }
  return c;
}

/// The placement TensorRT-LLM runs from `c` on `ep_size` GPUs (layers in ascending key order,
/// rank-major slots, replica ranks in slot order, even shares). Checks first.
[[nodiscard]] inline placement from_trtllm_config(const trtllm_config& c, std::int32_t ep_size, std::int32_t num_nodes,
                                                  std::int32_t num_experts) {
  check_trtllm_config(c, ep_size, num_experts);
  std::vector<std::vector<std::int32_t>> phy2log;
  for (const auto& [layer, ids] : c.initial_global_assignments) phy2log.push_back(ids);
  return placement::from_phy2log(cluster_spec::equal(ep_size, c.num_slots / ep_size, num_nodes), num_experts, phy2log);
}

}  // namespace gem::io
