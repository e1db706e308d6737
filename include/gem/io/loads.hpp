// gem/io/loads.hpp — reads expected expert loads `weight[L][E]` (what EPLB's rebalance_experts takes)
// from JSON `{"weight": [[...], ...]}` (the field of ../shared/eplb-vectors; other keys ignored) or
// from long CSV `layer,expert,load`; malformed input is a parse_error naming file, line and field.
// Depends on nlohmann-json, gem/detail/io/json_source.hpp, gem/detail/text_parse.hpp, gem/error.hpp.
//
// CSV format: a header naming the columns (any order, extra columns ignored); the load column may be
// called `load`, `weight` or `count`. One row per (layer, expert); layers and experts are numbered
// from 0 without gaps (every (layer, expert) pair must appear exactly once); loads are finite and
// non-negative. LF or CRLF line ends; no quoting.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gem/detail/io/json_source.hpp"
#include "gem/detail/text_parse.hpp"
#include "gem/error.hpp"

namespace gem::io {

/// Expected load of every expert of every layer: `weight[l][e]` (tokens, or any non-negative
/// unit proportional to them).
struct expert_loads {
  std::vector<std::vector<double>> weight{};

  [[nodiscard]] std::int32_t num_layers() const noexcept { return static_cast<std::int32_t>(weight.size()); }
  [[nodiscard]] std::int32_t num_experts() const noexcept {
    return weight.empty() ? 0 : static_cast<std::int32_t>(weight.front().size());
  }
};

/// Parses JSON `{"weight": [L][E]}`; every row has the same E > 0 finite, non-negative numbers.
[[nodiscard]] inline expert_loads parse_loads_json(std::string text, const std::string& file) {
  const gem::detail::json_source src(std::move(text), file);
  const gem::detail::json_path root;
  if (!src.doc().is_object()) src.fail(root, "expected a JSON object with a \"weight\" field");
  const auto& rows = src.array(root / "weight");
  if (rows.empty()) src.fail(root / "weight", "no layers");
  const auto E = src.array((root / "weight")[0]).size();
  if (E == 0) src.fail((root / "weight")[0], "no experts");
  expert_loads out;
  for (std::size_t l = 0; l < rows.size(); ++l) {
    auto row = src.number_row((root / "weight")[l], E);
    for (std::size_t e = 0; e < E; ++e)
      if (row[e] < 0) src.fail((root / "weight")[l][e], "negative load " + std::to_string(row[e]));
    out.weight.push_back(std::move(row));
  }
  return out;
}

/// Parses long CSV `layer,expert,load` (see the format above).
[[nodiscard]] inline expert_loads parse_loads_csv(std::string_view text, const std::string& file) {
  gem::detail::line_cursor cur(text);
  std::string_view line;
  if (!cur.next(line) || line.empty()) throw parse_error(file, 1, "", "empty file (expected a header such as layer,expert,load)");
  if (line.find('"') != std::string_view::npos) throw parse_error(file, 1, "", "quoted fields are not supported");
  const auto header = gem::detail::split_fields(line, ',');
  std::ptrdiff_t col_layer = -1, col_expert = -1, col_load = -1;
  for (std::size_t c = 0; c < header.size(); ++c) {
    const auto h = header[c];
    if (h == "layer") col_layer = static_cast<std::ptrdiff_t>(c);
    if (h == "expert") col_expert = static_cast<std::ptrdiff_t>(c);
    if ((h == "load" || h == "weight" || h == "count") && col_load < 0) col_load = static_cast<std::ptrdiff_t>(c);
  }
  if (col_layer < 0) throw parse_error(file, 1, "layer", "header has no 'layer' column");
  if (col_expert < 0) throw parse_error(file, 1, "expert", "header has no 'expert' column");
  if (col_load < 0) throw parse_error(file, 1, "load", "header has no 'load' (or 'weight', 'count') column");
  const std::string load_name(header[static_cast<std::size_t>(col_load)]);
  struct row_t {
    std::int32_t layer, expert;
    double load;
    std::size_t line;
  };
  std::vector<row_t> rows;
  std::int32_t L = 0, E = 0;
  while (cur.next(line)) {
    const auto n = cur.line_number();
    if (line.empty()) continue;
    if (line.find('"') != std::string_view::npos) throw parse_error(file, n, "", "quoted fields are not supported");
    const auto f = gem::detail::split_fields(line, ',');
    if (f.size() != header.size())
      throw parse_error(file, n, "", "row has " + std::to_string(f.size()) + " fields, the header " + std::to_string(header.size()));
    const auto layer = gem::detail::parse_integer<std::int32_t>(f[static_cast<std::size_t>(col_layer)], file, n, "layer");
    const auto expert = gem::detail::parse_integer<std::int32_t>(f[static_cast<std::size_t>(col_expert)], file, n, "expert");
    const auto load = gem::detail::parse_real<double>(f[static_cast<std::size_t>(col_load)], file, n, load_name);
    if (layer < 0 || layer >= (1 << 20)) throw parse_error(file, n, "layer", "layer " + std::to_string(layer) + " outside [0, 2^20)");
    if (expert < 0 || expert >= (1 << 20)) throw parse_error(file, n, "expert", "expert " + std::to_string(expert) + " outside [0, 2^20)");
    if (load < 0) throw parse_error(file, n, load_name, "negative load");
    rows.push_back({layer, expert, load, n});
    L = std::max(L, layer + 1);
    E = std::max(E, expert + 1);
  }
  if (rows.empty()) throw parse_error(file, 2, "", "no data rows");
  if (static_cast<std::int64_t>(L) * E > static_cast<std::int64_t>(rows.size()))
    throw parse_error(file, 0, "", std::to_string(rows.size()) + " rows cannot cover " + std::to_string(L) + " layers x " +
                                       std::to_string(E) + " experts (every (layer, expert) must appear once)");
  expert_loads out;
  out.weight.assign(static_cast<std::size_t>(L), std::vector<double>(static_cast<std::size_t>(E), -1.0));
  std::vector<std::vector<std::size_t>> first(static_cast<std::size_t>(L), std::vector<std::size_t>(static_cast<std::size_t>(E), 0));
  for (const auto& r : rows) {
    auto& cell = out.weight[static_cast<std::size_t>(r.layer)][static_cast<std::size_t>(r.expert)];
    auto& seen = first[static_cast<std::size_t>(r.layer)][static_cast<std::size_t>(r.expert)];
    if (seen != 0)
      throw parse_error(file, r.line, "expert", "layer " + std::to_string(r.layer) + " expert " + std::to_string(r.expert) +
                                                    " given twice (first on line " + std::to_string(seen) + ")");
    seen = r.line;
    cell = r.load;
  }
  for (std::int32_t l = 0; l < L; ++l)
    for (std::int32_t e = 0; e < E; ++e)
      if (first[l][e] == 0)
        throw parse_error(file, 0, "expert", "no row for layer " + std::to_string(l) + " expert " + std::to_string(e));
  return out;
}

/// Reads loads from `path`: JSON when its first non-blank character is '{', else long CSV.
/// Throws io_error when the file cannot be read, parse_error when it is malformed.
[[nodiscard]] inline expert_loads read_loads_file(const std::filesystem::path& path) {
  auto text = gem::detail::read_text_file(path);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') return parse_loads_json(std::move(text), path.string());
  return parse_loads_csv(text, path.string());
}

/// Writes loads as long CSV `layer,expert,load` (shortest round-trip decimals).
inline std::string loads_to_csv(const expert_loads& loads) {
  std::string out = "layer,expert,load\n";
  for (std::size_t l = 0; l < loads.weight.size(); ++l)
    for (std::size_t e = 0; e < loads.weight[l].size(); ++e) {
      out += std::to_string(l) + ',' + std::to_string(e) + ',';
      gem::detail::append_number(out, loads.weight[l][e]);
      out += '\n';
    }
  return out;
}

}  // namespace gem::io
