// gem/detail/io/yaml_subset.hpp — a reader for the small subset of YAML that TensorRT-LLM's load
// balancer files use: block mappings and block sequences by indentation, flow sequences and flow
// mappings (`[1, 2]`, `{3: [..]}`, may span lines), plain or quoted scalars, `#` comments, `---`.
// No anchors, tags, multi-line strings or complex keys. Errors are parse_error with file and line.
// Depends on gem/error.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gem/error.hpp"

namespace gem::detail {

/// One YAML node: a scalar (its text), a sequence (items) or a mapping (key text, value).
struct yaml_node {
  enum class kind { scalar, sequence, mapping };
  kind type = kind::scalar;
  std::string text{};
  std::vector<yaml_node> items{};
  std::vector<std::pair<std::string, yaml_node>> entries{};
  std::size_t line = 0;  ///< 1-based line where the node starts.

  [[nodiscard]] const yaml_node* find(std::string_view key) const {
    for (const auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  }
};

class yaml_subset_parser {
 public:
  yaml_subset_parser(std::string_view text, std::string file) : file_(std::move(file)) { split(text); }

  /// The document's root node (an empty mapping for an empty document).
  [[nodiscard]] yaml_node parse() {
    if (lines_.empty()) return yaml_node{.type = yaml_node::kind::mapping, .line = 1};
    auto root = parse_block(lines_[0].indent);
    if (cur_ < lines_.size()) fail(lines_[cur_].number, "unexpected indentation or content after the document");
    return root;
  }

 private:
  struct line_t {
    std::size_t number;
    std::size_t indent;
    std::string content;  // without indentation and comment, right-trimmed
  };

  [[noreturn]] void fail(std::size_t line, const std::string& reason) const { throw parse_error(file_, line, "", reason); }

  static std::string strip_comment(std::string_view s) {
    bool single = false, dbl = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '\'' && !dbl) single = !single;
      if (c == '"' && !single) dbl = !dbl;
      if (c == '#' && !single && !dbl && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
        return std::string(s.substr(0, i));
    }
    return std::string(s);
  }
  static std::string trim(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
    return std::string(s.substr(b, e - b));
  }

  void split(std::string_view text) {
    std::size_t number = 0, start = 0;
    while (start <= text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      const auto raw = text.substr(start, end - start);
      ++number;
      start = end + 1;
      std::size_t indent = 0;
      while (indent < raw.size() && raw[indent] == ' ') ++indent;
      const auto content = trim(strip_comment(raw.substr(indent)));
      if (content.empty()) {
        if (end == text.size()) break;
        continue;
      }
      if (indent < raw.size() && raw[indent] == '\t') fail(number, "tab in indentation (YAML allows spaces only)");
      if (content == "---" && lines_.empty()) continue;
      if (content == "...") break;
      if (content.front() == '&' || content.front() == '*' || content.front() == '!' || content.front() == '|' ||
          content.front() == '>')
        fail(number, "anchors, aliases, tags and block scalars are not supported");
      lines_.push_back({number, indent, content});
      if (end == text.size()) break;
    }
  }

  // Splits "key: rest" at the first ": " (or trailing ':') outside quotes and brackets; npos when none.
  static std::size_t key_colon(std::string_view s) {
    bool single = false, dbl = false;
    int depth = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '\'' && !dbl) single = !single;
      else if (c == '"' && !single) dbl = !dbl;
      else if (!single && !dbl) {
        if (c == '[' || c == '{') ++depth;
        if (c == ']' || c == '}') --depth;
        if (c == ':' && depth == 0 && (i + 1 == s.size() || s[i + 1] == ' ')) return i;
      }
    }
    return std::string_view::npos;
  }

  std::string unquote(std::string s, std::size_t line) const {
    if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\'')))
      return s.substr(1, s.size() - 2);
    if (!s.empty() && (s.front() == '"' || s.front() == '\'')) fail(line, "unterminated quoted scalar " + s);
    return s;
  }

  // A value that starts on the current line after "key:" or "- " (text `rest`, at line index cur_-1).
  yaml_node inline_value(std::string rest, std::size_t line, std::size_t parent_indent, bool in_mapping) {
    if (rest.empty()) {
      // Nested block on the following lines: deeper indentation, or (for a mapping value) a
      // sequence at the same indentation, as PyYAML writes it.
      if (cur_ < lines_.size() &&
          (lines_[cur_].indent > parent_indent ||
           (in_mapping && lines_[cur_].indent == parent_indent && lines_[cur_].content.starts_with("-"))))
        return parse_block(lines_[cur_].indent);
      return yaml_node{.type = yaml_node::kind::scalar, .text = "", .line = line};
    }
    if (rest.front() == '[' || rest.front() == '{') {
      // Collect continuation lines until brackets balance.
      std::string flow = rest;
      while (!balanced(flow)) {
        if (cur_ >= lines_.size()) fail(line, "unterminated flow collection starting here");
        flow += ' ' + lines_[cur_++].content;
      }
      std::size_t pos = 0;
      auto node = parse_flow(flow, pos, line);
      skip_spaces(flow, pos);
      if (pos != flow.size()) fail(line, "unexpected text after flow collection: " + flow.substr(pos));
      return node;
    }
    return yaml_node{.type = yaml_node::kind::scalar, .text = unquote(rest, line), .line = line};
  }

  static bool balanced(std::string_view s) {
    int depth = 0;
    bool single = false, dbl = false;
    for (char c : s) {
      if (c == '\'' && !dbl) single = !single;
      else if (c == '"' && !single) dbl = !dbl;
      else if (!single && !dbl) {
        if (c == '[' || c == '{') ++depth;
        if (c == ']' || c == '}') --depth;
      }
    }
    return depth <= 0;
  }
  static void skip_spaces(std::string_view s, std::size_t& pos) {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
  }

  yaml_node parse_flow(std::string_view s, std::size_t& pos, std::size_t line, std::size_t depth = 0) const {
    if (depth > max_depth) fail(line, "collections nested deeper than " + std::to_string(max_depth) + " levels");
    skip_spaces(s, pos);
    if (pos >= s.size()) fail(line, "missing value in flow collection");
    const char open = s[pos];
    if (open == '[' || open == '{') {
      ++pos;
      yaml_node node{.type = open == '[' ? yaml_node::kind::sequence : yaml_node::kind::mapping, .line = line};
      const char close = open == '[' ? ']' : '}';
      skip_spaces(s, pos);
      if (pos < s.size() && s[pos] == close) {
        ++pos;
        return node;
      }
      while (true) {
        if (open == '[') {
          node.items.push_back(parse_flow(s, pos, line, depth + 1));
        } else {
          auto key = parse_flow_scalar(s, pos, line, true);
          skip_spaces(s, pos);
          if (pos >= s.size() || s[pos] != ':') fail(line, "expected ':' after key '" + key.text + "' in flow mapping");
          ++pos;
          node.entries.emplace_back(key.text, parse_flow(s, pos, line, depth + 1));
        }
        skip_spaces(s, pos);
        if (pos >= s.size()) fail(line, std::string("missing '") + close + "'");
        if (s[pos] == ',') {
          ++pos;
          skip_spaces(s, pos);
          if (pos < s.size() && s[pos] == close) {  // trailing comma
            ++pos;
            return node;
          }
          continue;
        }
        if (s[pos] == close) {
          ++pos;
          return node;
        }
        fail(line, std::string("expected ',' or '") + close + "' in flow collection, got '" + s[pos] + "'");
      }
    }
    return parse_flow_scalar(s, pos, line, false);
  }

  yaml_node parse_flow_scalar(std::string_view s, std::size_t& pos, std::size_t line, bool is_key) const {
    skip_spaces(s, pos);
    const auto start = pos;
    if (pos < s.size() && (s[pos] == '"' || s[pos] == '\'')) {
      const char q = s[pos++];
      while (pos < s.size() && s[pos] != q) ++pos;
      if (pos >= s.size()) fail(line, "unterminated quoted scalar");
      ++pos;
    } else {
      while (pos < s.size() && s[pos] != ',' && s[pos] != ']' && s[pos] != '}' && !(is_key && s[pos] == ':') &&
             s[pos] != '[' && s[pos] != '{')
        ++pos;
    }
    auto text = trim(s.substr(start, pos - start));
    if (text.empty()) fail(line, "empty value in flow collection");
    return yaml_node{.type = yaml_node::kind::scalar, .text = unquote(text, line), .line = line};
  }

  yaml_node parse_block(std::size_t indent) {
    const auto& first = lines_[cur_];
    if (++block_depth_ > max_depth) fail(first.number, "blocks nested deeper than " + std::to_string(max_depth) + " levels");
    const bool is_seq = first.content == "-" || first.content.starts_with("- ");
    yaml_node node{.type = is_seq ? yaml_node::kind::sequence : yaml_node::kind::mapping, .line = first.number};
    while (cur_ < lines_.size() && lines_[cur_].indent == indent) {
      const auto ln = lines_[cur_];
      const bool dash = ln.content == "-" || ln.content.starts_with("- ");
      if (dash != is_seq) {
        if (is_seq) break;  // a sequence ends where a sibling key begins (PyYAML's same-indent lists)
        fail(ln.number, "mixing sequence items and mapping keys at the same indentation");
      }
      ++cur_;
      if (is_seq) {
        auto rest = trim(std::string_view(ln.content).substr(1));
        if (!rest.empty() && key_colon(rest) != std::string_view::npos && rest.front() != '[' && rest.front() != '{')
          fail(ln.number, "mappings inside sequence items are not supported");
        node.items.push_back(inline_value(rest, ln.number, indent, false));
      } else {
        const auto colon = key_colon(ln.content);
        if (colon == std::string_view::npos) fail(ln.number, "expected 'key: value', got '" + ln.content + "'");
        auto key = unquote(trim(std::string_view(ln.content).substr(0, colon)), ln.number);
        if (key.empty()) fail(ln.number, "empty key");
        for (const auto& [k, v] : node.entries)
          if (k == key) fail(ln.number, "duplicate key '" + key + "'");
        auto rest = trim(std::string_view(ln.content).substr(colon + 1));
        node.entries.emplace_back(key, inline_value(rest, ln.number, indent, true));
      }
    }
    if (cur_ < lines_.size() && lines_[cur_].indent > indent)
      fail(lines_[cur_].number, "unexpected indentation");
    --block_depth_;
    return node;
  }

  static constexpr std::size_t max_depth = 64;  // bounds recursion on hostile input

  std::string file_;
  std::vector<line_t> lines_{};
  std::size_t cur_ = 0;
  std::size_t block_depth_ = 0;
};

/// Parses YAML `text` (the subset above) into its root node.
inline yaml_node parse_yaml_subset(std::string_view text, const std::string& file) {
  return yaml_subset_parser(text, file).parse();
}

}  // namespace gem::detail
