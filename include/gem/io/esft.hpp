// gem/io/esft.hpp — reads the ESFT per-token top-k routing logs (deepseek-ai/ESFT,
// results/expert_scores/<task>/expert_weights_<L>.txt) into a routing_trace with token routing,
// steps cut by gem/trace/batching.hpp. Depends on gem/trace.hpp, gem/trace/batching.hpp.
//
// Format (one task directory; see ../shared/traces/esft-deepseek-v2-lite/SOURCE.md):
//   expert_weights_<L>.txt, one file per MoE layer L (DeepSeek-V2-Lite: L = 1..26).
//   One line per sequence: `ids` TAB TAB `weights`; ids are top_k x T tab-separated ints, token-major
//   (token t's experts are ids[k*t .. k*t+k)); weights are as many tab-separated gate probabilities
//   in the same order. Line i of every layer file is the same sequence.
//
// Mapping: layer files are taken in increasing L; the trace's layer_id l is the l-th of them and
// `esft_trace::source_layers[l]` keeps L (so reports and errors can name the file's layer). Tokens
// are concatenated in line order (sequence 0's tokens, then sequence 1's, ...), and steps are B
// consecutive tokens of that order: a step may span two or more sequences (an engine batches tokens
// of many sequences), and `sequence_offsets` keeps where each sequence starts.
//
// Every malformed input is a gem::parse_error naming file, line (1-based) and field: empty file,
// missing layer file (line 1, field "layer"), line without the TAB TAB separator or with an id
// count that is not a multiple of top_k or a weight count unlike the id count (truncated line),
// non-numeric id or weight, id >= num_experts, an expert twice in one token, and a line whose token
// count (or a file whose line count) differs from the first layer file's. Nothing is skipped.
#pragma once

#include <algorithm>
#include <charconv>
#include <span>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gem/detail/text_parse.hpp"
#include "gem/error.hpp"
#include "gem/trace.hpp"
#include "gem/trace/batching.hpp"

namespace gem {

/// What to read from an ESFT task directory and how to cut it into steps.
struct esft_options {
  std::int32_t num_experts = 64;  ///< routed experts per layer (DeepSeek-V2-Lite: 64); ids must be below.
  std::int32_t top_k = 6;         ///< experts per token (DeepSeek-V2-Lite: 6).
  batching steps{};               ///< steps of B consecutive tokens (default 256, partial last step kept).
  /// Layer files to read: first_layer .. first_layer + num_layers - 1. num_layers = 0 reads every
  /// expert_weights_<L>.txt present, which must then run from first_layer without a gap.
  std::int32_t first_layer = 1;
  std::int32_t num_layers = 0;

  void validate() const {
    if (num_experts <= 0) throw config_error("esft_options.num_experts must be positive");
    if (top_k <= 0 || top_k > num_experts) throw config_error("esft_options.top_k must be in [1, num_experts]");
    if (num_layers < 0) throw config_error("esft_options.num_layers must be >= 0 (0 = every file present)");
    steps.validate();
  }
};

/// An ESFT task read into gem's trace.
struct esft_trace {
  routing_trace trace;                          ///< counts per [layer][step][expert] plus token routing.
  std::vector<std::int32_t> source_layers{};    ///< source_layers[l]: file layer number L of layer_id l.
  std::vector<std::int64_t> sequence_offsets{}; ///< token offset of each line (num_sequences + 1 values),
                                                ///< before any partial-step drop.
  std::vector<std::filesystem::path> files{};   ///< the layer file read for each layer_id.
};

/// Path of layer `source_layer`'s file in `task_dir`.
[[nodiscard]] inline std::filesystem::path esft_layer_file(const std::filesystem::path& task_dir,
                                                           std::int32_t source_layer) {
  return task_dir / ("expert_weights_" + std::to_string(source_layer) + ".txt");
}

namespace detail {

// Parses one layer file's text; appends its ids/weights (token-major) and, for the first file,
// records the per-line token counts; later files must match them.
inline void parse_esft_layer(std::string_view text, const std::string& file, const esft_options& o,
                             std::vector<std::int64_t>& line_tokens, bool first_file, const std::string& first_name,
                             std::vector<std::int32_t>& ids, std::vector<float>& weights) {
  if (text.empty()) throw parse_error(file, 1, "ids", "empty file (expected one line per sequence)");
  const auto k = static_cast<std::size_t>(o.top_k);
  const auto E = static_cast<std::uint32_t>(o.num_experts);
  line_cursor cur(text);
  std::string_view line;
  std::size_t seq = 0;
  auto slot_field = [&](const char* what, std::size_t n) {
    return std::string(what) + "[token " + std::to_string(n / k) + ", slot " + std::to_string(n % k) + "]";
  };
  while (cur.next(line)) {
    const auto ln = cur.line_number();
    if (line.empty()) throw parse_error(file, ln, "ids", "empty line (every line must hold one sequence)");
    const auto sep = line.find("\t\t");
    if (sep == std::string_view::npos)
      throw parse_error(file, ln, "weights", "truncated line: no TAB TAB separator between ids and weights");
    const auto id_part = line.substr(0, sep);
    const auto w_part = line.substr(sep + 2);
    // ids: hand-rolled base-10 scan (the hot loop of the reader).
    const std::size_t id_start = ids.size();
    {
      std::size_t i = 0;
      const std::size_t n = id_part.size();
      while (i < n) {
        std::uint32_t v = 0;
        std::size_t digits = 0;
        const std::size_t tok_begin = i;
        while (i < n && id_part[i] != '\t') {
          const auto c = static_cast<unsigned char>(id_part[i]);
          if (c < '0' || c > '9' || digits >= 9) {
            std::size_t tok_end = id_part.find('\t', tok_begin);
            if (tok_end == std::string_view::npos) tok_end = n;
            throw parse_error(file, ln, slot_field("ids", ids.size() - id_start),
                              quote_token(id_part.substr(tok_begin, tok_end - tok_begin)) +
                                  (digits >= 9 && c >= '0' && c <= '9' ? " is out of range" : " is not an expert id"));
          }
          v = v * 10 + (c - '0');
          ++digits;
          ++i;
        }
        const std::size_t pos = ids.size() - id_start;
        if (digits == 0) throw parse_error(file, ln, slot_field("ids", pos), "empty id (two separators in a row)");
        if (v >= E)
          throw parse_error(file, ln, slot_field("ids", pos),
                            "expert id " + std::to_string(v) + " >= num_experts = " + std::to_string(E));
        const std::size_t tok0 = id_start + (pos / k) * k;
        for (std::size_t j = tok0; j < ids.size(); ++j)
          if (static_cast<std::uint32_t>(ids[j]) == v)
            throw parse_error(file, ln, slot_field("ids", pos),
                              "expert " + std::to_string(v) + " appears twice in token " + std::to_string(pos / k) +
                                  " (slots " + std::to_string(j - tok0) + " and " + std::to_string(pos % k) + ")");
        ids.push_back(static_cast<std::int32_t>(v));
        if (i < n) {
          ++i;  // the TAB
          if (i == n) throw parse_error(file, ln, slot_field("ids", pos + 1), "empty id (line part ends with a TAB)");
        }
      }
    }
    const std::size_t n_ids = ids.size() - id_start;
    if (n_ids == 0) throw parse_error(file, ln, "ids", "no expert ids on the line");
    if (n_ids % k != 0)
      throw parse_error(file, ln, "ids",
                        "holds " + std::to_string(n_ids) + " ids, not a multiple of top_k = " + std::to_string(k) +
                            " (truncated line?)");
    // weights
    std::size_t n_w = 0;
    {
      const char* p = w_part.data();
      const char* end = w_part.data() + w_part.size();
      while (true) {
        const char* tab = static_cast<const char*>(std::char_traits<char>::find(p, static_cast<std::size_t>(end - p), '\t'));
        const char* tok_end = tab ? tab : end;
        if (n_w >= n_ids)
          throw parse_error(file, ln, "weights",
                            "holds more weights than its " + std::to_string(n_ids) + " ids");
        const auto field = std::string_view(p, static_cast<std::size_t>(tok_end - p));
        float w = 0.f;
        const auto [q, ec] = std::from_chars(p, tok_end, w);
        if (ec != std::errc() || q != tok_end || p == tok_end || !(w == w) || w > 3.4e38f || w < -3.4e38f)
          throw parse_error(file, ln, slot_field("weights", n_w),
                            field.empty() ? std::string("empty weight") : quote_token(field) + " is not a finite number");
        weights.push_back(w);
        ++n_w;
        if (!tab) break;
        p = tab + 1;
      }
    }
    if (n_w != n_ids)
      throw parse_error(file, ln, "weights",
                        "holds " + std::to_string(n_w) + " weights for " + std::to_string(n_ids) +
                            " ids (truncated line?)");
    const auto tokens = static_cast<std::int64_t>(n_ids / k);
    if (first_file) {
      line_tokens.push_back(tokens);
    } else {
      if (seq >= line_tokens.size())
        throw parse_error(file, ln, "sequence",
                          "extra line: " + first_name + " has only " + std::to_string(line_tokens.size()) + " lines");
      if (line_tokens[seq] != tokens)
        throw parse_error(file, ln, "tokens",
                          "line holds " + std::to_string(tokens) + " tokens, but line " + std::to_string(ln) + " of " +
                              first_name + " holds " + std::to_string(line_tokens[seq]));
    }
    ++seq;
  }
  if (!first_file && seq != line_tokens.size())
    throw parse_error(file, cur.line_number() + 1, "sequence",
                      "file ends after " + std::to_string(seq) + " lines, but " + first_name + " has " +
                          std::to_string(line_tokens.size()));
}

}  // namespace detail

/// One layer file's content, for parse_esft: the file's layer number L, a name for messages and
/// the text.
struct esft_layer_text {
  std::int32_t source_layer = 0;
  std::string name{};
  std::string_view text{};
};

/// Parses ESFT layer files already in memory (in increasing layer order), with the same checks and
/// result as read_esft (except `files`, which stays empty). Throws parse_error naming the file
/// (`name`), line and field.
[[nodiscard]] inline esft_trace parse_esft(std::span<const esft_layer_text> layers, const esft_options& o = {}) {
  o.validate();
  if (layers.empty()) throw parse_error("", 1, "layer", "no layer files");
  esft_trace out;
  token_routing tok;
  tok.top_k = o.top_k;
  std::vector<std::int64_t> line_tokens;
  std::string first_name;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& f = layers[i];
    if (i == 0) first_name = std::filesystem::path(f.name).filename().string();
    detail::parse_esft_layer(f.text, f.name, o, line_tokens, i == 0, first_name, tok.ids, tok.weights);
    if (i == 0) {
      std::int64_t total = 0;
      for (auto t : line_tokens) total += t;
      tok.ids.reserve(static_cast<std::size_t>(total) * o.top_k * layers.size());
      tok.weights.reserve(tok.ids.capacity());
    }
    out.source_layers.push_back(f.source_layer);
  }
  out.sequence_offsets.assign(1, 0);
  for (auto t : line_tokens) out.sequence_offsets.push_back(out.sequence_offsets.back() + t);
  tok.num_tokens = out.sequence_offsets.back();
  out.trace = batch_tokens(static_cast<std::int32_t>(layers.size()), o.num_experts, std::move(tok), o.steps);
  return out;
}

/// Reads one ESFT task directory (files expert_weights_<L>.txt) into a trace with token routing and
/// steps cut by `o.steps`. Per layer the trace holds exactly tokens x top_k assignments (fewer only
/// with partial_step::drop). Throws parse_error (file, line, field) on malformed or missing input,
/// io_error when an existing file cannot be read, config_error on bad options.
[[nodiscard]] inline esft_trace read_esft(const std::filesystem::path& task_dir, const esft_options& o = {}) {
  o.validate();
  std::vector<std::int32_t> layers;
  if (o.num_layers > 0) {
    for (std::int32_t i = 0; i < o.num_layers; ++i) layers.push_back(o.first_layer + i);
  } else {
    std::error_code ec;
    if (!std::filesystem::is_directory(task_dir, ec))
      throw parse_error(task_dir.string(), 1, "layer", "not a directory holding expert_weights_<L>.txt files");
    std::int32_t max_layer = o.first_layer - 1;
    for (const auto& entry : std::filesystem::directory_iterator(task_dir)) {
      const auto name = entry.path().filename().string();
      constexpr std::string_view prefix = "expert_weights_", suffix = ".txt";
      if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) continue;
      const auto num = std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - suffix.size());
      std::int32_t L = 0;
      const auto [p, err] = std::from_chars(num.data(), num.data() + num.size(), L);
      if (err != std::errc() || p != num.data() + num.size()) continue;  // not a layer file name
      if (L >= o.first_layer) max_layer = std::max(max_layer, L);
    }
    if (max_layer < o.first_layer)
      throw parse_error(esft_layer_file(task_dir, o.first_layer).string(), 1, "layer",
                        "missing layer file: no expert_weights_<L>.txt with L >= " + std::to_string(o.first_layer) +
                            " in " + task_dir.string());
    for (std::int32_t L = o.first_layer; L <= max_layer; ++L) layers.push_back(L);
  }
  for (const auto L : layers) {
    const auto f = esft_layer_file(task_dir, L);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec))
      throw parse_error(f.string(), 1, "layer",
                        "missing layer file for layer " + std::to_string(L) + " (layers " + std::to_string(layers.front()) +
                            ".." + std::to_string(layers.back()) + " expected)");
  }

  std::vector<std::string> texts;
  std::vector<std::string> names;
  for (const auto L : layers) {
    const auto f = esft_layer_file(task_dir, L);
    texts.push_back(detail::read_text_file(f));
    names.push_back(f.string());
  }
  std::vector<esft_layer_text> in;
  for (std::size_t i = 0; i < layers.size(); ++i) in.push_back({layers[i], names[i], texts[i]});
  auto out = parse_esft(in, o);
  for (const auto L : layers) out.files.push_back(esft_layer_file(task_dir, L));
  return out;
}

}  // namespace gem
