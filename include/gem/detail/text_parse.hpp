// gem/detail/text_parse.hpp — what gem's text readers share: whole-file reads, a line cursor that
// counts lines, and number parsing that throws gem::parse_error naming file, line and field.
// Depends on gem/error.hpp and the standard library (std::from_chars). Not part of the public API.
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gem/error.hpp"

namespace gem::detail {

/// The bytes of `path`. Throws io_error when the file cannot be opened or read.
inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(path.string() + ": cannot open for reading");
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) throw io_error(path.string() + ": cannot determine the file size");
  in.seekg(0, std::ios::beg);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (size > 0 && !in.read(bytes.data(), size)) throw io_error(path.string() + ": read failed");
  return bytes;
}

/// Walks `text` line by line. `next` yields each line without its '\n' (and without a '\r' before
/// it); a last line without '\n' is still yielded. `line_number()` is the 1-based number of the line
/// last yielded.
class line_cursor {
 public:
  explicit line_cursor(std::string_view text) noexcept : text_(text) {}

  bool next(std::string_view& line) noexcept {
    if (pos_ >= text_.size()) return false;
    const auto nl = text_.find('\n', pos_);
    const auto end = nl == std::string_view::npos ? text_.size() : nl;
    line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    ++line_;
    return true;
  }
  [[nodiscard]] std::size_t line_number() const noexcept { return line_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 0;
};

/// Splits `line` at every `sep` (empty fields kept).
inline std::vector<std::string_view> split_fields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const auto p = line.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, p - start));
    start = p + 1;
  }
}

/// Shortens `s` for an error message.
inline std::string quote_token(std::string_view s) {
  constexpr std::size_t max_len = 24;
  std::string out = "'";
  out += s.size() > max_len ? std::string(s.substr(0, max_len)) + "..." : std::string(s);
  out += "'";
  return out;
}

/// Parses all of `tok` as a base-10 integer of type Int; throws parse_error(file, line, field).
template <class Int>
Int parse_integer(std::string_view tok, const std::string& file, std::size_t line, const std::string& field) {
  Int v{};
  if (tok.empty()) throw parse_error(file, line, field, "empty value where an integer was expected");
  const auto* first = tok.data();
  const auto* last = tok.data() + tok.size();
  if (*first == '+') ++first;  // from_chars rejects a leading '+'; accept it as text tools write it
  const auto [p, ec] = std::from_chars(first, last, v);
  if (ec == std::errc::result_out_of_range)
    throw parse_error(file, line, field, quote_token(tok) + " is out of range");
  if (ec != std::errc() || p != last || first == last)
    throw parse_error(file, line, field, quote_token(tok) + " is not an integer");
  return v;
}

/// Parses all of `tok` as a finite floating-point number of type Real (correctly rounded).
template <class Real>
Real parse_real(std::string_view tok, const std::string& file, std::size_t line, const std::string& field) {
  Real v{};
  if (tok.empty()) throw parse_error(file, line, field, "empty value where a number was expected");
  const auto* first = tok.data();
  const auto* last = tok.data() + tok.size();
  if (*first == '+') ++first;
  const auto [p, ec] = std::from_chars(first, last, v);
  if (ec == std::errc::result_out_of_range)
    throw parse_error(file, line, field, quote_token(tok) + " is out of range");
  if (ec != std::errc() || p != last || first == last || !(v == v) ||
      v > std::numeric_limits<Real>::max() || v < std::numeric_limits<Real>::lowest())
    throw parse_error(file, line, field, quote_token(tok) + " is not a finite number");
  return v;
}

/// Appends the shortest text that reads back (std::from_chars) to exactly `v`.
template <class Number>
void append_number(std::string& out, Number v) {
  char buf[64];
  const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

}  // namespace gem::detail
