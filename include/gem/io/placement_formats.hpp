// gem/io/placement_formats.hpp — writers and readers of placement files: gem's own JSON (everything,
// plus predicted per-GPU times), the EPLB/vLLM JSON triple, SGLang's --init-expert-location JSON (with
// an LP-probability file beside it) and TensorRT-LLM's load-balancer YAML. Readers reject malformed
// files with parse_error naming the file, line and field.
// Depends on nlohmann-json, gem/io/placement_tables.hpp, gem/detail/io/{json_source,yaml_subset}.hpp.
#pragma once

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gem/detail/io/json_source.hpp"
#include "gem/detail/io/yaml_subset.hpp"
#include "gem/error.hpp"
#include "gem/io/placement_tables.hpp"
#include "gem/placement.hpp"
#include "gem/version.hpp"

namespace gem::io {

/// The placement file formats.
/// - `gem`: gem's JSON; carries the whole placement (cluster, slot -> GPU, shares, replica ranks)
///   and optional metadata (strategy, model layer ids, predicted per-GPU seconds).
/// - `eplb`: `{"phy2log", "log2phy", "logcnt"}` exactly as DeepSeek EPLB returns them.
/// - `sglang`: `{"physical_to_logical_map"}` for `--init-expert-location`, plus a file beside it
///   (`<stem>.lp.json`) with `logical_to_all_physical_map` and `log2phy_prob` for LP dispatch.
/// - `trtllm`: YAML with `num_slots`, `initial_global_assignments`, `layer_updates_per_iter`.
enum class placement_format { gem, eplb, sglang, trtllm };

[[nodiscard]] inline std::string_view format_name(placement_format f) noexcept {
  switch (f) {
    case placement_format::gem: return "gem";
    case placement_format::eplb: return "eplb";
    case placement_format::sglang: return "sglang";
    case placement_format::trtllm: return "trtllm";
  }
  return "?";
}

/// Throws config_error listing the valid names.
[[nodiscard]] inline placement_format placement_format_from_name(std::string_view name) {
  for (auto f : {placement_format::gem, placement_format::eplb, placement_format::sglang, placement_format::trtllm})
    if (format_name(f) == name) return f;
  throw config_error("unknown placement format '" + std::string(name) + "' (expected gem, eplb, sglang or trtllm)");
}

/// What a placement file may carry beside the placement.
/// - `strategy`: name of the strategy that made it (gem format only).
/// - `layer_ids`: model layer index of each placement layer (empty = 0..L-1); TRT-LLM's keys.
/// - `predicted_gpu_seconds[l][g]`: predicted seconds of GPU g in layer l (gem format only).
struct placement_metadata {
  std::string strategy{};
  std::vector<std::int32_t> layer_ids{};
  std::vector<std::vector<double>> predicted_gpu_seconds{};

  friend bool operator==(const placement_metadata&, const placement_metadata&) = default;
};

/// A placement read from a file, with its metadata.
struct placement_document {
  gem::placement placement{};
  placement_metadata metadata{};
};

/// What readers need that a format may not carry. `num_gpus` 0 means "from the file" (gem JSON;
/// the SGLang LP file; the `# gem:` comment gem writes into TRT-LLM YAML); the EPLB triple never
/// carries it. `num_nodes` 0 likewise (default 1). `num_experts` 0 means inferred (logcnt's width,
/// or the largest id + 1, which is exact because every expert has a replica).
struct placement_read_options {
  std::int32_t num_gpus = 0;
  std::int32_t num_nodes = 0;
  std::int32_t num_experts = 0;
};

/// What writing `p` in format `f` leaves out, one sentence each (empty when nothing is lost).
[[nodiscard]] inline std::vector<std::string> format_losses(const placement& p, const placement_metadata& m,
                                                            placement_format f) {
  std::vector<std::string> out;
  if (f == placement_format::gem) return out;
  bool rank_major = true;
  for (std::int32_t l = 0; l < p.num_layers() && rank_major; ++l)
    rank_major = std::is_sorted(p.layer(layer_id{l}).slot_gpu.begin(), p.layer(layer_id{l}).slot_gpu.end());
  if (!rank_major) out.push_back("slots are renumbered rank-major (slot p on GPU p / (P/G)); which expert sits on which GPU is unchanged");
  if (f != placement_format::sglang && !has_even_shares(p))
    out.push_back("uneven replica shares are not carried (the engine splits each expert's tokens evenly over its replicas)");
  if (f != placement_format::eplb) {
    bool slot_order = true;
    for (std::int32_t l = 0; l < p.num_layers() && slot_order; ++l) {
      const auto& lp = p.layer(layer_id{l});
      std::vector<std::int32_t> next(static_cast<std::size_t>(p.num_experts()), 0);
      for (std::size_t s = 0; s < lp.phy2log.size() && slot_order; ++s) slot_order = lp.replica_rank[s] == next[lp.phy2log[s]]++;
    }
    if (!slot_order) out.push_back("replica ranks are not carried (replicas are ordered by slot)");
  }
  if (!m.predicted_gpu_seconds.empty()) out.push_back("predicted per-GPU times are not carried");
  if (!m.strategy.empty() && f != placement_format::trtllm) out.push_back("the strategy name is not carried");
  if (!m.layer_ids.empty() && f == placement_format::eplb)
    out.push_back("model layer ids are not carried (rows are MoE layers in order, as vLLM indexes them)");
  return out;
}

namespace detail_formats {

inline void write_int_matrix(std::ostream& os, const std::vector<std::vector<std::int32_t>>& m, const char* indent) {
  os << "[\n";
  for (std::size_t i = 0; i < m.size(); ++i) os << indent << nlohmann::json(m[i]).dump() << (i + 1 < m.size() ? ",\n" : "\n");
  os << "]";
}

template <class T>
void write_cube(std::ostream& os, const std::vector<std::vector<std::vector<T>>>& c, const char* indent) {
  os << "[\n";
  for (std::size_t i = 0; i < c.size(); ++i) os << indent << nlohmann::json(c[i]).dump() << (i + 1 < c.size() ? ",\n" : "\n");
  os << "]";
}

[[noreturn]] inline void rethrow_as_parse(const std::string& file, const std::string& field, const gem::error& e) {
  throw parse_error(file, 0, field, e.what());
}

inline std::int32_t infer_experts(const std::vector<std::vector<std::int32_t>>& rows, std::int32_t given) {
  if (given > 0) return given;
  std::int32_t m = -1;
  for (const auto& r : rows)
    for (auto v : r) m = std::max(m, v);
  return m + 1;
}

}  // namespace detail_formats

// ---- gem JSON --------------------------------------------------------------------------------------

/// Writes gem's placement JSON:
/// `{"format": "gem.placement", "version": 1, "num_experts": E,
///   "cluster": {"num_gpus": G, "slots_per_gpu": [..1 or G..], "num_nodes": N},
///   "strategy": "..." (optional), "layer_ids": [..L..] (optional),
///   "layers": [{"phy2log": [P], "slot_gpu": [P], "share": [P], "replica_rank": [P],
///               "predicted_gpu_seconds": [G] (optional)}, ...]}`.
/// Doubles are written with round-trip precision, so reading gives back the same placement.
inline void write_placement_gem(std::ostream& os, const placement& p, const placement_metadata& m = {}) {
  if (!m.predicted_gpu_seconds.empty() && m.predicted_gpu_seconds.size() != static_cast<std::size_t>(p.num_layers()))
    throw config_error("placement_metadata.predicted_gpu_seconds holds " + std::to_string(m.predicted_gpu_seconds.size()) +
                       " layers, the placement " + std::to_string(p.num_layers()));
  if (!m.layer_ids.empty() && m.layer_ids.size() != static_cast<std::size_t>(p.num_layers()))
    throw config_error("placement_metadata.layer_ids holds " + std::to_string(m.layer_ids.size()) + " values for " +
                       std::to_string(p.num_layers()) + " layers");
  using nlohmann::json;
  os << "{\n  \"format\": \"gem.placement\",\n  \"version\": 1,\n  \"num_experts\": " << p.num_experts() << ",\n";
  os << "  \"cluster\": " << json{{"num_gpus", p.cluster().num_gpus}, {"slots_per_gpu", p.cluster().slots_per_gpu},
                                  {"num_nodes", p.cluster().num_nodes}}.dump() << ",\n";
  if (!m.strategy.empty()) os << "  \"strategy\": " << json(m.strategy).dump() << ",\n";
  if (!m.layer_ids.empty()) os << "  \"layer_ids\": " << json(m.layer_ids).dump() << ",\n";
  os << "  \"layers\": [\n";
  for (std::int32_t l = 0; l < p.num_layers(); ++l) {
    const auto& lp = p.layer(layer_id{l});
    os << "    {\"phy2log\": " << json(lp.phy2log).dump() << ",\n     \"slot_gpu\": " << json(lp.slot_gpu).dump()
       << ",\n     \"share\": " << json(lp.share).dump() << ",\n     \"replica_rank\": " << json(lp.replica_rank).dump();
    if (!m.predicted_gpu_seconds.empty())
      os << ",\n     \"predicted_gpu_seconds\": " << json(m.predicted_gpu_seconds[static_cast<std::size_t>(l)]).dump();
    os << "}" << (l + 1 < p.num_layers() ? ",\n" : "\n");
  }
  os << "  ]\n}\n";
}

/// Reads gem's placement JSON (see write_placement_gem). `file` names the source in errors.
[[nodiscard]] inline placement_document read_placement_gem(std::string text, const std::string& file) {
  const gem::detail::json_source src(std::move(text), file);
  using gem::detail::json_path;
  const json_path root;
  if (!src.doc().is_object()) src.fail(root, "expected a JSON object");
  if (src.at(root / "format") != "gem.placement") src.fail(root / "format", "expected \"gem.placement\"");
  if (src.integer(root / "version") != 1) src.fail(root / "version", "unsupported version (this reader knows 1)");
  const auto E = static_cast<std::int32_t>(src.integer(root / "num_experts", 1));
  cluster_spec c;
  c.num_gpus = static_cast<std::int32_t>(src.integer(root / "cluster" / "num_gpus", 1));
  c.slots_per_gpu = src.int_row(root / "cluster" / "slots_per_gpu", 0, 0, std::numeric_limits<std::int32_t>::max());
  c.num_nodes = static_cast<std::int32_t>(src.integer(root / "cluster" / "num_nodes", 1));
  try {
    c.validate();
  } catch (const gem::error& e) {
    src.fail(root / "cluster", e.what());
  }
  placement_document doc;
  if (src.has("strategy")) {
    const auto& s = src.at(root / "strategy");
    if (!s.is_string()) src.fail(root / "strategy", "expected a string");
    doc.metadata.strategy = s.get<std::string>();
  }
  const auto& layers = src.array(root / "layers");
  if (layers.empty()) src.fail(root / "layers", "no layers");
  if (src.has("layer_ids")) doc.metadata.layer_ids = src.int_row(root / "layer_ids", layers.size(), 0, std::numeric_limits<std::int32_t>::max());
  std::vector<layer_placement> out;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto at = root / "layers";
    const auto lp_path = at[l];
    layer_placement lp;
    lp.phy2log = src.int_row(lp_path / "phy2log", 0, 0, E - 1);
    const auto P = lp.phy2log.size();
    if (P == 0) src.fail(lp_path / "phy2log", "no slots");
    lp.slot_gpu = src.int_row(lp_path / "slot_gpu", P, 0, c.num_gpus - 1);
    lp.share = src.number_row(lp_path / "share", P);
    lp.replica_rank = src.int_row(lp_path / "replica_rank", P, 0, std::numeric_limits<std::int32_t>::max());
    if (src.at(lp_path).contains("predicted_gpu_seconds")) {
      if (doc.metadata.predicted_gpu_seconds.size() != l) src.fail(lp_path / "predicted_gpu_seconds", "given for some layers only");
      doc.metadata.predicted_gpu_seconds.push_back(src.number_row(lp_path / "predicted_gpu_seconds", static_cast<std::size_t>(c.num_gpus)));
    } else if (!doc.metadata.predicted_gpu_seconds.empty()) {
      src.fail(lp_path, "predicted_gpu_seconds given for some layers only");
    }
    out.push_back(std::move(lp));
  }
  try {
    doc.placement = placement(c, E, std::move(out));
  } catch (const placement_error& e) {
    src.fail(root / "layers", e.what());
  }
  return doc;
}

// ---- EPLB JSON -------------------------------------------------------------------------------------

/// Writes `{"phy2log": [L][P], "log2phy": [L][E][R], "logcnt": [L][E]}` (see to_eplb_tables), one
/// layer per line; nothing else, so the file loads wherever EPLB's output is expected.
inline void write_placement_eplb(std::ostream& os, const placement& p) {
  const auto t = to_eplb_tables(p);
  check_eplb_tables(t, p.num_gpus());
  os << "{\"phy2log\": ";
  detail_formats::write_int_matrix(os, t.phy2log, "  ");
  os << ",\n\"log2phy\": ";
  detail_formats::write_cube(os, t.log2phy, "  ");
  os << ",\n\"logcnt\": ";
  detail_formats::write_int_matrix(os, t.logcnt, "  ");
  os << "}\n";
}

/// Reads the EPLB triple (other keys, such as the eplb-vectors' inputs, are ignored) and rebuilds
/// the placement an engine runs on `opt.num_gpus` GPUs (required: the triple does not carry it).
[[nodiscard]] inline placement_document read_placement_eplb(std::string text, const std::string& file,
                                                            const placement_read_options& opt) {
  const gem::detail::json_source src(std::move(text), file);
  using gem::detail::json_path;
  const json_path root;
  if (!src.doc().is_object()) src.fail(root, "expected a JSON object");
  eplb_tables t;
  const auto& p2l = src.array(root / "phy2log");
  if (p2l.empty()) src.fail(root / "phy2log", "no layers");
  const auto& cnt = src.array(root / "logcnt", p2l.size());
  const auto& l2p = src.array(root / "log2phy", p2l.size());
  const auto P = src.array((root / "phy2log")[0]).size();
  const auto E = src.array((root / "logcnt")[0]).size();
  if (P == 0 || E == 0) src.fail(root / "phy2log", "empty layer");
  for (std::size_t l = 0; l < p2l.size(); ++l) {
    t.phy2log.push_back(src.int_row((root / "phy2log")[l], P, 0, static_cast<std::int64_t>(E) - 1));
    t.logcnt.push_back(src.int_row((root / "logcnt")[l], E, 1, static_cast<std::int64_t>(P)));
    const auto& rows = src.array((root / "log2phy")[l], E);
    auto& out = t.log2phy.emplace_back();
    const auto R = src.array((root / "log2phy")[0][0]).size();
    for (std::size_t e = 0; e < rows.size(); ++e)
      out.push_back(src.int_row((root / "log2phy")[l][e], R, -1, static_cast<std::int64_t>(P) - 1));
  }
  (void)cnt;
  (void)l2p;
  if (opt.num_gpus <= 0)
    throw config_error(file + ": the eplb format does not carry the GPU count; give it (gem: --gpus N)");
  placement_document doc;
  try {
    doc.placement = from_eplb_tables(t, opt.num_gpus, opt.num_nodes > 0 ? opt.num_nodes : 1);
  } catch (const placement_error& e) {
    detail_formats::rethrow_as_parse(file, "phy2log/log2phy/logcnt", e);
  } catch (const config_error& e) {
    detail_formats::rethrow_as_parse(file, "phy2log", e);
  }
  if (opt.num_experts > 0 && opt.num_experts != doc.placement.num_experts())
    throw parse_error(file, 0, "logcnt", "holds " + std::to_string(doc.placement.num_experts()) + " experts, expected " +
                                             std::to_string(opt.num_experts));
  return doc;
}

// ---- SGLang JSON -----------------------------------------------------------------------------------

/// The LP-probability file written beside an SGLang location file: "x.json" -> "x.lp.json".
[[nodiscard]] inline std::filesystem::path sglang_lp_path(const std::filesystem::path& location) {
  auto out = location;
  out.replace_extension();
  out += ".lp.json";
  return out;
}

/// Writes SGLang's `--init-expert-location` file: `{"physical_to_logical_map": [rows][P]}` and
/// nothing else (SGLang passes every key of the file as an argument of `init_by_mapping`, so an
/// extra key fails there). Rows are MODEL layers: with `m.layer_ids` (e.g. 1..26 for
/// DeepSeek-V2-Lite, whose layer 0 is dense) the file has max(layer_ids) + 1 rows and the rows of
/// other layers hold SGLang's trivial map; without, row l is placement layer l. When `lp` is given,
/// writes the LP file beside it:
/// `{"format": "gem.sglang_lp", "version": 1, "ep_size": G, "num_nodes": N,
///   "layer_ids": [..] (optional), "logical_to_all_physical_map": [rows][E][R],
///   "log2phy_prob": [rows][E][R]}`.
inline void write_placement_sglang(std::ostream& location, std::ostream* lp, const placement& p,
                                   const placement_metadata& m = {}) {
  const auto t = to_sglang_tables(p, m.layer_ids);
  check_sglang_tables(t, p.num_gpus(), p.num_experts());
  location << "{\"physical_to_logical_map\": ";
  detail_formats::write_int_matrix(location, t.physical_to_logical_map, "  ");
  location << "}\n";
  if (lp == nullptr) return;
  *lp << "{\"format\": \"gem.sglang_lp\",\n\"version\": 1,\n\"ep_size\": " << p.num_gpus()
      << ",\n\"num_nodes\": " << p.cluster().num_nodes << ",\n";
  if (!t.layer_ids.empty()) *lp << "\"layer_ids\": " << nlohmann::json(t.layer_ids).dump() << ",\n";
  *lp << "\"logical_to_all_physical_map\": ";
  detail_formats::write_cube(*lp, t.logical_to_all_physical_map, "  ");
  *lp << ",\n\"log2phy_prob\": ";
  detail_formats::write_cube(*lp, t.log2phy_prob, "  ");
  *lp << "}\n";
}

/// Reads an SGLang location file and, when `lp_text` is given, its LP file (shares, EP size and
/// which rows are placement layers). The EP size comes from `opt.num_gpus`, else from the LP file;
/// one of them is required. Without an LP file every row is a layer.
[[nodiscard]] inline placement_document read_placement_sglang(std::string text, const std::string& file,
                                                              const std::string* lp_text, const std::string& lp_file,
                                                              const placement_read_options& opt) {
  using gem::detail::json_path;
  const json_path root;
  sglang_tables t;
  {
    const gem::detail::json_source src(std::move(text), file);
    if (!src.doc().is_object()) src.fail(root, "expected a JSON object");
    const auto& map = src.array(root / "physical_to_logical_map");
    if (map.empty()) src.fail(root / "physical_to_logical_map", "no layers");
    const auto P = src.array((root / "physical_to_logical_map")[0]).size();
    if (P == 0) src.fail((root / "physical_to_logical_map")[0], "no slots");
    for (std::size_t l = 0; l < map.size(); ++l)
      t.physical_to_logical_map.push_back(src.int_row((root / "physical_to_logical_map")[l], P, 0,
                                                      opt.num_experts > 0 ? opt.num_experts - 1 : std::numeric_limits<std::int32_t>::max()));
  }
  const auto E = detail_formats::infer_experts(t.physical_to_logical_map, opt.num_experts);
  std::int32_t ep = opt.num_gpus, nodes = opt.num_nodes;
  if (lp_text != nullptr) {
    const gem::detail::json_source src(*lp_text, lp_file);
    if (!src.doc().is_object()) src.fail(root, "expected a JSON object");
    if (src.at(root / "format") != "gem.sglang_lp") src.fail(root / "format", "expected \"gem.sglang_lp\"");
    const auto file_ep = static_cast<std::int32_t>(src.integer(root / "ep_size", 1));
    if (ep > 0 && file_ep != ep) src.fail(root / "ep_size", "is " + std::to_string(file_ep) + ", expected " + std::to_string(ep));
    ep = file_ep;
    if (nodes <= 0) nodes = static_cast<std::int32_t>(src.integer(root / "num_nodes", 1));
    const auto L = t.physical_to_logical_map.size();
    if (src.has("layer_ids"))
      t.layer_ids = src.int_row(root / "layer_ids", 0, 0, static_cast<std::int64_t>(L) - 1);
    const auto P = t.physical_to_logical_map[0].size();
    (void)src.array(root / "logical_to_all_physical_map", L);
    (void)src.array(root / "log2phy_prob", L);
    for (std::size_t l = 0; l < L; ++l) {
      (void)src.array((root / "logical_to_all_physical_map")[l], static_cast<std::size_t>(E));
      (void)src.array((root / "log2phy_prob")[l], static_cast<std::size_t>(E));
      auto& map = t.logical_to_all_physical_map.emplace_back();
      auto& prob = t.log2phy_prob.emplace_back();
      const auto R = src.array((root / "logical_to_all_physical_map")[0][0]).size();
      for (std::int32_t e = 0; e < E; ++e) {
        const auto ue = static_cast<std::size_t>(e);
        map.push_back(src.int_row((root / "logical_to_all_physical_map")[l][ue], R, -1, static_cast<std::int64_t>(P) - 1));
        prob.push_back(src.number_row((root / "log2phy_prob")[l][ue], R));
      }
    }
  }
  if (ep <= 0)
    throw config_error(file + ": the SGLang map does not carry the EP size and no LP file gives it; give it (gem: --gpus N)");
  placement_document doc;
  try {
    doc.placement = from_sglang_tables(t, ep, nodes > 0 ? nodes : 1, E);
  } catch (const placement_error& e) {
    detail_formats::rethrow_as_parse(lp_text ? file + " + " + lp_file : file, "physical_to_logical_map", e);
  }
  doc.metadata.layer_ids = t.layer_ids;
  return doc;
}

// ---- TensorRT-LLM YAML -----------------------------------------------------------------------------

/// Writes TensorRT-LLM's load-balancer YAML (the file `moe_config.load_balancer` points to):
/// ```
/// # comment lines, then "# gem: ep_size=G num_nodes=N num_experts=E"
/// num_slots: P
/// layer_updates_per_iter: 0
/// initial_global_assignments:
///   <layer>: [e, e, ...]      # P ids, rank-major
/// ```
/// Keys are `m.layer_ids` (model layer indices) or 0..L-1.
inline void write_placement_trtllm(std::ostream& os, const placement& p, const placement_metadata& m = {}) {
  const auto c = to_trtllm_config(p, m.layer_ids);
  check_trtllm_config(c, p.num_gpus(), p.num_experts());
  os << "# TensorRT-LLM MoE load balancer config (moe_config.load_balancer), written by gem " << gem::version_string;
  if (!m.strategy.empty()) os << ", strategy " << m.strategy;
  os << ".\n# Slots are rank-major: EP rank r holds slots [r*" << c.num_slots / p.num_gpus() << ", (r+1)*"
     << c.num_slots / p.num_gpus() << ").\n";
  os << "# gem: ep_size=" << p.num_gpus() << " num_nodes=" << p.cluster().num_nodes << " num_experts=" << p.num_experts() << "\n";
  os << "num_slots: " << c.num_slots << "\nlayer_updates_per_iter: " << c.layer_updates_per_iter << "\ninitial_global_assignments:\n";
  for (const auto& [layer, ids] : c.initial_global_assignments) {
    os << "  " << layer << ": [";
    for (std::size_t i = 0; i < ids.size(); ++i) os << (i ? ", " : "") << ids[i];
    os << "]\n";
  }
}

namespace detail_formats {

inline std::int64_t yaml_int(const gem::detail::yaml_node& n, const std::string& file, const std::string& field) {
  if (n.type != gem::detail::yaml_node::kind::scalar) throw parse_error(file, n.line, field, "expected an integer");
  std::int64_t v = 0;
  const auto* b = n.text.data();
  const auto* e = b + n.text.size();
  const auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc{} || ptr != e || n.text.empty())
    throw parse_error(file, n.line, field, "expected an integer, got '" + n.text + "'");
  if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
    throw parse_error(file, n.line, field, "integer " + n.text + " out of range");
  return v;
}

// Reads "key=value" from the "# gem:" comment, 0 when absent.
inline std::int32_t gem_hint(std::string_view text, std::string_view key) {
  const auto at = text.find("# gem:");
  if (at == std::string_view::npos) return 0;
  const auto line = text.substr(at, text.find('\n', at) - at);
  const auto k = line.find(std::string(key) + "=");
  if (k == std::string_view::npos) return 0;
  std::int32_t v = 0;
  const auto* b = line.data() + k + key.size() + 1;
  std::from_chars(b, line.data() + line.size(), v);
  return v;
}

}  // namespace detail_formats

/// Reads TensorRT-LLM load-balancer YAML (block or flow style, as PyYAML or gem writes it). The EP
/// size comes from `opt.num_gpus`, else the `# gem:` comment; model layer ids go to the metadata.
[[nodiscard]] inline placement_document read_placement_trtllm(const std::string& text, const std::string& file,
                                                              const placement_read_options& opt) {
  using gem::detail::yaml_node;
  const auto root = gem::detail::parse_yaml_subset(text, file);
  if (root.type != yaml_node::kind::mapping) throw parse_error(file, root.line, "", "expected a mapping at the top level");
  trtllm_config c;
  const auto* slots = root.find("num_slots");
  if (slots == nullptr) throw parse_error(file, 0, "num_slots", "missing");
  c.num_slots = static_cast<std::int32_t>(detail_formats::yaml_int(*slots, file, "num_slots"));
  if (const auto* u = root.find("layer_updates_per_iter"))
    c.layer_updates_per_iter = static_cast<std::int32_t>(detail_formats::yaml_int(*u, file, "layer_updates_per_iter"));
  const auto* ga = root.find("initial_global_assignments");
  if (ga == nullptr) throw parse_error(file, 0, "initial_global_assignments", "missing");
  if (ga->type != yaml_node::kind::mapping || ga->entries.empty())
    throw parse_error(file, ga->line, "initial_global_assignments", "expected a non-empty mapping layer -> expert ids");
  std::int32_t max_id = -1;
  for (const auto& [key, list] : ga->entries) {
    const auto field = "initial_global_assignments." + key;
    const auto layer = static_cast<std::int32_t>(
        detail_formats::yaml_int(yaml_node{.type = yaml_node::kind::scalar, .text = key, .line = list.line}, file, field));
    if (list.type != yaml_node::kind::sequence) throw parse_error(file, list.line, field, "expected a list of expert ids");
    std::vector<std::int32_t> ids;
    for (std::size_t i = 0; i < list.items.size(); ++i) {
      const auto v = detail_formats::yaml_int(list.items[i], file, field + "[" + std::to_string(i) + "]");
      if (v < 0) throw parse_error(file, list.items[i].line, field + "[" + std::to_string(i) + "]", "negative expert id");
      ids.push_back(static_cast<std::int32_t>(v));
      max_id = std::max(max_id, static_cast<std::int32_t>(v));
    }
    if (ids.size() != static_cast<std::size_t>(c.num_slots))
      throw parse_error(file, list.line, field, "lists " + std::to_string(ids.size()) + " expert ids, num_slots is " + std::to_string(c.num_slots));
    if (!c.initial_global_assignments.emplace(layer, std::move(ids)).second)
      throw parse_error(file, list.line, field, "layer given twice");
  }
  const auto ep = opt.num_gpus > 0 ? opt.num_gpus : detail_formats::gem_hint(text, "ep_size");
  if (ep <= 0) throw config_error(file + ": the TRT-LLM config does not carry the EP size; give it (gem: --gpus N)");
  const auto nodes = opt.num_nodes > 0 ? opt.num_nodes : std::max(1, detail_formats::gem_hint(text, "num_nodes"));
  const auto E = opt.num_experts > 0 ? opt.num_experts : max_id + 1;
  placement_document doc;
  try {
    doc.placement = from_trtllm_config(c, ep, nodes, E);
  } catch (const placement_error& e) {
    detail_formats::rethrow_as_parse(file, "initial_global_assignments", e);
  }
  bool identity = true;
  std::int32_t i = 0;
  for (const auto& [layer, ids] : c.initial_global_assignments) {
    doc.metadata.layer_ids.push_back(layer);
    identity = identity && layer == i++;
  }
  if (identity) doc.metadata.layer_ids.clear();
  return doc;
}

// ---- files -----------------------------------------------------------------------------------------

/// Guesses the format of placement text: YAML -> trtllm; JSON with "format": "gem.placement" -> gem,
/// with "phy2log" -> eplb, with "physical_to_logical_map" -> sglang. Throws config_error otherwise.
[[nodiscard]] inline placement_format detect_placement_format(std::string_view text, const std::string& file) {
  std::size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) ++i;
  if (i >= text.size()) throw parse_error(file, 0, "", "empty file");
  if (text[i] != '{') return placement_format::trtllm;
  if (text.find("\"gem.placement\"") != std::string_view::npos) return placement_format::gem;
  if (text.find("\"physical_to_logical_map\"") != std::string_view::npos) return placement_format::sglang;
  if (text.find("\"phy2log\"") != std::string_view::npos) return placement_format::eplb;
  throw parse_error(file, 0, "", "not a placement file gem knows (gem, eplb, sglang or trtllm)");
}

namespace detail_formats {
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error("cannot open " + path.string() + " for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw io_error("cannot read " + path.string());
  return ss.str();
}
inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw io_error("cannot open " + path.string() + " for writing");
  out << text;
  out.close();
  if (!out) throw io_error("cannot write " + path.string());
}
}  // namespace detail_formats

/// Writes `p` to `path` in format `f`; returns the files written (SGLang: the location file and its
/// LP file, see sglang_lp_path). Throws placement_error when the format cannot express `p`.
inline std::vector<std::filesystem::path> write_placement_file(const std::filesystem::path& path, placement_format f,
                                                               const placement& p, const placement_metadata& m = {}) {
  std::ostringstream main, lp;
  switch (f) {
    case placement_format::gem: write_placement_gem(main, p, m); break;
    case placement_format::eplb: write_placement_eplb(main, p); break;
    case placement_format::sglang: write_placement_sglang(main, &lp, p, m); break;
    case placement_format::trtllm: write_placement_trtllm(main, p, m); break;
  }
  detail_formats::write_file(path, main.str());
  if (f != placement_format::sglang) return {path};
  detail_formats::write_file(sglang_lp_path(path), lp.str());
  return {path, sglang_lp_path(path)};
}

/// Reads a placement file; `f` nullopt-like detection is done by detect_placement_format. For
/// SGLang, the LP file beside it (sglang_lp_path) is read when it exists.
[[nodiscard]] inline placement_document read_placement_file(const std::filesystem::path& path, placement_format f,
                                                            const placement_read_options& opt = {}) {
  auto text = detail_formats::slurp(path);
  const auto file = path.string();
  switch (f) {
    case placement_format::gem: return read_placement_gem(std::move(text), file);
    case placement_format::eplb: return read_placement_eplb(std::move(text), file, opt);
    case placement_format::trtllm: return read_placement_trtllm(text, file, opt);
    case placement_format::sglang: {
      const auto lp = sglang_lp_path(path);
      if (std::filesystem::exists(lp)) {
        const auto lp_text = detail_formats::slurp(lp);
        return read_placement_sglang(std::move(text), file, &lp_text, lp.string(), opt);
      }
      return read_placement_sglang(std::move(text), file, nullptr, {}, opt);
    }
  }
  throw config_error("unknown placement format");
}

/// Reads a placement file whose format is detected from its content.
[[nodiscard]] inline placement_document read_placement_file(const std::filesystem::path& path,
                                                            const placement_read_options& opt = {}) {
  const auto text = detail_formats::slurp(path);
  return read_placement_file(path, detect_placement_format(text, path.string()), opt);
}

}  // namespace gem::io
