// A user-written speed model plugs into gem's generic step code (step_straggler_seconds and
// step_gpu_seconds), checked against a brute-force maximum.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "gem/speed/models.hpp"

using gem::gpu_id;
using gem::work;

namespace {

// A user's own model: GPU g runs at 1 + g/10 of nominal speed and pays per tile of 64 rows.
// It knows nothing of gem beyond `work` and `gpu_id`.
struct tiles_model {
  double seconds_per_tile = 1e-5;
  [[nodiscard]] double seconds(gpu_id g, const work& w) const noexcept {
    return static_cast<double>(w.tiles(64)) * seconds_per_tile / (1.0 + g.value / 10.0);
  }
};
static_assert(gem::speed_model<tiles_model>);
static_assert(!gem::gpu_bounded_speed_model<tiles_model>);

}  // namespace

TEST_CASE("a user-written speed model plugs into the straggler computation") {
  std::mt19937_64 rng(11);
  const tiles_model m{};
  for (int trial = 0; trial < 100; ++trial) {
    const int gpus = 1 + static_cast<int>(rng() % 8);
    std::vector<std::vector<double>> rows(static_cast<std::size_t>(gpus));
    std::vector<work> works;
    for (auto& r : rows) {
      r.resize(1 + rng() % 6);
      for (auto& x : r) x = static_cast<double>(rng() % 400);
    }
    for (const auto& r : rows) works.push_back(work{.rows = r});
    // Brute force: tiles counted by hand.
    double want = 0;
    for (int g = 0; g < gpus; ++g) {
      double tiles = 0;
      for (double x : rows[static_cast<std::size_t>(g)]) tiles += std::ceil(x / 64);
      want = std::max(want, tiles * 1e-5 / (1.0 + g / 10.0));
    }
    CHECK(gem::step_straggler_seconds(m, works) == doctest::Approx(want).epsilon(1e-14));
    std::vector<double> per(works.size());
    CHECK(gem::step_gpu_seconds(m, works, per) == gem::step_straggler_seconds(m, works));
    CHECK(*std::max_element(per.begin(), per.end()) == gem::step_straggler_seconds(m, works));
    // The user's model composes with gem's: scaled over it.
    const auto slow = gem::scale(m, std::vector<double>(static_cast<std::size_t>(gpus), 2.0));
    CHECK(gem::step_straggler_seconds(slow, works) == doctest::Approx(2 * want).epsilon(1e-14));
  }
}

TEST_CASE("the straggler is the slowest GPU under gem's models, and an empty step costs nothing") {
  const std::array<std::vector<double>, 3> rows{std::vector<double>{10, 0}, {5, 5}, {0, 0}};
  const std::array<work, 3> w{work{rows[0]}, work{rows[1]}, work{rows[2]}};
  const gem::uniform u{.seconds_per_row = 1, .seconds_per_active_expert = 4};
  CHECK(gem::step_straggler_seconds(u, w) == 18.0);  // GPU 1: 2 active * 4 + 10 rows
  const auto s = gem::scale(u, {1.5, 1.0, 1.0});
  CHECK(gem::step_straggler_seconds(s, w) == 21.0);  // GPU 0: 1.5 * (4 + 10)
  std::array<double, 3> per{};
  CHECK(gem::step_gpu_seconds(s, w, per) == 21.0);
  CHECK(per == std::array<double, 3>{21.0, 18.0, 0.0});
  CHECK(gem::step_straggler_seconds(u, std::span<const work>{}) == 0.0);
}

TEST_CASE("the straggler computation refuses a model without data for every GPU") {
  const std::array<std::vector<double>, 3> rows{std::vector<double>{1}, {1}, {1}};
  const std::array<work, 3> w{work{rows[0]}, work{rows[1]}, work{rows[2]}};
  const auto r = gem::h200_roofline(gem::shapes::olmoe, 2);
  CHECK_THROWS_WITH_AS((void)gem::step_straggler_seconds(r, w), doctest::Contains("describes 2 GPUs, but 3"),
                       gem::config_error);
  std::array<double, 2> small{};
  CHECK_THROWS_WITH_AS((void)gem::step_gpu_seconds(gem::uniform{}, w, small), doctest::Contains("2 outputs for 3 GPUs"),
                       gem::config_error);
}
