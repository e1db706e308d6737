// gem/detail/io/json_source.hpp — parsed JSON text that remembers its file name, so that readers can
// throw parse_error naming the file, the line of the offending value and its field path
// ("layers[2].phy2log[5]"). Depends on nlohmann-json, gem/error.hpp.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gem/error.hpp"

namespace gem::detail {

/// A path into a JSON document: object keys and array indices, outermost first.
class json_path {
 public:
  json_path() = default;
  [[nodiscard]] json_path operator/(std::string key) const {
    json_path p = *this;
    p.parts_.emplace_back(std::move(key));
    return p;
  }
  [[nodiscard]] json_path operator[](std::size_t index) const {
    json_path p = *this;
    p.parts_.emplace_back(index);
    return p;
  }
  /// "a.b[3][4]".
  [[nodiscard]] std::string str() const {
    std::string out;
    for (const auto& part : parts_) {
      if (const auto* k = std::get_if<std::string>(&part)) {
        if (!out.empty()) out += '.';
        out += *k;
      } else {
        out += '[' + std::to_string(std::get<std::size_t>(part)) + ']';
      }
    }
    return out;
  }
  [[nodiscard]] const std::vector<std::variant<std::string, std::size_t>>& parts() const noexcept { return parts_; }

 private:
  std::vector<std::variant<std::string, std::size_t>> parts_{};
};

/// Finds the 1-based line where the value at `path` starts in JSON `text`; 0 when it cannot (the
/// text is assumed to be valid JSON: it has been parsed before). Linear in the text; used on errors only.
inline std::size_t json_line_of(std::string_view text, const json_path& path) {
  std::size_t pos = 0, line = 1;
  const auto skip_ws = [&] {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r')) {
      if (text[pos] == '\n') ++line;
      ++pos;
    }
  };
  const auto skip_string = [&] {  // at '"'
    ++pos;
    while (pos < text.size() && text[pos] != '"') pos += text[pos] == '\\' ? 2 : 1;
    ++pos;
  };
  // Skips one value starting at pos (after whitespace).
  const auto skip_value = [&] {
    skip_ws();
    if (pos >= text.size()) return;
    if (text[pos] == '"') return skip_string();
    if (text[pos] != '[' && text[pos] != '{') {
      while (pos < text.size() && text[pos] != ',' && text[pos] != ']' && text[pos] != '}' && text[pos] != '\n') ++pos;
      return;
    }
    int depth = 0;
    while (pos < text.size()) {
      const char c = text[pos];
      if (c == '"') {
        skip_string();
        continue;
      }
      if (c == '\n') ++line;
      if (c == '[' || c == '{') ++depth;
      if (c == ']' || c == '}') {
        if (--depth == 0) {
          ++pos;
          return;
        }
      }
      ++pos;
    }
  };
  for (const auto& part : path.parts()) {
    skip_ws();
    if (pos >= text.size()) return 0;
    if (const auto* key = std::get_if<std::string>(&part)) {
      if (text[pos] != '{') return 0;
      ++pos;
      bool found = false;
      while (!found) {
        skip_ws();
        if (pos >= text.size() || text[pos] != '"') return 0;
        const auto start = pos + 1;
        skip_string();
        const auto name = text.substr(start, pos - 1 - start);
        skip_ws();
        if (pos >= text.size() || text[pos] != ':') return 0;
        ++pos;
        if (name == *key) {
          found = true;
        } else {
          skip_value();
          skip_ws();
          if (pos >= text.size() || text[pos] != ',') return 0;
          ++pos;
        }
      }
    } else {
      const auto index = std::get<std::size_t>(part);
      if (text[pos] != '[') return 0;
      ++pos;
      for (std::size_t i = 0; i < index; ++i) {
        skip_value();
        skip_ws();
        if (pos >= text.size() || text[pos] != ',') return 0;
        ++pos;
      }
    }
  }
  skip_ws();
  return pos < text.size() ? line : 0;
}

/// A parsed JSON document with its source text and file name.
class json_source {
 public:
  /// Parses `text`; a syntax error becomes parse_error with the line of the offending byte.
  json_source(std::string text, std::string file) : text_(std::move(text)), file_(std::move(file)) {
    try {
      doc_ = nlohmann::json::parse(text_);
    } catch (const nlohmann::json::parse_error& e) {
      std::size_t line = 1;
      const auto end = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text_.size());
      for (std::size_t i = 0; i < end; ++i) line += text_[i] == '\n';
      std::string reason = e.what();
      if (const auto at = reason.find("syntax error"); at != std::string::npos) reason = reason.substr(at);
      throw parse_error(file_, line, "", "not valid JSON: " + reason);
    } catch (const nlohmann::json::exception& e) {
      // Raised while parsing without a byte position, e.g. a number too large for a double
      // ("number overflow parsing '1e999'"): locate the quoted literal to name its line.
      std::string reason = e.what();
      std::size_t line = 0;
      if (const auto q = reason.find('\''); q != std::string::npos) {
        const auto literal = reason.substr(q + 1, reason.find('\'', q + 1) - q - 1);
        if (const auto at = literal.empty() ? std::string::npos : text_.find(literal); at != std::string::npos) {
          line = 1;
          for (std::size_t i = 0; i < at; ++i) line += text_[i] == '\n';
        }
      }
      if (const auto at = reason.find("] "); at != std::string::npos) reason = reason.substr(at + 2);
      throw parse_error(file_, line, "", "not valid JSON: " + reason);
    }
  }

  [[nodiscard]] const nlohmann::json& doc() const noexcept { return doc_; }
  [[nodiscard]] const std::string& file() const noexcept { return file_; }

  /// Throws parse_error naming the file, the line of `path` and the path.
  [[noreturn]] void fail(const json_path& path, const std::string& reason) const {
    throw parse_error(file_, json_line_of(text_, path), path.str(), reason);
  }

  /// The value at `path` (object members and array elements must exist).
  [[nodiscard]] const nlohmann::json& at(const json_path& path) const {
    const nlohmann::json* j = &doc_;
    json_path walked;
    for (const auto& part : path.parts()) {
      if (const auto* key = std::get_if<std::string>(&part)) {
        if (!j->is_object()) fail(walked, "expected an object");
        const auto it = j->find(*key);
        walked = walked / *key;
        if (it == j->end()) fail(walked, "missing");
        j = &*it;
      } else {
        const auto i = std::get<std::size_t>(part);
        if (!j->is_array()) fail(walked, "expected an array");
        walked = walked[i];
        if (i >= j->size()) fail(walked, "missing");
        j = &(*j)[i];
      }
    }
    return *j;
  }
  [[nodiscard]] bool has(const std::string& key) const { return doc_.is_object() && doc_.contains(key); }

  /// An integer in [lo, hi].
  [[nodiscard]] std::int64_t integer(const json_path& path, std::int64_t lo = std::numeric_limits<std::int32_t>::min(),
                                     std::int64_t hi = std::numeric_limits<std::int32_t>::max()) const {
    return integer_value(at(path), path, lo, hi);
  }
  [[nodiscard]] std::int64_t integer_value(const nlohmann::json& j, const json_path& path, std::int64_t lo,
                                           std::int64_t hi) const {
    std::int64_t v = 0;
    if (j.is_number_unsigned()) {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) fail(path, "integer too large");
      v = static_cast<std::int64_t>(u);
    } else if (j.is_number_integer()) {
      v = j.get<std::int64_t>();
    } else {
      fail(path, std::string("expected an integer, got ") + j.type_name() +
                     (j.is_number_float() ? " " + j.dump() : std::string()));
    }
    if (v < lo || v > hi)
      fail(path, "value " + std::to_string(v) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  /// A finite number.
  [[nodiscard]] double number_value(const nlohmann::json& j, const json_path& path) const {
    if (!j.is_number()) fail(path, std::string("expected a number, got ") + j.type_name());
    const double v = j.get<double>();
    if (!std::isfinite(v)) fail(path, "not a finite number");
    return v;
  }
  /// The array at `path`; `expect_size` > 0 checks its length.
  [[nodiscard]] const nlohmann::json& array(const json_path& path, std::size_t expect_size = 0) const {
    const auto& j = at(path);
    if (!j.is_array()) fail(path, std::string("expected an array, got ") + j.type_name());
    if (expect_size != 0 && j.size() != expect_size)
      fail(path, "holds " + std::to_string(j.size()) + " values, expected " + std::to_string(expect_size));
    return j;
  }
  /// [n] integers in [lo, hi] at `path`.
  [[nodiscard]] std::vector<std::int32_t> int_row(const json_path& path, std::size_t expect_size, std::int64_t lo,
                                                  std::int64_t hi) const {
    const auto& a = array(path, expect_size);
    std::vector<std::int32_t> out(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<std::int32_t>(integer_value(a[i], path[i], lo, hi));
    return out;
  }
  /// [n] finite numbers at `path`.
  [[nodiscard]] std::vector<double> number_row(const json_path& path, std::size_t expect_size) const {
    const auto& a = array(path, expect_size);
    std::vector<double> out(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) out[i] = number_value(a[i], path[i]);
    return out;
  }

 private:
  std::string text_;
  std::string file_;
  nlohmann::json doc_{};
};

}  // namespace gem::detail
