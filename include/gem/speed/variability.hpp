// gem/speed/variability.hpp — per-GPU speed factors for the named variability setups (homogeneous,
// low, high, degraded, sampled from measured GPU fleets), a reader for the measured per-run CSVs,
// and lookup by name for the command. Feed the factors to `scale` (gem/speed/scaled.hpp).
// Depends on gem/error.hpp, gem/ids.hpp and the standard library.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gem/error.hpp"
#include "gem/ids.hpp"

/// Every factor here is a TIME MULTIPLIER (a slowdown): GPU g takes factors[g] times the nominal
/// time; 1.277 means 27.7% slower, 0.97 means 3% faster. The same seed gives the same factors on
/// every platform (std::mt19937_64 and gem's own integer mapping; no std distributions).
namespace gem::variability {

/// The slowdown of the one slow GPU in `high`: the spread the GEM paper reports.
inline constexpr double high_slowdown = 1.277;
/// The slowdown of the one slow GPU in `degraded`: a few A100s of Lonestar6 run 2.2x slower than
/// the median (../shared/gpu-variability, ls6 ResNet-50).
inline constexpr double degraded_slowdown = 2.2;
/// Half-width of the `low` setup: factors within 1 +- 0.03.
inline constexpr double low_half_width = 0.03;

namespace detail {

inline void require_gpus(std::int32_t num_gpus, const char* setup) {
  if (num_gpus < 1)
    throw config_error(std::string("variability setup '") + setup + "': num_gpus must be positive, got " +
                       std::to_string(num_gpus));
}

/// Uniform integer in [0, n) from a 64-bit generator, without modulo bias, identical on every
/// standard library (std::uniform_int_distribution is not).
inline std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n: reject the incomplete low block
  for (;;) {
    const std::uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

inline std::vector<double> one_slow(std::int32_t num_gpus, gpu_id slow, double slowdown, const char* setup) {
  require_gpus(num_gpus, setup);
  if (slow.value < 0 || slow.value >= num_gpus)
    throw config_error(std::string("variability setup '") + setup + "': slow GPU " + std::to_string(slow.value) +
                       " is outside [0, " + std::to_string(num_gpus) + ")");
  std::vector<double> f(static_cast<std::size_t>(num_gpus), 1.0);
  f[static_cast<std::size_t>(slow.value)] = slowdown;
  return f;
}

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Splits one CSV line at commas outside double quotes ("" inside quotes is a quote).
inline std::vector<std::string> split_csv(std::string_view line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t k = 0; k < line.size(); ++k) {
    const char c = line[k];
    if (quoted) {
      if (c == '"' && k + 1 < line.size() && line[k + 1] == '"') {
        out.back() += '"';
        ++k;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

}  // namespace detail

/// All GPUs nominal: every factor 1.
[[nodiscard]] inline std::vector<double> homogeneous(std::int32_t num_gpus) {
  detail::require_gpus(num_gpus, "homogeneous");
  return std::vector<double>(static_cast<std::size_t>(num_gpus), 1.0);
}

/// Low variability: factors evenly spaced over [0.97, 1.03] (mean 1; a single GPU gets 1), assigned
/// to GPUs in a fixed shuffled order so that fast and slow GPUs are not contiguous (a contiguous
/// ramp would favour node-aligned layouts by accident). Deterministic: no seed.
[[nodiscard]] inline std::vector<double> low(std::int32_t num_gpus) {
  detail::require_gpus(num_gpus, "low");
  const auto n = static_cast<std::size_t>(num_gpus);
  std::vector<double> f(n, 1.0);
  if (n == 1) return f;
  for (std::size_t k = 0; k < n; ++k)
    f[k] = 1.0 - low_half_width + 2.0 * low_half_width * static_cast<double>(k) / static_cast<double>(n - 1);
  std::mt19937_64 rng(0x6c6f77u);  // fixed: "low"
  for (std::size_t k = n - 1; k > 0; --k) std::swap(f[k], f[detail::uniform_index(rng, k + 1)]);
  return f;
}

/// High variability: GPU `slow` is 27.7% slower (factor 1.277), the others nominal.
[[nodiscard]] inline std::vector<double> high(std::int32_t num_gpus, gpu_id slow = gpu_id{0}) {
  return detail::one_slow(num_gpus, slow, high_slowdown, "high");
}

/// A degraded GPU: GPU `slow` is 2.2x slower (factor 2.2), the others nominal.
[[nodiscard]] inline std::vector<double> degraded(std::int32_t num_gpus, gpu_id slow = gpu_id{0}) {
  return detail::one_slow(num_gpus, slow, degraded_slowdown, "degraded");
}

/// A measured fleet: per GPU, the median of a time-like metric over its repeated runs, divided by
/// the median over GPUs (so the median GPU is 1 and 1.2 is 20% slower). Sorted ascending.
struct measured_fleet {
  std::string source;           ///< the file it was read from
  std::vector<double> factors;  ///< one per GPU, ascending
};

/// Reads a per-run CSV of ../shared/gpu-variability (e.g. aggregated_data/sim/sgemm-longhorn-agg.csv):
/// groups rows by `id_column`, takes each GPU's median of `metric_column` (time-like: lower is
/// faster), and normalises by the median GPU. Throws io_error when the file cannot be read and
/// parse_error (file, line, field) for a missing column, an empty id, or a metric that is not a
/// finite positive number.
[[nodiscard]] inline measured_fleet read_measured_fleet(const std::filesystem::path& csv,
                                                        std::string_view id_column = "uuid",
                                                        std::string_view metric_column = "perf") {
  const std::string file = csv.string();
  std::ifstream in(csv);
  if (!in) throw io_error("cannot open GPU variability file " + file);
  std::string line;
  if (!std::getline(in, line)) throw parse_error(file, 1, "", "empty file, expected a CSV header");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto header = detail::split_csv(line);
  const auto column = [&](std::string_view name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw parse_error(file, 1, std::string(name), "column not found in the header");
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t id_col = column(id_column);
  const std::size_t metric_col = column(metric_column);
  std::map<std::string, std::vector<double>> runs;
  std::size_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto cells = detail::split_csv(line);
    if (cells.size() != header.size())
      throw parse_error(file, line_no, "", "expected " + std::to_string(header.size()) + " cells, got " +
                                               std::to_string(cells.size()));
    const std::string& id = cells[id_col];
    if (id.empty()) throw parse_error(file, line_no, std::string(id_column), "empty GPU id");
    const std::string& text = cells[metric_col];
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) || !(value > 0))
      throw parse_error(file, line_no, std::string(metric_column),
                        "'" + text + "' is not a finite positive number");
    runs[id].push_back(value);
  }
  if (runs.empty()) throw parse_error(file, line_no, "", "no data rows");
  measured_fleet fleet{.source = file, .factors = {}};
  fleet.factors.reserve(runs.size());
  for (auto& [id, v] : runs) fleet.factors.push_back(detail::median_of(std::move(v)));
  const double mid = detail::median_of(fleet.factors);
  for (double& f : fleet.factors) f /= mid;
  std::sort(fleet.factors.begin(), fleet.factors.end());
  return fleet;
}

/// How `sampled` draws its factors. Either way each GPU's factor is, on its own, a uniformly random
/// GPU of the measured fleet; they differ in how the draws relate to each other.
enum class sampling {
  /// The draws are spread evenly over the fleet's sorted factors (draw k falls in the k-th of
  /// num_gpus equal-probability strata, at a random place within it) and then shuffled over GPUs.
  /// With num_gpus >= fleet size every measured GPU appears num_gpus / fleet size times (+-1), so the
  /// drawn spread (p5-p95, max/min) equals the fleet's for every seed; with few GPUs the set is
  /// representative (never two GPUs from the same 1/num_gpus quantile band). The default: results
  /// vary less from seed to seed, so fewer seeds give a stable mean.
  stratified,
  /// Independent draws with replacement: clusters vary as much as random picks from the fleet
  /// would (two slow GPUs in one small cluster can happen). Over 10k draws the p5-p95 ratio of the
  /// ResNet fleets strays from the fleet's by more than 1 percentage point for about 1 seed in 8.
  independent,
};

/// `num_gpus` factors drawn from the measured per-GPU factors of `fleet` (see `sampling`). Same
/// seed and mode, same factors on every platform. Throws config_error when num_gpus < 1 or the
/// fleet is empty.
[[nodiscard]] inline std::vector<double> sampled(std::int32_t num_gpus, const measured_fleet& fleet,
                                                 std::uint64_t seed, sampling mode = sampling::stratified) {
  detail::require_gpus(num_gpus, "sampled");
  if (fleet.factors.empty()) throw config_error("variability setup 'sampled': the measured fleet is empty");
  std::mt19937_64 rng(seed);
  const auto n = static_cast<std::size_t>(num_gpus);
  const std::size_t m = fleet.factors.size();
  std::vector<double> f(n);
  if (mode == sampling::independent) {
    for (double& x : f) x = fleet.factors[detail::uniform_index(rng, m)];
    return f;
  }
  for (std::size_t k = 0; k < n; ++k) {
    const double u = (static_cast<double>(k) + static_cast<double>(rng() >> 11) * 0x1.0p-53) / static_cast<double>(n);
    f[k] = fleet.factors[std::min(m - 1, static_cast<std::size_t>(u * static_cast<double>(m)))];
  }
  for (std::size_t k = n - 1; k > 0; --k) std::swap(f[k], f[detail::uniform_index(rng, k + 1)]);
  return f;
}

/// A measured workload class of ../shared/gpu-variability/pal-tacc-longhorn-frontera-ls6.
struct workload {
  std::string_view name;         ///< what the command accepts, e.g. "longhorn-sgemm"
  std::string_view file;         ///< path inside the data set folder
  std::string_view description;  ///< cluster, GPU, workload
};

/// The workload classes of the PAL data set (SOURCE.md there describes them). "longhorn-sgemm"
/// (compute-bound cuBLAS SGEMM on 392 V100s) is the closest to expert GEMMs and the default.
[[nodiscard]] inline std::span<const workload> workloads() noexcept {
  static constexpr std::array<workload, 8> all{{
      {"longhorn-sgemm", "aggregated_data/sim/sgemm-longhorn-agg.csv", "Longhorn V100, cuBLAS SGEMM 25536^3"},
      {"longhorn-resnet", "aggregated_data/sim/resnet-longhorn-agg.csv", "Longhorn V100, ResNet-50 training"},
      {"longhorn-bert", "aggregated_data/sim/bert-longhorn-agg.csv", "Longhorn V100, BERT training"},
      {"longhorn-pagerank", "aggregated_data/sim/pagerank-longhorn-agg.csv", "Longhorn V100, PageRank SpMV"},
      {"frontera-bert", "aggregated_data/frontera/frontera-bert-agg.csv", "Frontera RTX 5000, BERT training"},
      {"frontera-resnet", "aggregated_data/frontera/frontera-resnet-agg.csv", "Frontera RTX 5000, ResNet-50 training"},
      {"frontera-pagerank", "aggregated_data/frontera/frontera-pagerank-agg.csv", "Frontera RTX 5000, PageRank SpMV"},
      {"ls6-resnet", "aggregated_data/ls6/resnet-ls6-agg.csv", "Lonestar6 A100, ResNet-50 training"},
  }};
  return all;
}

/// The workload called `name`; throws config_error listing the known names.
[[nodiscard]] inline const workload& workload_by_name(std::string_view name) {
  std::string known;
  for (const auto& w : workloads()) {
    if (w.name == name) return w;
    known += (known.empty() ? "" : ", ") + std::string(w.name);
  }
  throw config_error("unknown GPU variability workload '" + std::string(name) + "' (known: " + known + ")");
}

/// Reads workload `name` from the data set folder `dataset_dir` (the folder holding SOURCE.md,
/// e.g. ../shared/gpu-variability/pal-tacc-longhorn-frontera-ls6).
[[nodiscard]] inline measured_fleet read_workload(const std::filesystem::path& dataset_dir, std::string_view name) {
  return read_measured_fleet(dataset_dir / workload_by_name(name).file);
}

/// What `setup` needs besides the name.
struct setup_options {
  std::int32_t num_gpus = 0;
  std::uint64_t seed = 0;                  ///< for "sampled"
  gpu_id slow_gpu{0};                      ///< the slow GPU of "high" and "degraded"
  std::filesystem::path dataset_dir{};     ///< for "sampled": the PAL data set folder
  std::string workload = "longhorn-sgemm"; ///< for "sampled" without ":<workload>"
  sampling mode = sampling::stratified;    ///< for "sampled"
};

/// The setup names `setup` accepts ("sampled" also as "sampled:<workload>").
[[nodiscard]] inline std::span<const std::string_view> setup_names() noexcept {
  static constexpr std::array<std::string_view, 5> names{"homogeneous", "low", "high", "degraded", "sampled"};
  return names;
}

/// Factors of the setup called `name`: "homogeneous", "low", "high", "degraded", "sampled" (draws
/// from `options.workload`) or "sampled:<workload>". Throws config_error for an unknown setup or
/// workload name (listing the known ones) and whatever reading the measured data throws.
[[nodiscard]] inline std::vector<double> setup(std::string_view name, const setup_options& options) {
  if (name == "homogeneous") return homogeneous(options.num_gpus);
  if (name == "low") return low(options.num_gpus);
  if (name == "high") return high(options.num_gpus, options.slow_gpu);
  if (name == "degraded") return degraded(options.num_gpus, options.slow_gpu);
  if (name == "sampled" || name.starts_with("sampled:")) {
    detail::require_gpus(options.num_gpus, "sampled");
    const std::string_view wl = name == "sampled" ? std::string_view(options.workload) : name.substr(8);
    (void)workload_by_name(wl);  // unknown names fail before any file is touched
    if (options.dataset_dir.empty())
      throw config_error("variability setup 'sampled' needs setup_options.dataset_dir (the folder of the "
                         "measured GPU data, e.g. ../shared/gpu-variability/pal-tacc-longhorn-frontera-ls6)");
    return sampled(options.num_gpus, read_workload(options.dataset_dir, wl), options.seed, options.mode);
  }
  std::string known;
  for (auto n : setup_names()) known += (known.empty() ? "" : ", ") + std::string(n);
  throw config_error("unknown variability setup '" + std::string(name) + "' (known: " + known +
                     ", sampled:<workload>)");
}

}  // namespace gem::variability
