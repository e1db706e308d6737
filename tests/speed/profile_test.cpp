// Tests of speed profile files: exact round trip, every malformed case rejected with a message that
// names the file and the field, the shape check, and conversion to the `table` model.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gem/speed/profile.hpp"

using gem::gpu_id;
using gem::profile;
using json = nlohmann::ordered_json;

namespace {

profile sample_profile() {
  profile p;
  p.shape = gem::shapes::mixtral_8x7b;
  p.dtype = "bf16";
  p.tile_rows = 128;
  p.measured_at = "2026-11-29T01:00:00Z";
  p.method = "gem profile 0.1.0, cuBLAS grouped GEMM, 10 warm-up + 50 timed launches, median, clocks unlocked";
  p.gpus.push_back({.device = "NVIDIA H200",
                    .uuid = "GPU-8b39353e-133c-96d0-7b5f-4195d9c60bae",
                    .sm_count = 132,
                    .seconds_per_active_expert = 8.2e-5,
                    .points = {{1, 1.1e-6}, {128, 3.3e-6}, {256, 6.1e-6}}});
  p.gpus.push_back({.device = "NVIDIA H200 (24-SM partition)",
                    .uuid = "",
                    .sm_count = 24,
                    .seconds_per_active_expert = 9.9e-5,
                    .points = {{1, 2.5e-6}, {128, 9.75e-6}, {256, 19.5e-6}}});
  return p;
}

profile random_profile(std::mt19937_64& rng) {
  auto p = sample_profile();
  std::uniform_real_distribution<double> u(0.0, 1.0);
  p.gpus.resize(1 + rng() % 4, p.gpus[0]);
  for (auto& g : p.gpus) {
    g.points.clear();
    double r = 0, s = 0;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) {
      r += 1 + std::floor(u(rng) * 300) + (k % 3 == 0 ? u(rng) : 0.0);  // fractional rows too
      s += u(rng) * 1e-5 / 3.0;                                          // digits that need 17 places
      g.points.push_back({r, s});
    }
    g.seconds_per_active_expert = u(rng) * 1e-4;
    g.seconds_per_step = rng() % 2 ? u(rng) * 1e-4 : 0.0;  // optional in the file: absent when 0
    g.sm_count = 1 + static_cast<std::int32_t>(rng() % 200);
  }
  return p;
}

// A temporary file name unique per process (other build trees may run these tests concurrently).
std::filesystem::path temp_path(const std::string& name) {
  static const auto stamp = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  return std::filesystem::temp_directory_path() / ("gem_speed_" + stamp + "_" + name);
}

json sample_json() { return json::parse(gem::format_profile(sample_profile())); }

// Parses `j` as file "prof.json" and returns the error message (empty when it parses).
std::string error_of(const json& j) {
  try {
    (void)gem::parse_profile(j.dump(), "prof.json");
  } catch (const gem::parse_error& e) {
    CHECK(e.file() == "prof.json");
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a profile written and read back is identical, to the byte") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 100; ++trial) {
    const auto p = random_profile(rng);
    const auto text = gem::format_profile(p);
    const auto back = gem::parse_profile(text, "mem");
    CHECK(back == p);
    CHECK(gem::format_profile(back) == text);
  }
  const auto path = temp_path("profile_roundtrip.json");
  gem::write_profile(sample_profile(), path);
  CHECK(gem::read_profile(path) == sample_profile());
  CHECK(gem::read_profile(path, gem::shapes::mixtral_8x7b) == sample_profile());
  std::filesystem::remove(path);
}

TEST_CASE("the profile file holds the documented fields") {
  const auto j = sample_json();
  CHECK(j["format"] == "gem.speed_profile");
  CHECK(j["version"] == 1);
  CHECK(j["layer"]["hidden"] == 4096);
  CHECK(j["layer"]["intermediate"] == 14336);
  CHECK(j["layer"]["num_experts"] == 8);
  CHECK(j["layer"]["top_k"] == 2);
  CHECK(j["dtype"] == "bf16");
  CHECK(j["tile_rows"] == 128);
  CHECK(j["measured"]["at"] == "2026-11-29T01:00:00Z");
  CHECK(j["gpus"][0]["device"] == "NVIDIA H200");
  CHECK(j["gpus"][0]["sm_count"] == 132);
  CHECK(j["gpus"][1]["points"][2]["rows"] == 256.0);
  CHECK(j["gpus"][1]["points"][2]["seconds"] == 19.5e-6);
  // Optional fields may be left out.
  auto k = j;
  k["layer"].erase("num_experts");
  k["layer"].erase("top_k");
  const auto p = gem::parse_profile(k.dump());
  CHECK(p.shape.num_experts == 0);
  CHECK(p.shape.top_k == 0);
}

TEST_CASE("every missing required field is rejected naming the field") {
  const std::vector<std::vector<std::string>> paths{
      {"format"}, {"version"}, {"layer"}, {"layer", "hidden"}, {"layer", "intermediate"}, {"dtype"}, {"tile_rows"},
      {"measured"}, {"measured", "at"}, {"measured", "method"}, {"gpus"}};
  for (const auto& path : paths) {
    auto j = sample_json();
    json* parent = &j;
    for (std::size_t k = 0; k + 1 < path.size(); ++k) parent = &(*parent)[path[k]];
    parent->erase(path.back());
    std::string field = path[0];
    for (std::size_t k = 1; k < path.size(); ++k) field += "." + path[k];
    CAPTURE(field);
    CHECK(error_of(j) == "prof.json: field '" + field + "': missing");
  }
  for (const char* key : {"device", "uuid", "sm_count", "seconds_per_active_expert", "points"}) {
    auto j = sample_json();
    j["gpus"][1].erase(key);
    CHECK(error_of(j) == std::string("prof.json: field 'gpus[1].") + key + "': missing");
  }
  for (const char* key : {"rows", "seconds"}) {
    auto j = sample_json();
    j["gpus"][0]["points"][2].erase(key);
    CHECK(error_of(j) == std::string("prof.json: field 'gpus[0].points[2].") + key + "': missing");
  }
}

TEST_CASE("fields of the wrong type are rejected naming the field and the type") {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases{
      {[](json& j) { j["layer"]["hidden"] = "4096"; }, "field 'layer.hidden': expected an integer, got a string"},
      {[](json& j) { j["layer"]["intermediate"] = 14336.5; }, "field 'layer.intermediate': expected an integer"},
      {[](json& j) { j["layer"]["top_k"] = true; }, "field 'layer.top_k': expected an integer, got a boolean"},
      {[](json& j) { j["layer"] = json::array(); }, "field 'layer': expected an object, got a array"},
      {[](json& j) { j["dtype"] = 2; }, "field 'dtype': expected a string, got an integer"},
      {[](json& j) { j["tile_rows"] = nullptr; }, "field 'tile_rows': expected an integer, got a null"},
      {[](json& j) { j["measured"]["at"] = 20261129; }, "field 'measured.at': expected a string"},
      {[](json& j) { j["gpus"] = json::object(); }, "field 'gpus': expected an array, got a object"},
      {[](json& j) { j["gpus"][0] = 3; }, "field 'gpus[0]': expected an object"},
      {[](json& j) { j["gpus"][1]["device"] = 7; }, "field 'gpus[1].device': expected a string"},
      {[](json& j) { j["gpus"][1]["sm_count"] = 132.0; }, "field 'gpus[1].sm_count': expected an integer"},
      {[](json& j) { j["gpus"][0]["seconds_per_active_expert"] = "1e-5"; },
       "field 'gpus[0].seconds_per_active_expert': expected a number, got a string"},
      {[](json& j) { j["gpus"][0]["points"] = "none"; }, "field 'gpus[0].points': expected an array"},
      {[](json& j) { j["gpus"][0]["points"][1] = json::array({128, 3.3e-6}); },
       "field 'gpus[0].points[1]': expected an object, got a array"},
      {[](json& j) { j["gpus"][0]["points"][1]["seconds"] = "fast"; },
       "field 'gpus[0].points[1].seconds': expected a number, got a string"},
      {[](json& j) { j["gpus"][0]["points"][1]["rows"] = nullptr; },
       "field 'gpus[0].points[1].rows': expected a number, got a null"},
      {[](json& j) { j["gpus"][0]["sm_count"] = 99999999999LL; }, "field 'gpus[0].sm_count': integer 99999999999 is out of range"},
  };
  for (const auto& c : cases) {
    const std::string& want = c.second;
    auto j = sample_json();
    c.first(j);
    CAPTURE(want);
    CHECK(error_of(j).find(want) != std::string::npos);
  }
}

TEST_CASE("non-finite, negative and non-monotone points are rejected naming the point") {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases{
      {[](json& j) { j["gpus"][0]["points"][1]["seconds"] = -3.3e-6; },
       "field 'gpus[0].points[1].seconds': must be non-negative"},
      {[](json& j) { j["gpus"][1]["points"][0]["rows"] = -1; }, "field 'gpus[1].points[0].rows': must be positive"},
      {[](json& j) { j["gpus"][1]["points"][0]["rows"] = 0; }, "field 'gpus[1].points[0].rows': must be positive"},
      {[](json& j) { j["gpus"][0]["points"][2]["rows"] = 100; },
       "field 'gpus[0].points[2].rows': must be greater than the previous point's rows"},
      {[](json& j) { j["gpus"][0]["points"][2]["rows"] = 128; },
       "field 'gpus[0].points[2].rows': must be greater than the previous point's rows"},
      {[](json& j) { j["gpus"][1]["points"][2]["seconds"] = 9e-6; },
       "field 'gpus[1].points[2].seconds': must not be less than the previous point's seconds"},
      {[](json& j) { j["gpus"][0]["seconds_per_active_expert"] = -1e-6; },
       "field 'gpus[0].seconds_per_active_expert': must be finite and non-negative"},
      {[](json& j) { j["gpus"][0]["points"] = json::array(); }, "field 'gpus[0].points': is empty"},
      {[](json& j) { j["gpus"] = json::array(); }, "field 'gpus': is empty"},
      {[](json& j) { j["gpus"][1]["sm_count"] = 0; }, "field 'gpus[1].sm_count': must be positive"},
      {[](json& j) { j["tile_rows"] = -128; }, "field 'tile_rows': must be positive"},
      {[](json& j) { j["layer"]["hidden"] = 0; }, "field 'layer.hidden': must be positive"},
      {[](json& j) { j["layer"]["top_k"] = 9; }, "field 'layer.top_k': must be in [0, num_experts]"},
      {[](json& j) { j["dtype"] = "int4"; }, "field 'dtype': unknown dtype 'int4'"},
      {[](json& j) { j["format"] = "eplb"; }, "field 'format': expected \"gem.speed_profile\""},
      {[](json& j) { j["version"] = 2; }, "field 'version': version 2 is not supported"},
  };
  for (const auto& c : cases) {
    const std::string& want = c.second;
    auto j = sample_json();
    c.first(j);
    CAPTURE(want);
    CHECK(error_of(j).find(want) != std::string::npos);
  }
  // JSON has no NaN or infinity; a number too large for a double is how one arrives: rejected with
  // the member's name and line (the JSON parser stops before the path is known).
  auto text = sample_json().dump(2);
  const auto at = text.find("3.3e-06");
  REQUIRE(at != std::string::npos);
  auto inf_seconds = text;
  inf_seconds.replace(at, 7, "1e999");
  CHECK_THROWS_WITH_AS((void)gem::parse_profile(inf_seconds, "inf.json"),
                       doctest::Contains("field 'seconds': must be finite, got 1e999"), gem::parse_error);
  try {
    (void)gem::parse_profile(inf_seconds, "inf.json");
  } catch (const gem::parse_error& e) {
    CHECK(e.file() == "inf.json");
    CHECK(e.line() == 1 + static_cast<std::size_t>(std::count(inf_seconds.begin(), inf_seconds.begin() + static_cast<long>(at), '\n')));
    CHECK(e.field() == "seconds");
  }
  auto inf_fixed = sample_json();
  inf_fixed["gpus"][1]["seconds_per_active_expert"] = 1.0;
  auto t2 = inf_fixed.dump();
  t2.replace(t2.find("\"seconds_per_active_expert\":1.0"), 31, "\"seconds_per_active_expert\":-1e999");
  CHECK_THROWS_WITH_AS((void)gem::parse_profile(t2, "inf.json"),
                       doctest::Contains("field 'seconds_per_active_expert': must be finite"), gem::parse_error);
}

TEST_CASE("malformed JSON is rejected with the file and the line") {
  auto text = gem::format_profile(sample_profile());
  const auto at = text.find("\"tile_rows\"");
  text.insert(at, ",");  // a stray comma on the tile_rows line
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  try {
    (void)gem::parse_profile(text, "broken.json");
    FAIL("parsed");
  } catch (const gem::parse_error& e) {
    CHECK(e.file() == "broken.json");
    CHECK(e.line() == line);
    CHECK(std::string(e.what()).find("broken.json:" + std::to_string(line) + ": not valid JSON") == 0);
  }
  CHECK_THROWS_WITH_AS((void)gem::parse_profile("[1, 2]", "a.json"), doctest::Contains("expected a JSON object"),
                       gem::parse_error);
  CHECK_THROWS_WITH_AS((void)gem::parse_profile("", "empty.json"), doctest::Contains("empty.json:1: not valid JSON"),
                       gem::parse_error);
  CHECK_THROWS_AS((void)gem::read_profile("/nonexistent/gem-profile.json"), gem::io_error);
}

TEST_CASE("a profile measured for another layer shape is rejected naming the field") {
  const auto p = sample_profile();
  CHECK_NOTHROW(gem::check_profile_shape(p, gem::shapes::mixtral_8x7b));
  CHECK_THROWS_WITH_AS((void)gem::check_profile_shape(p, gem::shapes::deepseek_v2_lite, "mix.json"),
                       doctest::Contains("mix.json: field 'layer.hidden': the profile was measured for 4096 but the layer has 2048"),
                       gem::parse_error);
  auto other = gem::shapes::mixtral_8x7b;
  other.intermediate = 14335;
  CHECK_THROWS_WITH_AS((void)gem::check_profile_shape(p, other), doctest::Contains("field 'layer.intermediate'"), gem::parse_error);
  other = gem::shapes::mixtral_8x7b;
  other.dtype_bytes = 1;
  CHECK_THROWS_WITH_AS((void)gem::check_profile_shape(p, other), doctest::Contains("field 'dtype'"), gem::parse_error);
  other = gem::shapes::mixtral_8x7b;
  other.num_experts = 16;
  CHECK_THROWS_WITH_AS((void)gem::check_profile_shape(p, other), doctest::Contains("field 'layer.num_experts'"), gem::parse_error);
  other.num_experts = 0;  // not given: not compared
  CHECK_NOTHROW(gem::check_profile_shape(p, other));
  other = gem::shapes::mixtral_8x7b;
  other.top_k = 4;
  CHECK_THROWS_WITH_AS((void)gem::check_profile_shape(p, other), doctest::Contains("field 'layer.top_k'"), gem::parse_error);
  const auto path = temp_path("profile_shape.json");
  gem::write_profile(p, path);
  const std::string want = path.string() + ": field 'layer.hidden'";
  CHECK_THROWS_WITH_AS((void)gem::read_profile(path, gem::shapes::deepseek_v3), doctest::Contains(want.c_str()),
                       gem::parse_error);
  std::filesystem::remove(path);
}

TEST_CASE("an invalid profile is not written") {
  auto p = sample_profile();
  p.gpus[0].points[1].seconds = NAN;
  CHECK_THROWS_WITH_AS((void)gem::format_profile(p), doctest::Contains("gpus[0].points[1].seconds"), gem::config_error);
  p = sample_profile();
  p.dtype = "fp32";  // shape says 2 bytes
  CHECK_THROWS_WITH_AS((void)gem::format_profile(p), doctest::Contains("field 'dtype'"), gem::config_error);
}

TEST_CASE("a profile becomes a table model with its points and fixed costs") {
  const auto p = sample_profile();
  const auto t = gem::to_table(p);
  CHECK(t.num_gpus() == 2);
  const std::vector<double> rows{128, 0, 192};
  // GPU 0: 2 * 82 us + 3.3 us + (3.3 + 2.8 / 2) us.
  CHECK(t.seconds(gpu_id{0}, gem::work{rows}) == doctest::Approx(2 * 8.2e-5 + 3.3e-6 + 4.7e-6).epsilon(1e-12));
  // GPU 1: 2 * 99 us + 9.75 us + (9.75 + 9.75 / 2) us.
  CHECK(t.seconds(gpu_id{1}, gem::work{rows}) == doctest::Approx(2 * 9.9e-5 + 9.75e-6 + 14.625e-6).epsilon(1e-12));
  // One measured GPU stands for identical ones.
  auto one = p;
  one.gpus.resize(1);
  const auto t4 = gem::to_table(one, 4);
  CHECK(t4.num_gpus() == 4);
  for (int g = 0; g < 4; ++g) CHECK(t4.seconds(gpu_id{g}, gem::work{rows}) == t.seconds(gpu_id{0}, gem::work{rows}));
  CHECK(gem::to_table(p, 2).num_gpus() == 2);
  CHECK_THROWS_WITH_AS((void)gem::to_table(p, 3), doctest::Contains("holds 2 GPUs, not 1 or 3"), gem::config_error);
  const auto tc = gem::to_table(p, gem::table_interpolation::tile_ceiling);
  CHECK(tc.seconds(gpu_id{0}, gem::work{rows}) == doctest::Approx(2 * 8.2e-5 + 3.3e-6 + 6.1e-6).epsilon(1e-12));
}

TEST_CASE("seconds_per_step: optional in the file, paid once per GPU with any active expert") {
  auto p = sample_profile();
  // Absent (as written for 0): reads as 0, and files without it stay byte-identical.
  CHECK(gem::format_profile(p).find("seconds_per_step") == std::string::npos);
  p.gpus[1].seconds_per_step = 3e-5;
  const auto text = gem::format_profile(p);
  CHECK(text.find("\"seconds_per_step\"") != std::string::npos);
  CHECK(gem::parse_profile(text, "mem") == p);
  const auto t = gem::to_table(p);
  const std::vector<double> rows{128, 0, 192}, idle{0, 0, 0};
  CHECK(t.step_seconds(gpu_id{1}) == 3e-5);
  CHECK(t.seconds(gpu_id{1}, gem::work{rows}) == doctest::Approx(3e-5 + 2 * 9.9e-5 + 9.75e-6 + 14.625e-6).epsilon(1e-12));
  CHECK(t.seconds(gpu_id{1}, gem::work{idle}) == 0.0);  // a GPU with nothing to do pays nothing
  CHECK(t.seconds(gpu_id{0}, gem::work{rows}) == doctest::Approx(2 * 8.2e-5 + 3.3e-6 + 4.7e-6).epsilon(1e-12));
  auto j = json::parse(text);
  j["gpus"][1]["seconds_per_step"] = -1.0;
  CHECK(error_of(j).find("gpus[1].seconds_per_step") != std::string::npos);
  j["gpus"][1]["seconds_per_step"] = "soon";
  CHECK(error_of(j).find("gpus[1].seconds_per_step") != std::string::npos);
}
