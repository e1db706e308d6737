// Tests of the variability setups: the named ones, the reader of the measured per-run CSVs (checked
// against the data set's own summary_by_workload.csv), and `sampled` reproducing the measured spread.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "gem/speed/variability.hpp"
#include "shared_data.hpp"

namespace var = gem::variability;
using gem::gpu_id;

namespace {

const char* const dataset = "gpu-variability/pal-tacc-longhorn-frontera-ls6";

// Nearest-rank quantile of sorted values (index round(p * (n - 1))), the definition the data set's
// summary uses.
double quantile(const std::vector<double>& sorted, double p) {
  const auto n = sorted.size();
  const auto k = static_cast<std::size_t>(std::llround(p * static_cast<double>(n - 1)));
  return sorted[std::min(k, n - 1)];
}

struct spread {
  double p95_over_p5, max_over_min, min_over_median, max_over_median;
  std::size_t n;
};

// summary_by_workload.csv rows keyed by their `file` column (a small CSV reader of its own: the
// workload column holds quoted commas).
std::map<std::string, spread> read_summary(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  std::vector<std::string> header;
  std::map<std::string, spread> out;
  while (std::getline(in, line)) {
    std::vector<std::string> cells(1);
    bool q = false;
    for (char c : line) {
      if (c == '"') q = !q;
      else if (c == ',' && !q) cells.emplace_back();
      else cells.back() += c;
    }
    if (header.empty()) {
      header = cells;
      continue;
    }
    auto col = [&](const char* name) {
      return cells[static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin())];
    };
    out[col("file")] = spread{.p95_over_p5 = std::stod(col("p95_over_p5")),
                              .max_over_min = std::stod(col("max_over_min")),
                              .min_over_median = std::stod(col("min_over_median")),
                              .max_over_median = std::stod(col("max_over_median")),
                              .n = std::stoul(col("n_gpus"))};
  }
  return out;
}

std::filesystem::path temp_file(const std::string& name, const std::string& text) {
  // Unique per process: other build trees may run this test at the same time.
  static const auto stamp = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  const auto p = std::filesystem::temp_directory_path() / ("gem_speed_variability_" + stamp + "_" + name);
  std::ofstream(p) << text;
  return p;
}

}  // namespace

TEST_CASE("homogeneous, high and degraded setups hold the documented time multipliers") {
  CHECK(var::homogeneous(4) == std::vector<double>{1, 1, 1, 1});
  CHECK(var::high(4) == std::vector<double>{1.277, 1, 1, 1});
  CHECK(var::high(4, gpu_id{3}) == std::vector<double>{1, 1, 1, 1.277});
  CHECK(var::degraded(3, gpu_id{1}) == std::vector<double>{1, 2.2, 1});
  CHECK(var::high(1) == std::vector<double>{1.277});
  CHECK_THROWS_WITH_AS((void)var::high(4, gpu_id{4}), doctest::Contains("slow GPU 4"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)var::degraded(2, gpu_id{-1}), doctest::Contains("slow GPU -1"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)var::homogeneous(0), doctest::Contains("num_gpus"), gem::config_error);
}

TEST_CASE("the low setup spreads factors evenly over 1 +- 3%, deterministically and not in GPU order") {
  CHECK(var::low(1) == std::vector<double>{1.0});
  for (int n : {2, 3, 8, 32, 64}) {
    const auto f = var::low(n);
    REQUIRE(f.size() == static_cast<std::size_t>(n));
    CHECK(f == var::low(n));
    auto s = f;
    std::sort(s.begin(), s.end());
    CHECK(s.front() == doctest::Approx(0.97).epsilon(1e-15));
    CHECK(s.back() == doctest::Approx(1.03).epsilon(1e-15));
    for (std::size_t k = 0; k < s.size(); ++k)
      CHECK(s[k] == doctest::Approx(0.97 + 0.06 * static_cast<double>(k) / (n - 1)).epsilon(1e-14));
    CHECK(std::accumulate(f.begin(), f.end(), 0.0) / n == doctest::Approx(1.0).epsilon(1e-14));
    if (n >= 8) CHECK_FALSE(std::is_sorted(f.begin(), f.end()));
  }
}

TEST_CASE("measured fleets read from the per-run CSVs match the data set's own summary") {
  const auto root = gem::test::shared_path(dataset);
  if (root.empty()) return;
  const auto summary = read_summary(root / "summary_by_workload.csv");
  REQUIRE(summary.size() == var::workloads().size());
  for (const auto& w : var::workloads()) {
    CAPTURE(w.name);
    const auto fleet = var::read_workload(root, w.name);
    const auto& want = summary.at(std::string(w.file));
    CHECK(fleet.factors.size() == want.n);
    CHECK(std::is_sorted(fleet.factors.begin(), fleet.factors.end()));
    // The summary rounds to 4 decimals.
    CHECK(std::abs(fleet.factors.front() - want.min_over_median) < 1e-4);
    CHECK(std::abs(fleet.factors.back() - want.max_over_median) < 1e-4);
    CHECK(std::abs(fleet.factors.back() / fleet.factors.front() - want.max_over_min) < 1e-4);
    CHECK(std::abs(quantile(fleet.factors, 0.95) / quantile(fleet.factors, 0.05) - want.p95_over_p5) < 1e-4);
    CHECK(std::abs(quantile(fleet.factors, 0.5) - 1.0) < 1e-2);
  }
}

TEST_CASE("sampled factors reproduce the measured spread of every workload over 10k draws") {
  const auto root = gem::test::shared_path(dataset);
  if (root.empty()) return;
  const auto summary = read_summary(root / "summary_by_workload.csv");
  for (const auto& w : var::workloads()) {
    CAPTURE(w.name);
    const auto fleet = var::read_workload(root, w.name);
    const auto& want = summary.at(std::string(w.file));
    for (std::uint64_t seed : {2026u, 1u, 2u, 3u}) {
      auto f = var::sampled(10000, fleet, seed);
      std::sort(f.begin(), f.end());
      const double p95_p5 = quantile(f, 0.95) / quantile(f, 0.05);
      const double max_min = f.back() / f.front();
      if (seed == 2026)
        MESSAGE(w.name << ": p95/p5 " << p95_p5 << " (measured " << want.p95_over_p5 << "), max/min " << max_min
                       << " (measured " << want.max_over_min << ")");
      INFO("seed " << seed << ": p95/p5 " << p95_p5 << ", max/min " << max_min);
      CHECK(std::abs(p95_p5 - want.p95_over_p5) <= 0.01);  // within 1 percentage point
      CHECK(std::abs(max_min - want.max_over_min) <= 0.01);
      for (double x : f) CHECK(std::binary_search(fleet.factors.begin(), fleet.factors.end(), x));
    }
  }
}

TEST_CASE("stratified draws take every fleet GPU equally often and small clusters one per quantile band") {
  var::measured_fleet fleet{.source = "hand", .factors = {}};
  for (int k = 0; k < 100; ++k) fleet.factors.push_back(0.9 + k * 0.003);
  const auto many = var::sampled(1000, fleet, 4);
  for (double v : fleet.factors) CHECK(std::count(many.begin(), many.end(), v) == 10);
  CHECK_FALSE(std::is_sorted(many.begin(), many.end()));
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    auto few = var::sampled(4, fleet, seed);
    std::sort(few.begin(), few.end());
    for (std::size_t k = 0; k < 4; ++k) {  // band k holds fleet GPUs 25k .. 25k+24
      CHECK(few[k] >= fleet.factors[25 * k]);
      CHECK(few[k] <= fleet.factors[25 * k + 24]);
    }
  }
}

TEST_CASE("sampled factors depend only on the seed and the mode") {
  const var::measured_fleet fleet{.source = "hand", .factors = {0.9, 1.0, 1.1, 1.5}};
  for (auto mode : {var::sampling::stratified, var::sampling::independent}) {
    const auto a = var::sampled(64, fleet, 1, mode);
    CHECK(a == var::sampled(64, fleet, 1, mode));
    CHECK(a != var::sampled(64, fleet, 2, mode));
    // Every fleet GPU is drawn about equally often.
    const auto many = var::sampled(40000, fleet, 5, mode);
    for (double v : fleet.factors) {
      const auto c = std::count(many.begin(), many.end(), v);
      CHECK(c > 9500);
      CHECK(c < 10500);
    }
  }
  CHECK(var::sampled(64, fleet, 1, var::sampling::independent) != var::sampled(64, fleet, 1));
  // Independent draws do put several GPUs of one quantile band into a small cluster.
  bool repeated = false;
  for (std::uint64_t seed = 0; seed < 20 && !repeated; ++seed) {
    auto few = var::sampled(4, fleet, seed, var::sampling::independent);
    std::sort(few.begin(), few.end());
    repeated = std::adjacent_find(few.begin(), few.end()) != few.end();
  }
  CHECK(repeated);
  CHECK_THROWS_WITH_AS((void)var::sampled(4, var::measured_fleet{}, 1), doctest::Contains("empty"), gem::config_error);
}

TEST_CASE("the measured-fleet reader takes per-GPU medians over runs and rejects malformed rows") {
  const auto good = temp_file("good.csv",
                              "id,uuid,perf\n0,a,10\n1,a,30\n2,a,20\n3,b,40\n4,b,44\n5,\"c\",12\n6,d,100\n");
  // Medians: a 20, b 42, c 12, d 100; median GPU (20 + 42) / 2 = 31.
  const auto fleet = var::read_measured_fleet(good);
  CHECK(fleet.factors == std::vector<double>{12.0 / 31, 20.0 / 31, 42.0 / 31, 100.0 / 31});
  CHECK(fleet.source == good.string());

  const auto no_col = temp_file("nocol.csv", "id,gpu,perf\n0,a,1\n");
  CHECK_THROWS_WITH_AS((void)var::read_measured_fleet(no_col), doctest::Contains("field 'uuid'"), gem::parse_error);
  const auto bad = temp_file("bad.csv", "uuid,perf\na,1\nb,fast\n");
  CHECK_THROWS_WITH_AS((void)var::read_measured_fleet(bad), doctest::Contains("bad.csv:3: field 'perf'"), gem::parse_error);
  const auto neg = temp_file("neg.csv", "uuid,perf\na,-1\n");
  CHECK_THROWS_WITH_AS((void)var::read_measured_fleet(neg), doctest::Contains(":2: field 'perf'"), gem::parse_error);
  const auto ragged = temp_file("ragged.csv", "uuid,perf\na,1,2\n");
  CHECK_THROWS_WITH_AS((void)var::read_measured_fleet(ragged), doctest::Contains("expected 2 cells"), gem::parse_error);
  const auto empty = temp_file("empty.csv", "uuid,perf\n");
  CHECK_THROWS_WITH_AS((void)var::read_measured_fleet(empty), doctest::Contains("no data rows"), gem::parse_error);
  CHECK_THROWS_AS((void)var::read_measured_fleet("/nonexistent/gem.csv"), gem::io_error);
  for (const auto& p : {good, no_col, bad, neg, ragged, empty}) std::filesystem::remove(p);
}

TEST_CASE("setups are found by name, and unknown names are rejected listing the known ones") {
  const var::setup_options o{.num_gpus = 4, .slow_gpu = gpu_id{2}};
  CHECK(var::setup("homogeneous", o) == var::homogeneous(4));
  CHECK(var::setup("low", o) == var::low(4));
  CHECK(var::setup("high", o) == var::high(4, gpu_id{2}));
  CHECK(var::setup("degraded", o) == var::degraded(4, gpu_id{2}));
  CHECK_THROWS_WITH_AS((void)var::setup("medium", o), doctest::Contains("known: homogeneous, low, high, degraded, sampled"),
                       gem::config_error);
  CHECK_THROWS_WITH_AS((void)var::setup("sampled", o), doctest::Contains("dataset_dir"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)var::setup("sampled:summit", o), doctest::Contains("unknown GPU variability workload 'summit'"),
                       gem::config_error);
  const auto root = gem::test::shared_path(dataset);
  if (root.empty()) return;
  const var::setup_options s{.num_gpus = 16, .seed = 9, .dataset_dir = root, .workload = "ls6-resnet"};
  CHECK(var::setup("sampled", s) == var::sampled(16, var::read_workload(root, "ls6-resnet"), 9));
  CHECK(var::setup("sampled:longhorn-sgemm", s) == var::sampled(16, var::read_workload(root, "longhorn-sgemm"), 9));
  auto si = s;
  si.mode = var::sampling::independent;
  CHECK(var::setup("sampled", si) ==
        var::sampled(16, var::read_workload(root, "ls6-resnet"), 9, var::sampling::independent));
}
