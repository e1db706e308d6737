// gem/speed/profile.hpp — speed profiles: measured per-GPU expert latency tables for one MoE layer
// shape, as a JSON file (format below), their reader (strict, errors name the file and field),
// writer (exact round trip), shape check, and conversion to the `table` speed model.
// Depends on nlohmann-json, gem/speed/table.hpp, gem/speed/layer_shape.hpp and gem/error.hpp.
//
// File format (a JSON object; every field required unless marked optional):
//   {
//     "format": "gem.speed_profile",        // identifies the file
//     "version": 1,
//     "layer": {                            // the layer shape the latencies were measured for
//       "hidden": 4096,                     //   integer > 0
//       "intermediate": 14336,              //   integer > 0, one routed expert's
//       "num_experts": 8,                   //   optional integer >= 0 (0 = not given)
//       "top_k": 2                          //   optional integer >= 0 (0 = not given)
//     },
//     "dtype": "bf16",                      // bf16, fp16, fp32, fp8, e4m3 or e5m2
//     "tile_rows": 128,                     // the GEMM tile height BM the points step at, integer > 0
//     "measured": {
//       "at": "2026-11-29T01:00:00Z",       // when (ISO 8601, UTC)
//       "method": "..."                     // how: tool and version, kernel path, warm-up and
//     },                                    // repetitions, statistic (median), clocks
//     "gpus": [                             // one entry per GPU (or emulated GPU: an SM partition)
//       {
//         "device": "NVIDIA H200",          // device name
//         "uuid": "GPU-...",                // device UUID (may be "" for an emulated device)
//         "sm_count": 132,                  // SMs the measurement ran on, integer > 0
//         "seconds_per_active_expert": 2.1e-5,  // fixed cost of every expert with rows > 0, >= 0
//         "seconds_per_step": 3.0e-5,       // optional (0 when absent), >= 0: fixed cost of a step in
//                                           // which the GPU runs any expert (sizes, copies, launches)
//         "points": [                       // rows strictly increasing (1, BM, 2*BM, ...), > 0;
//           {"rows": 1, "seconds": 1.0e-6}, // seconds non-decreasing, >= 0; all finite
//           {"rows": 128, "seconds": 4.0e-6}
//         ]
//       }
//     ]
//   }
// Point semantics are those of `table_gpu`: an expert with `rows` rows costs `seconds` on top of
// `seconds_per_active_expert`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gem/error.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/table.hpp"

namespace gem {

/// One measured point: an expert with `rows` token rows costs `seconds` (beyond the fixed cost).
struct profile_point {
  double rows = 0;
  double seconds = 0;
  friend bool operator==(const profile_point&, const profile_point&) = default;
};

/// One profiled GPU (or emulated GPU).
struct profile_gpu {
  std::string device{};
  std::string uuid{};
  std::int32_t sm_count = 0;
  double seconds_per_active_expert = 0;
  std::vector<profile_point> points{};
  double seconds_per_step = 0;  ///< fixed cost of a step with any active expert (optional in files)
  friend bool operator==(const profile_gpu&, const profile_gpu&) = default;
};

/// A speed profile (see the file format at the top of this header). `shape.dtype_bytes` always
/// follows `dtype` (the reader sets it; `validate` checks it).
struct profile {
  layer_shape shape{};
  std::string dtype = "bf16";
  std::int32_t tile_rows = 0;
  std::string measured_at{};  ///< when, ISO 8601 UTC
  std::string method{};       ///< how
  std::vector<profile_gpu> gpus{};
  friend bool operator==(const profile&, const profile&) = default;
};

namespace detail {

using profile_json = nlohmann::ordered_json;

struct profile_problem {
  std::string field;
  std::string reason;
};

/// The first broken requirement of `p`, if any, with the JSON path of the field.
inline std::optional<profile_problem> find_profile_problem(const profile& p) {
  using std::to_string;
  if (p.shape.hidden <= 0) return profile_problem{"layer.hidden", "must be positive, got " + to_string(p.shape.hidden)};
  if (p.shape.intermediate <= 0)
    return profile_problem{"layer.intermediate", "must be positive, got " + to_string(p.shape.intermediate)};
  if (p.shape.num_experts < 0)
    return profile_problem{"layer.num_experts", "must be non-negative, got " + to_string(p.shape.num_experts)};
  if (p.shape.top_k < 0 || (p.shape.num_experts > 0 && p.shape.top_k > p.shape.num_experts))
    return profile_problem{"layer.top_k", "must be in [0, num_experts], got " + to_string(p.shape.top_k)};
  std::int32_t bytes = 0;
  try {
    bytes = dtype_bytes_of(p.dtype);
  } catch (const config_error& e) {
    return profile_problem{"dtype", e.what()};
  }
  if (bytes != p.shape.dtype_bytes)
    return profile_problem{"dtype", "'" + p.dtype + "' has " + to_string(bytes) + " bytes but the layer shape says " +
                                        to_string(p.shape.dtype_bytes)};
  if (p.tile_rows <= 0) return profile_problem{"tile_rows", "must be positive, got " + to_string(p.tile_rows)};
  if (p.gpus.empty()) return profile_problem{"gpus", "is empty (at least one GPU is needed)"};
  for (std::size_t g = 0; g < p.gpus.size(); ++g) {
    const auto& gpu = p.gpus[g];
    const std::string at = "gpus[" + to_string(g) + "].";
    if (gpu.sm_count <= 0) return profile_problem{at + "sm_count", "must be positive, got " + to_string(gpu.sm_count)};
    if (!std::isfinite(gpu.seconds_per_active_expert) || gpu.seconds_per_active_expert < 0)
      return profile_problem{at + "seconds_per_active_expert",
                             "must be finite and non-negative, got " + to_string(gpu.seconds_per_active_expert)};
    if (!std::isfinite(gpu.seconds_per_step) || gpu.seconds_per_step < 0)
      return profile_problem{at + "seconds_per_step", "must be finite and non-negative, got " + to_string(gpu.seconds_per_step)};
    if (gpu.points.empty()) return profile_problem{at + "points", "is empty (at least one point is needed)"};
    for (std::size_t k = 0; k < gpu.points.size(); ++k) {
      const auto& pt = gpu.points[k];
      const std::string pk = at + "points[" + to_string(k) + "].";
      if (!std::isfinite(pt.rows)) return profile_problem{pk + "rows", "must be finite, got " + to_string(pt.rows)};
      if (!(pt.rows > 0)) return profile_problem{pk + "rows", "must be positive, got " + to_string(pt.rows)};
      if (k > 0 && !(pt.rows > gpu.points[k - 1].rows))
        return profile_problem{pk + "rows", "must be greater than the previous point's rows (" +
                                                to_string(gpu.points[k - 1].rows) + "), got " + to_string(pt.rows)};
      if (!std::isfinite(pt.seconds))
        return profile_problem{pk + "seconds", "must be finite, got " + to_string(pt.seconds)};
      if (pt.seconds < 0) return profile_problem{pk + "seconds", "must be non-negative, got " + to_string(pt.seconds)};
      if (k > 0 && pt.seconds < gpu.points[k - 1].seconds)
        return profile_problem{pk + "seconds", "must not be less than the previous point's seconds (" +
                                                   to_string(gpu.points[k - 1].seconds) + "), got " +
                                                   to_string(pt.seconds) + ": latency must not decrease with rows"};
    }
  }
  return std::nullopt;
}

/// 1-based line of byte `pos` of `text`.
inline std::size_t line_at(std::string_view text, std::size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

/// The object key whose value starts at byte `pos` of JSON `text` (the last `"key":` before it), or "".
inline std::string key_before(std::string_view text, std::size_t pos) {
  const auto colon = text.rfind(':', pos);
  if (colon == std::string_view::npos) return "";
  const auto end = text.rfind('"', colon);
  if (end == std::string_view::npos || end == 0) return "";
  const auto begin = text.rfind('"', end - 1);
  if (begin == std::string_view::npos) return "";
  return std::string(text.substr(begin + 1, end - begin - 1));
}

/// Typed access to a JSON object's members, throwing parse_error(file, 0, path, reason).
class profile_reader {
 public:
  explicit profile_reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& reason) const {
    throw parse_error(file_, 0, field, reason);
  }

  static std::string type_of(const profile_json& v) {
    if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
    if (v.is_number_float()) return "a number with a fraction or exponent";
    return std::string("a ") + v.type_name();
  }

  const profile_json& member(const profile_json& obj, const std::string& path, const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path, "missing");
    return *it;
  }
  const profile_json& object(const profile_json& obj, const std::string& path, const char* key) const {
    const auto& v = member(obj, path, key);
    if (!v.is_object()) fail(path, "expected an object, got " + type_of(v));
    return v;
  }
  const profile_json& array(const profile_json& obj, const std::string& path, const char* key) const {
    const auto& v = member(obj, path, key);
    if (!v.is_array()) fail(path, "expected an array, got " + type_of(v));
    return v;
  }
  std::string string(const profile_json& obj, const std::string& path, const char* key) const {
    const auto& v = member(obj, path, key);
    if (!v.is_string()) fail(path, "expected a string, got " + type_of(v));
    return v.get<std::string>();
  }
  std::int64_t integer(const profile_json& v, const std::string& path) const {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) fail(path, "integer " + std::to_string(u) + " is too large");
      return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    fail(path, "expected an integer, got " + type_of(v));
  }
  std::int64_t integer(const profile_json& obj, const std::string& path, const char* key) const {
    return integer(member(obj, path, key), path);
  }
  std::int32_t int32(const profile_json& obj, const std::string& path, const char* key) const {
    const auto i = integer(obj, path, key);
    if (i > INT32_MAX || i < INT32_MIN) fail(path, "integer " + std::to_string(i) + " is out of range");
    return static_cast<std::int32_t>(i);
  }
  double number(const profile_json& obj, const std::string& path, const char* key) const {
    const auto& v = member(obj, path, key);
    if (!v.is_number()) fail(path, "expected a number, got " + type_of(v));
    return v.get<double>();
  }

 private:
  std::string file_;
};

}  // namespace detail

/// Throws parse_error(file, 0, field, reason) naming the first field of `p` that breaks the format's
/// requirements (see the top of this header); `file` names where `p` came from.
inline void validate_profile(const profile& p, const std::string& file = "") {
  if (const auto problem = detail::find_profile_problem(p)) throw parse_error(file, 0, problem->field, problem->reason);
}

/// Parses profile JSON `text`; `file` names it in errors. Throws parse_error naming the file and
/// the field for a syntax error (with its line), a missing field, a wrong type, an unknown format
/// or version, and every broken requirement (non-finite, negative or non-monotone points, ...).
[[nodiscard]] inline profile parse_profile(std::string_view text, const std::string& file = "") {
  using detail::profile_json;
  const detail::profile_reader rd(file);
  profile_json j;
  try {
    j = profile_json::parse(text.begin(), text.end());
  } catch (const profile_json::parse_error& e) {
    throw parse_error(file, detail::line_at(text, e.byte == 0 ? 0 : e.byte - 1), "",
                      std::string("not valid JSON: ") + e.what());
  } catch (const profile_json::exception& e) {
    // A number literal too large for a double (JSON has no NaN or infinity, so this is how a
    // non-finite value arrives): name the member it belongs to and its line.
    const std::string what = e.what();
    const auto open = what.rfind("parsing '");
    const auto close = what.rfind('\'');
    std::size_t pos = std::string_view::npos;
    std::string token;
    if (open != std::string::npos && close > open + 9) {
      token = what.substr(open + 9, close - open - 9);
      pos = text.find(token);
    }
    if (pos == std::string_view::npos) throw parse_error(file, 0, "", std::string("not valid JSON: ") + what);
    throw parse_error(file, detail::line_at(text, pos), detail::key_before(text, pos),
                      "must be finite, got " + token + " (too large for a double)");
  }
  if (!j.is_object()) rd.fail("", "expected a JSON object, got " + detail::profile_reader::type_of(j));
  if (const auto f = rd.string(j, "format", "format"); f != "gem.speed_profile")
    rd.fail("format", "expected \"gem.speed_profile\", got \"" + f + "\"");
  if (const auto v = rd.integer(j, "version", "version"); v != 1)
    rd.fail("version", "version " + std::to_string(v) + " is not supported (this reader knows version 1)");

  profile p;
  const auto& layer = rd.object(j, "layer", "layer");
  p.shape.hidden = rd.integer(layer, "layer.hidden", "hidden");
  p.shape.intermediate = rd.integer(layer, "layer.intermediate", "intermediate");
  if (layer.contains("num_experts")) p.shape.num_experts = rd.int32(layer, "layer.num_experts", "num_experts");
  if (layer.contains("top_k")) p.shape.top_k = rd.int32(layer, "layer.top_k", "top_k");
  p.dtype = rd.string(j, "dtype", "dtype");
  try {
    p.shape.dtype_bytes = dtype_bytes_of(p.dtype);
  } catch (const config_error& e) {
    rd.fail("dtype", e.what());
  }
  p.tile_rows = rd.int32(j, "tile_rows", "tile_rows");
  const auto& measured = rd.object(j, "measured", "measured");
  p.measured_at = rd.string(measured, "measured.at", "at");
  p.method = rd.string(measured, "measured.method", "method");
  const auto& gpus = rd.array(j, "gpus", "gpus");
  for (std::size_t g = 0; g < gpus.size(); ++g) {
    const std::string at = "gpus[" + std::to_string(g) + "]";
    if (!gpus[g].is_object()) rd.fail(at, "expected an object, got " + detail::profile_reader::type_of(gpus[g]));
    const auto& jg = gpus[g];
    profile_gpu gpu;
    gpu.device = rd.string(jg, at + ".device", "device");
    gpu.uuid = rd.string(jg, at + ".uuid", "uuid");
    gpu.sm_count = rd.int32(jg, at + ".sm_count", "sm_count");
    gpu.seconds_per_active_expert = rd.number(jg, at + ".seconds_per_active_expert", "seconds_per_active_expert");
    if (jg.contains("seconds_per_step"))
      gpu.seconds_per_step = rd.number(jg, at + ".seconds_per_step", "seconds_per_step");
    const auto& points = rd.array(jg, at + ".points", "points");
    for (std::size_t k = 0; k < points.size(); ++k) {
      const std::string pk = at + ".points[" + std::to_string(k) + "]";
      if (!points[k].is_object()) rd.fail(pk, "expected an object, got " + detail::profile_reader::type_of(points[k]));
      gpu.points.push_back({.rows = rd.number(points[k], pk + ".rows", "rows"),
                            .seconds = rd.number(points[k], pk + ".seconds", "seconds")});
    }
    p.gpus.push_back(std::move(gpu));
  }
  validate_profile(p, file);
  return p;
}

/// Reads and parses the profile file at `path` (see parse_profile). Throws io_error when it cannot
/// be read.
[[nodiscard]] inline profile read_profile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error("cannot open speed profile " + path.string());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw io_error("cannot read speed profile " + path.string());
  return parse_profile(text, path.string());
}

/// Throws parse_error(file, 0, "layer.<field>" or "dtype", ...) when `p` was measured for a layer
/// shape other than `expected` (hidden, intermediate, dtype bytes; num_experts and top_k only where
/// both give them): its latencies would not predict this layer.
inline void check_profile_shape(const profile& p, const layer_shape& expected, const std::string& file = "") {
  const auto mismatch = [&](const char* field, std::int64_t have, std::int64_t want) {
    throw parse_error(file, 0, field,
                      "the profile was measured for " + std::to_string(have) + " but the layer has " +
                          std::to_string(want) + " (shape mismatch: its latencies do not apply)");
  };
  if (p.shape.hidden != expected.hidden) mismatch("layer.hidden", p.shape.hidden, expected.hidden);
  if (p.shape.intermediate != expected.intermediate)
    mismatch("layer.intermediate", p.shape.intermediate, expected.intermediate);
  if (p.shape.dtype_bytes != expected.dtype_bytes) mismatch("dtype", p.shape.dtype_bytes, expected.dtype_bytes);
  if (p.shape.num_experts != 0 && expected.num_experts != 0 && p.shape.num_experts != expected.num_experts)
    mismatch("layer.num_experts", p.shape.num_experts, expected.num_experts);
  if (p.shape.top_k != 0 && expected.top_k != 0 && p.shape.top_k != expected.top_k)
    mismatch("layer.top_k", p.shape.top_k, expected.top_k);
}

/// Reads the profile at `path` and checks it against `expected` (see check_profile_shape).
[[nodiscard]] inline profile read_profile(const std::filesystem::path& path, const layer_shape& expected) {
  auto p = read_profile(path);
  check_profile_shape(p, expected, path.string());
  return p;
}

/// The JSON text of `p` (2-space indented, fields in the documented order, a final newline).
/// Reading it back gives a profile equal to `p`: numbers are written in the shortest form that
/// reads back to the same double. Throws config_error when `p` breaks a requirement.
[[nodiscard]] inline std::string format_profile(const profile& p) {
  if (const auto problem = detail::find_profile_problem(p))
    throw config_error("cannot write speed profile: field '" + problem->field + "': " + problem->reason);
  using detail::profile_json;
  profile_json layer = profile_json::object();
  layer["hidden"] = p.shape.hidden;
  layer["intermediate"] = p.shape.intermediate;
  layer["num_experts"] = p.shape.num_experts;
  layer["top_k"] = p.shape.top_k;
  profile_json gpus = profile_json::array();
  for (const auto& g : p.gpus) {
    profile_json points = profile_json::array();
    for (const auto& pt : g.points) points.push_back(profile_json{{"rows", pt.rows}, {"seconds", pt.seconds}});
    profile_json jg{{"device", g.device},
                    {"uuid", g.uuid},
                    {"sm_count", g.sm_count},
                    {"seconds_per_active_expert", g.seconds_per_active_expert}};
    if (g.seconds_per_step != 0) jg["seconds_per_step"] = g.seconds_per_step;
    jg["points"] = std::move(points);
    gpus.push_back(std::move(jg));
  }
  profile_json j = profile_json::object();
  j["format"] = "gem.speed_profile";
  j["version"] = 1;
  j["layer"] = std::move(layer);
  j["dtype"] = p.dtype;
  j["tile_rows"] = p.tile_rows;
  j["measured"] = profile_json{{"at", p.measured_at}, {"method", p.method}};
  j["gpus"] = std::move(gpus);
  return j.dump(2) + "\n";
}

/// Writes `p` to `path` (see format_profile). Throws config_error for an invalid profile and
/// io_error when the file cannot be written.
inline void write_profile(const profile& p, const std::filesystem::path& path) {
  const std::string text = format_profile(p);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw io_error("cannot open speed profile " + path.string() + " for writing");
  out << text;
  out.flush();
  if (!out) throw io_error("cannot write speed profile " + path.string());
}

/// The `table` model of `p`: GPU g of the table is p.gpus[g]. Throws config_error when `p` breaks a
/// requirement.
[[nodiscard]] inline table to_table(const profile& p, table_interpolation mode = table_interpolation::linear) {
  if (const auto problem = detail::find_profile_problem(p))
    throw config_error("speed profile: field '" + problem->field + "': " + problem->reason);
  std::vector<table_gpu> gpus;
  gpus.reserve(p.gpus.size());
  for (const auto& g : p.gpus) {
    table_gpu t{.rows = {}, .seconds = {}, .seconds_per_active_expert = g.seconds_per_active_expert,
                .seconds_per_step = g.seconds_per_step};
    for (const auto& pt : g.points) {
      t.rows.push_back(pt.rows);
      t.seconds.push_back(pt.seconds);
    }
    gpus.push_back(std::move(t));
  }
  return table(std::move(gpus), mode);
}

/// The `table` model of `p` for `num_gpus` GPUs: a one-GPU profile is used for every GPU (one
/// measured device standing for identical ones; combine with `scale` for variability), otherwise
/// the profile must hold exactly num_gpus GPUs. Throws config_error otherwise.
[[nodiscard]] inline table to_table(const profile& p, std::int32_t num_gpus,
                                    table_interpolation mode = table_interpolation::linear) {
  if (num_gpus < 1) throw config_error("to_table: num_gpus must be positive, got " + std::to_string(num_gpus));
  if (p.gpus.size() == static_cast<std::size_t>(num_gpus)) return to_table(p, mode);
  if (p.gpus.size() != 1)
    throw config_error("to_table: the profile holds " + std::to_string(p.gpus.size()) + " GPUs, not 1 or " +
                       std::to_string(num_gpus));
  profile copy = p;
  copy.gpus.assign(static_cast<std::size_t>(num_gpus), p.gpus.front());
  return to_table(copy, mode);
}

}  // namespace gem
