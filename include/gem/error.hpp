// gem/error.hpp — the exception hierarchy of gem's host API.
// Every message names the input it is about (file, line, field, layer, expert or GPU).
// Depends on the standard library only.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace gem {

/// Base of every exception gem throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A configuration value or argument is invalid (which field and why is in the message).
class config_error : public error {
 public:
  using error::error;
};

/// A placement violates an invariant (names the layer and the expert, slot or GPU).
class placement_error : public error {
 public:
  using error::error;
};

/// A file or text could not be parsed. `file()`, `line()` (1-based, 0 when not line-oriented) and
/// `field()` say where; `what()` repeats them as "file:line: field: reason".
class parse_error : public error {
 public:
  parse_error(std::string file, std::size_t line, std::string field, const std::string& reason)
      : error(format(file, line, field, reason)),
        file_(std::move(file)),
        line_(line),
        field_(std::move(field)) {}

  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] std::size_t line() const noexcept { return line_; }
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  static std::string format(const std::string& file, std::size_t line, const std::string& field,
                            const std::string& reason) {
    std::string msg = file.empty() ? std::string("<input>") : file;
    if (line != 0) msg += ":" + std::to_string(line);
    msg += ": ";
    if (!field.empty()) msg += "field '" + field + "': ";
    msg += reason;
    return msg;
  }

  std::string file_;
  std::size_t line_;
  std::string field_;
};

/// A file could not be opened, read or written.
class io_error : public error {
 public:
  using error::error;
};

/// A CUDA runtime or library call failed (raised by host-side wrappers that may throw, such as the
/// profiler; launch paths return a status instead).
class cuda_error : public error {
 public:
  using error::error;
};

}  // namespace gem
