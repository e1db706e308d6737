// gem/io/csv_counts.hpp — reads and writes long-format CSV token counts (`layer,step,expert,count`
// with a header; extra columns such as task, domain or model select a subset of the rows) as a
// routing_trace without token routing. Depends on gem/trace.hpp.
//
// Format: comma-separated, first line a header naming the columns (any order, extra columns
// allowed, CRLF or LF line ends, no quoting: a '"' is an error). Every data row has as many fields
// as the header. A row is kept when every `select` filter matches (column == value, compared as
// text); kept rows must have integer layer, step and expert >= 0 and an integer count >= 0, and no
// (layer, step, expert) twice. (layer, step, expert) combinations with no row count 0 (files such as
// OLMoE's list only experts that received tokens).
// - Layers: the distinct layer values of the kept rows, in increasing order, become layer_id
//   0, 1, ...; `source_layers` keeps the file's numbers (OLMoE: 0, 7, 15).
// - Steps: step values s become step s (num_steps = largest + 1). A file without the step column
//   (OLMoE's aggregate counts) is read as ONE step holding all tokens: its mean load is right, but
//   it carries no step-to-step variation.
// Errors are gem::parse_error naming file, line and field (the column).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "gem/detail/text_parse.hpp"
#include "gem/error.hpp"
#include "gem/trace.hpp"

namespace gem {

/// Keep rows whose `column` holds exactly `value`.
struct csv_filter {
  std::string column;
  std::string value;
};

/// Which columns hold what, and which rows to keep.
struct csv_counts_options {
  std::vector<csv_filter> select{};       ///< all must match (e.g. {{"model_dir","olmoe"},{"domain","arxiv"}}).
  std::string layer_column = "layer";
  std::string step_column = "step";       ///< when the header lacks it, the file is one step.
  std::string expert_column = "expert";
  std::string count_column = "count";     ///< e.g. "token_count" for ESFT's expert_counts.csv.
  std::int32_t num_experts = 0;           ///< 0: largest expert id of the kept rows + 1.
};

/// A CSV read into a trace.
struct csv_counts_trace {
  routing_trace trace;                         ///< counts only (no token routing).
  std::vector<std::int32_t> source_layers{};   ///< source_layers[l]: the file's layer number of layer_id l.
  bool has_step_column = false;                ///< false: the whole file was read as one step.
  std::int64_t rows = 0;                       ///< data rows kept by the filters.
};

/// Parses CSV text (`file` names it in errors). Throws parse_error (file, line, field) on
/// malformed input or when no row matches the filters, config_error on bad options.
[[nodiscard]] inline csv_counts_trace parse_csv_counts(std::string_view text, const std::string& file,
                                                       const csv_counts_options& o = {}) {
  if (o.num_experts < 0) throw config_error("csv_counts_options.num_experts must be >= 0 (0 = infer)");
  detail::line_cursor cur(text);
  std::string_view line;
  if (!cur.next(line) || line.empty()) throw parse_error(file, 1, "header", "empty file (expected a header line)");
  if (line.find('"') != std::string_view::npos)
    throw parse_error(file, 1, "header", "quoted fields are not supported");
  const auto header = detail::split_fields(line, ',');
  const auto ncol = header.size();
  auto column = [&](const std::string& name, bool required) -> std::ptrdiff_t {
    for (std::size_t i = 0; i < ncol; ++i)
      if (header[i] == name) return static_cast<std::ptrdiff_t>(i);
    if (!required) return -1;
    std::string cols;
    for (auto h : header) cols += (cols.empty() ? "" : ",") + std::string(h);
    throw parse_error(file, 1, name, "no such column in the header (columns: " + cols + ")");
  };
  const auto c_layer = column(o.layer_column, true);
  const auto c_expert = column(o.expert_column, true);
  const auto c_count = column(o.count_column, true);
  const auto c_step = column(o.step_column, false);
  std::vector<std::pair<std::size_t, std::string_view>> filters;
  for (const auto& f : o.select) filters.emplace_back(static_cast<std::size_t>(column(f.column, true)), f.value);

  struct row {
    std::int64_t layer, step, expert, count;
    std::size_t line;
  };
  std::vector<row> rows;
  std::vector<std::string_view> fields;
  while (cur.next(line)) {
    const auto ln = cur.line_number();
    if (line.empty()) throw parse_error(file, ln, "row", "empty line");
    if (line.find('"') != std::string_view::npos) throw parse_error(file, ln, "row", "quoted fields are not supported");
    fields = detail::split_fields(line, ',');
    if (fields.size() != ncol)
      throw parse_error(file, ln, "row",
                        "has " + std::to_string(fields.size()) + " fields, the header has " + std::to_string(ncol) +
                            " (truncated line?)");
    bool keep = true;
    for (const auto& [c, v] : filters) keep = keep && fields[c] == v;
    if (!keep) continue;
    auto num = [&](std::ptrdiff_t c, const std::string& name) {
      const auto v = detail::parse_integer<std::int64_t>(fields[static_cast<std::size_t>(c)], file, ln, name);
      if (v < 0) throw parse_error(file, ln, name, "must be >= 0, got " + std::to_string(v));
      return v;
    };
    row r{num(c_layer, o.layer_column), c_step >= 0 ? num(c_step, o.step_column) : 0, num(c_expert, o.expert_column),
          num(c_count, o.count_column), ln};
    if (r.layer > INT32_MAX) throw parse_error(file, ln, o.layer_column, "layer number too large");
    if (r.step >= INT32_MAX) throw parse_error(file, ln, o.step_column, "step number too large");
    if (o.num_experts > 0 && r.expert >= o.num_experts)
      throw parse_error(file, ln, o.expert_column,
                        "expert id " + std::to_string(r.expert) + " >= num_experts = " + std::to_string(o.num_experts));
    if (r.expert >= (1 << 20)) throw parse_error(file, ln, o.expert_column, "expert id " + std::to_string(r.expert) + " is implausibly large");
    rows.push_back(r);
  }
  if (rows.empty()) {
    std::string sel;
    for (const auto& f : o.select) sel += (sel.empty() ? "" : ", ") + f.column + "=" + f.value;
    throw parse_error(file, 0, "select", "no data row matches" + (sel.empty() ? std::string() : " " + sel));
  }
  std::map<std::int64_t, std::int32_t> layer_index;
  std::int64_t max_step = 0, max_expert = 0;
  for (const auto& r : rows) {
    layer_index.emplace(r.layer, 0);
    max_step = std::max(max_step, r.step);
    max_expert = std::max(max_expert, r.expert);
  }
  csv_counts_trace out;
  for (auto& [src, idx] : layer_index) {
    idx = static_cast<std::int32_t>(out.source_layers.size());
    out.source_layers.push_back(static_cast<std::int32_t>(src));
  }
  const auto L = static_cast<std::int32_t>(layer_index.size());
  const auto S = static_cast<std::int32_t>(max_step + 1);
  const auto E = o.num_experts > 0 ? o.num_experts : static_cast<std::int32_t>(max_expert + 1);
  const auto cells = static_cast<std::size_t>(L) * static_cast<std::size_t>(S) * static_cast<std::size_t>(E);
  // A valid file may be sparse (zero counts left out), but not a thousand times sparser than dense.
  if (cells > (std::size_t{1} << 31) || cells > 1024 * rows.size() + (std::size_t{1} << 20))
    throw parse_error(file, 0, o.step_column,
                      "layers x steps x experts = " + std::to_string(cells) + " cells for " + std::to_string(rows.size()) +
                          " rows: a step or expert number is implausibly large");
  // Duplicates: sort row indices by cell, equal neighbours are the same (layer, step, expert).
  auto cell_of = [&](const row& r) {
    return (static_cast<std::size_t>(layer_index[r.layer]) * static_cast<std::size_t>(S) + static_cast<std::size_t>(r.step)) *
               static_cast<std::size_t>(E) + static_cast<std::size_t>(r.expert);
  };
  std::vector<std::pair<std::size_t, std::size_t>> order;  // (cell, line), sorted
  order.reserve(rows.size());
  for (const auto& r : rows) order.emplace_back(cell_of(r), r.line);
  std::sort(order.begin(), order.end());
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i].first == order[i - 1].first) {
      const auto c = order[i].first;
      const auto e = c % static_cast<std::size_t>(E), st = c / static_cast<std::size_t>(E) % static_cast<std::size_t>(S);
      const auto l = out.source_layers[c / static_cast<std::size_t>(E) / static_cast<std::size_t>(S)];
      throw parse_error(file, order[i].second, o.expert_column,
                        "second row for layer " + std::to_string(l) + " step " + std::to_string(st) + " expert " +
                            std::to_string(e) + " (first at line " + std::to_string(order[i - 1].second) + ")");
    }
  std::vector<std::int64_t> counts(cells, 0);
  for (const auto& r : rows) counts[cell_of(r)] = r.count;
  out.has_step_column = c_step >= 0;
  out.rows = static_cast<std::int64_t>(rows.size());
  out.trace = routing_trace(L, S, E, std::move(counts));
  return out;
}

/// Reads a CSV file (see parse_csv_counts). Throws io_error when the file cannot be read.
[[nodiscard]] inline csv_counts_trace read_csv_counts(const std::filesystem::path& file, const csv_counts_options& o = {}) {
  return parse_csv_counts(detail::read_text_file(file), file.string(), o);
}

/// Writes `layer,step,expert,count` (LF line ends) with every (layer, step, expert), zeros included,
/// layer-major. The layer column holds `source_layers[l]` when given (one per layer), else l.
inline void write_csv_counts(std::ostream& out, const routing_trace& t, std::span<const std::int32_t> source_layers = {}) {
  if (!source_layers.empty() && source_layers.size() != static_cast<std::size_t>(t.num_layers()))
    throw config_error("write_csv_counts: source_layers holds " + std::to_string(source_layers.size()) +
                       " numbers for " + std::to_string(t.num_layers()) + " layers");
  std::string buf = "layer,step,expert,count\n";
  for (std::int32_t l = 0; l < t.num_layers(); ++l)
    for (std::int32_t s = 0; s < t.num_steps(); ++s) {
      const auto row = t.step_counts(layer_id{l}, s);
      for (std::int32_t e = 0; e < t.num_experts(); ++e) {
        detail::append_number(buf, source_layers.empty() ? l : source_layers[static_cast<std::size_t>(l)]);
        buf += ',';
        detail::append_number(buf, s);
        buf += ',';
        detail::append_number(buf, e);
        buf += ',';
        detail::append_number(buf, row[static_cast<std::size_t>(e)]);
        buf += '\n';
      }
      if (buf.size() > (1u << 20)) {
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
        buf.clear();
      }
    }
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  if (!out) throw io_error("write_csv_counts: the stream failed");
}

}  // namespace gem
