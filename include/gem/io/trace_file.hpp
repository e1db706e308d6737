// gem/io/trace_file.hpp — gem's own trace file: a routing_trace (counts and, when present, the
// per-token top-k ids, gate weights and step offsets) as plain text that reads back to an equal
// trace and is written byte-for-byte the same for equal traces. Depends on gem/trace.hpp.
//
// Format "gem-trace 1" (ASCII, LF line ends, single spaces between values, no trailing spaces):
//   gem-trace 1
//   layers <L>
//   steps <S>
//   experts <E>
//   top_k <k>                 0 when the trace has no token routing (then tokens is 0, weights 0)
//   tokens <T>
//   weights <0|1>             1 when gate weights are stored
//   counts                    then L*S lines, layer-major: the E counts of (layer l, step s)
//   step_offsets              (only when k > 0) then one line of S+1 token offsets
//   ids                       (only when k > 0) then L*T lines, layer-major: the k ids of (l, token t)
//   weights                   (only when weights is 1) then L*T lines: the k gate weights of (l, t),
//                             each the shortest decimal that reads back to the same float
//   end
// Integers are base 10 without sign or leading '+'. Nothing may follow `end`. The reader checks the
// keywords, every count of values, and (through routing_trace) that ids are in range, distinct per
// token, and agree with the counts. Errors are gem::parse_error naming file, line and field.
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "gem/detail/text_parse.hpp"
#include "gem/error.hpp"
#include "gem/trace.hpp"

namespace gem {

/// The trace as gem-trace text (see the format above). Equal traces give equal bytes.
[[nodiscard]] inline std::string trace_to_text(const routing_trace& t) {
  using detail::append_number;
  const auto& tok = t.tokens();
  const std::int32_t k = tok ? tok->top_k : 0;
  const std::int64_t n = tok ? tok->num_tokens : 0;
  const bool has_w = tok && !tok->weights.empty();
  std::string s;
  s.reserve(64 + t.counts().size() * 4 + static_cast<std::size_t>(t.num_layers()) * n * k * (has_w ? 10 : 4));
  auto kv = [&](const char* key, std::int64_t v) {
    s += key;
    s += ' ';
    append_number(s, v);
    s += '\n';
  };
  s += "gem-trace 1\n";
  kv("layers", t.num_layers());
  kv("steps", t.num_steps());
  kv("experts", t.num_experts());
  kv("top_k", k);
  kv("tokens", n);
  kv("weights", has_w ? 1 : 0);
  auto row = [&](const auto* p, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      if (i) s += ' ';
      append_number(s, p[i]);
    }
    s += '\n';
  };
  s += "counts\n";
  const auto E = static_cast<std::size_t>(t.num_experts());
  for (std::size_t r = 0; r < static_cast<std::size_t>(t.num_layers()) * t.num_steps(); ++r) row(t.counts().data() + r * E, E);
  if (tok && k > 0) {
    s += "step_offsets\n";
    row(tok->step_offsets.data(), tok->step_offsets.size());
    s += "ids\n";
    const auto rows = static_cast<std::size_t>(t.num_layers()) * static_cast<std::size_t>(n);
    for (std::size_t r = 0; r < rows; ++r) row(tok->ids.data() + r * k, static_cast<std::size_t>(k));
    if (has_w) {
      s += "weights\n";
      for (std::size_t r = 0; r < rows; ++r) row(tok->weights.data() + r * k, static_cast<std::size_t>(k));
    }
  }
  s += "end\n";
  return s;
}

/// Writes trace_to_text(t) to `out`; throws io_error when the stream fails.
inline void write_trace(std::ostream& out, const routing_trace& t) {
  const auto s = trace_to_text(t);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
  if (!out) throw io_error("write_trace: the stream failed");
}

/// Writes the trace to `path` (replacing it); throws io_error when it cannot be written.
inline void write_trace_file(const std::filesystem::path& path, const routing_trace& t) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw io_error(path.string() + ": cannot open for writing");
  write_trace(out, t);
  out.close();
  if (!out) throw io_error(path.string() + ": write failed");
}

/// Parses gem-trace text (`file` names it in errors). Throws parse_error (file, line, field) on
/// malformed text, including a trace whose token routing and counts disagree.
[[nodiscard]] inline routing_trace parse_trace(std::string_view text, const std::string& file = "<input>") {
  detail::line_cursor cur(text);
  std::string_view line;
  auto next_line = [&](const char* field) {
    if (!cur.next(line)) throw parse_error(file, cur.line_number() + 1, field, "unexpected end of file");
  };
  auto keyword = [&](const char* word) {
    next_line(word);
    if (line != word)
      throw parse_error(file, cur.line_number(), word,
                        "expected the line '" + std::string(word) + "', found " + detail::quote_token(line));
  };
  auto header_value = [&](const char* key) -> std::int64_t {
    next_line(key);
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos || line.substr(0, sp) != key)
      throw parse_error(file, cur.line_number(), key,
                        "expected '" + std::string(key) + " <value>', found " + detail::quote_token(line));
    const auto v = detail::parse_integer<std::int64_t>(line.substr(sp + 1), file, cur.line_number(), key);
    if (v < 0 || v > INT32_MAX * std::int64_t{64})
      throw parse_error(file, cur.line_number(), key, "value " + std::to_string(v) + " is out of range");
    return v;
  };
  if (text.empty()) throw parse_error(file, 1, "header", "empty file (expected 'gem-trace 1')");
  next_line("header");
  if (line != "gem-trace 1")
    throw parse_error(file, 1, "header", "expected 'gem-trace 1', found " + detail::quote_token(line));
  const auto L = header_value("layers");
  const auto S = header_value("steps");
  const auto E = header_value("experts");
  const auto k = header_value("top_k");
  const auto n = header_value("tokens");
  const auto w = header_value("weights");
  if (L > INT32_MAX || S > INT32_MAX || E > INT32_MAX || k > INT32_MAX)
    throw parse_error(file, 2, "layers", "a dimension does not fit a 32-bit count");
  if (w > 1) throw parse_error(file, 7, "weights", "must be 0 or 1");
  if (k == 0 && (n != 0 || w != 0)) throw parse_error(file, 6, "tokens", "must be 0 when top_k is 0");
  if (w == 1 && n == 0) throw parse_error(file, 7, "weights", "must be 0 when there are no tokens");
  // Every value takes at least 2 bytes ("0 " or "0\n"): dimensions the text cannot hold are an error
  // (and never drive a huge allocation).
  const double room = static_cast<double>(text.size()) / 2;
  if (static_cast<double>(L) * static_cast<double>(S) * static_cast<double>(E) > room ||
      static_cast<double>(L) * static_cast<double>(n) * static_cast<double>(k) > room)
    throw parse_error(file, 2, "layers", "the file is too short for the dimensions it declares");

  // Reads `count` values of type V from the next line into out (appending); `field()` names the
  // row in errors (built only when one is thrown).
  std::vector<std::string_view> fields;
  auto value_row = [&]<class V, class Field>(std::vector<V>& out, std::size_t count, const Field& field) {
    if (!cur.next(line)) throw parse_error(file, cur.line_number() + 1, field(), "unexpected end of file");
    const auto ln = cur.line_number();
    fields = detail::split_fields(line, ' ');
    if (fields.size() != count)
      throw parse_error(file, ln, field(),
                        "holds " + std::to_string(fields.size()) + " values, expected " + std::to_string(count));
    for (const auto f : fields) {
      V v{};
      const auto* first = f.data();
      const auto* last = f.data() + f.size();
      const auto [p, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || p != last || first == last) {
        if constexpr (std::is_floating_point_v<V>)
          (void)detail::parse_real<V>(f, file, ln, field());  // throws with the precise reason
        else
          (void)detail::parse_integer<V>(f, file, ln, field());
        throw parse_error(file, ln, field(), detail::quote_token(f) + " is not a number");
      }
      if constexpr (std::is_floating_point_v<V>) {
        if (!(v == v) || v > std::numeric_limits<V>::max() || v < std::numeric_limits<V>::lowest())
          throw parse_error(file, ln, field(), detail::quote_token(f) + " is not a finite number");
      } else {
        if (v < 0) throw parse_error(file, ln, field(), detail::quote_token(f) + " is negative");
      }
      out.push_back(v);
    }
  };
  auto at = [](const char* what, const char* unit, std::int64_t l, std::int64_t i) {
    return [=] { return std::string(what) + "[layer " + std::to_string(l) + ", " + unit + " " + std::to_string(i) + "]"; };
  };
  keyword("counts");
  std::vector<std::int64_t> counts;
  counts.reserve(static_cast<std::size_t>(L * S * E));
  for (std::int64_t l = 0; l < L; ++l)
    for (std::int64_t s = 0; s < S; ++s) value_row(counts, static_cast<std::size_t>(E), at("counts", "step", l, s));
  std::optional<token_routing> tokens;
  if (k > 0) {
    token_routing tr;
    tr.top_k = static_cast<std::int32_t>(k);
    tr.num_tokens = n;
    keyword("step_offsets");
    value_row(tr.step_offsets, static_cast<std::size_t>(S + 1), [] { return std::string("step_offsets"); });
    keyword("ids");
    tr.ids.reserve(static_cast<std::size_t>(L * n * k));
    for (std::int64_t l = 0; l < L; ++l)
      for (std::int64_t t = 0; t < n; ++t) {
        value_row(tr.ids, static_cast<std::size_t>(k), at("ids", "token", l, t));
        const auto* row = tr.ids.data() + tr.ids.size() - static_cast<std::size_t>(k);
        for (std::int64_t j = 0; j < k; ++j) {
          if (row[j] < 0 || row[j] >= E)
            throw parse_error(file, cur.line_number(), at("ids", "token", l, t)(),
                              "expert id " + std::to_string(row[j]) + " is not in [0, " + std::to_string(E) + ")");
          for (std::int64_t i = 0; i < j; ++i)
            if (row[i] == row[j])
              throw parse_error(file, cur.line_number(), at("ids", "token", l, t)(),
                                "expert " + std::to_string(row[j]) + " appears twice in the token");
        }
      }
    if (w == 1) {
      keyword("weights");
      tr.weights.reserve(tr.ids.size());
      for (std::int64_t l = 0; l < L; ++l)
        for (std::int64_t t = 0; t < n; ++t)
          value_row(tr.weights, static_cast<std::size_t>(k), at("weights", "token", l, t));
    }
    tokens = std::move(tr);
  }
  keyword("end");
  const auto end_line = cur.line_number();
  if (cur.next(line)) throw parse_error(file, cur.line_number(), "end", "text after 'end'");
  try {
    return routing_trace(static_cast<std::int32_t>(L), static_cast<std::int32_t>(S), static_cast<std::int32_t>(E),
                         std::move(counts), std::move(tokens));
  } catch (const config_error& e) {
    throw parse_error(file, end_line, "trace", e.what());
  }
}

/// Reads a gem-trace file. Throws io_error when it cannot be read, parse_error when malformed.
[[nodiscard]] inline routing_trace read_trace_file(const std::filesystem::path& path) {
  return parse_trace(detail::read_text_file(path), path.string());
}

}  // namespace gem
