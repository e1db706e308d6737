// Tests of the analytic speed models: uniform, scaled (and its composition), roofline against
// hand-computed FLOP and byte counts, the H200 default and the named layer shapes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gem/speed/gpu_count.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/uniform.hpp"

using gem::gpu_id;
using gem::work;

namespace {

work of(const std::vector<double>& rows) { return work{.rows = rows}; }

std::vector<double> random_rows(std::mt19937_64& rng, std::size_t n) {
  std::vector<double> rows(n);
  for (auto& r : rows) {
    const auto u = rng() % 4;
    r = u == 0 ? 0.0 : static_cast<double>(rng() % 5000) / (u == 1 ? 7.0 : 1.0);
  }
  return rows;
}

}  // namespace

TEST_CASE("uniform charges each active expert a fixed cost plus a cost per row, the same on every GPU") {
  const gem::uniform m{.seconds_per_row = 2e-6, .seconds_per_active_expert = 3e-5};
  m.validate();
  const std::vector<double> rows{0, 10, 0, 2.5, 100};
  // 3 active experts, 112.5 rows.
  CHECK(m.seconds(gpu_id{0}, of(rows)) == doctest::Approx(3 * 3e-5 + 112.5 * 2e-6).epsilon(1e-14));
  CHECK(m.seconds(gpu_id{7}, of(rows)) == m.seconds(gpu_id{0}, of(rows)));
  CHECK(m.seconds(gpu_id{0}, of({})) == 0.0);
  CHECK(m.seconds(gpu_id{0}, of({0, 0, 0})) == 0.0);
  // The default counts token rows: what count-balancing placements assume.
  CHECK(gem::uniform{}.seconds(gpu_id{3}, of(rows)) == 112.5);
  CHECK(gem::model_gpus(m) == 0);
}

TEST_CASE("uniform rejects negative or non-finite costs naming the field") {
  CHECK_THROWS_WITH_AS((void)(gem::uniform{.seconds_per_row = -1}.validate()), doctest::Contains("seconds_per_row"),
                       gem::config_error);
  CHECK_THROWS_WITH_AS((void)(gem::uniform{.seconds_per_active_expert = NAN}.validate()),
                       doctest::Contains("seconds_per_active_expert"), gem::config_error);
}

TEST_CASE("scaled multiplies each GPU's base time by its factor") {
  const gem::uniform base{.seconds_per_row = 1e-6, .seconds_per_active_expert = 1e-5};
  const auto m = gem::scale(base, {1.0, 1.277, 0.97, 2.2});
  CHECK(m.num_gpus() == 4);
  std::mt19937_64 rng(41);
  for (int trial = 0; trial < 200; ++trial) {
    const auto rows = random_rows(rng, 1 + rng() % 16);
    for (int g = 0; g < 4; ++g)
      CHECK(m.seconds(gpu_id{g}, of(rows)) == m.factors()[static_cast<std::size_t>(g)] * base.seconds(gpu_id{g}, of(rows)));
  }
  CHECK(m.seconds(gpu_id{1}, of({})) == 0.0);
}

TEST_CASE("scaled over scaled composes to the product of the factors") {
  const auto shape = gem::shapes::deepseek_v2_lite;
  const auto base = gem::h200_roofline(shape, 3);
  const std::vector<double> f1{1.1, 0.95, 2.0};
  const std::vector<double> f2{1.277, 1.0, 0.5};
  const gem::scaled<gem::scaled<gem::roofline>> nested(gem::scaled<gem::roofline>(base, f1), f2);
  const auto flat = gem::scale(gem::scale(base, f1), f2);
  static_assert(std::is_same_v<decltype(flat), const gem::scaled<gem::roofline>>);
  const gem::scaled<gem::roofline> product(base, {1.1 * 1.277, 0.95 * 1.0, 2.0 * 0.5});
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const auto rows = random_rows(rng, 1 + rng() % 8);
    for (int g = 0; g < 3; ++g) {
      const double want = product.seconds(gpu_id{g}, of(rows));
      CHECK(nested.seconds(gpu_id{g}, of(rows)) == doctest::Approx(want).epsilon(1e-14));
      CHECK(flat.seconds(gpu_id{g}, of(rows)) == doctest::Approx(want).epsilon(1e-14));
    }
  }
  for (std::size_t g = 0; g < 3; ++g) CHECK(flat.factors()[g] == f1[g] * f2[g]);
}

TEST_CASE("scaled rejects bad factors and factor counts that do not match the base") {
  const gem::uniform u{};
  CHECK_THROWS_WITH_AS((void)gem::scale(u, {}), doctest::Contains("empty"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::scale(u, {1.0, 0.0}), doctest::Contains("factors[1]"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::scale(u, {1.0, -2.0}), doctest::Contains("factors[1]"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::scale(u, {INFINITY}), doctest::Contains("factors[0]"), gem::config_error);
  const auto r = gem::h200_roofline(gem::shapes::olmoe, 4);
  CHECK_THROWS_WITH_AS((void)gem::scale(r, {1.0, 1.0}), doctest::Contains("base model of 4 GPUs"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::scale(gem::scale(u, {1.0, 1.0}), {1.0}), doctest::Contains("scaled model of 2 GPUs"),
                       gem::config_error);
  CHECK_THROWS_AS((void)gem::require_gpus(gem::scale(u, {1.0, 1.0}), 3), gem::config_error);
  CHECK_NOTHROW(gem::require_gpus(gem::scale(u, {1.0, 1.0}), 2));
  CHECK_NOTHROW(gem::require_gpus(u, 1000));
}

// Hand-computed rooflines on H200 peaks (790e12 FLOP/s, 4.3e12 B/s), bf16. Per GEMM:
//   gate/up flops = 4*h*i*R, bytes = 2*(2*h*i*A + (h + 2*i)*R)
//   down    flops = 2*h*i*R, bytes = 2*(h*i*A + (i + h)*R)
// The integers below were multiplied out by hand (and checked with a calculator), not by gem.
TEST_CASE("roofline matches hand-computed times for Mixtral-8x7B expert shapes") {
  const auto m = gem::h200_roofline(gem::shapes::mixtral_8x7b, 1);
  constexpr double P = 790e12, B = 4.3e12;
  // Decode, two active experts with 1 and 3 rows (R = 4, A = 2): both GEMMs memory bound.
  //   gate/up: 939,524,096 FLOP (1.19 us) vs 470,024,192 B (109.3 us); down: 469,762,048 FLOP vs 235,028,480 B.
  CHECK(m.seconds(gpu_id{0}, of({1, 0, 3})) == doctest::Approx(470024192.0 / B + 235028480.0 / B).epsilon(1e-12));
  CHECK(m.seconds(gpu_id{0}, of({1, 0, 3})) == doctest::Approx(1.6396573767e-4).epsilon(1e-9));
  // Prefill, one expert with 4096 rows: both GEMMs compute bound.
  //   gate/up: 962,072,674,304 FLOP vs 503,316,480 B; down: 481,036,337,152 FLOP vs 268,435,456 B.
  CHECK(m.seconds(gpu_id{0}, of({4096})) == doctest::Approx(962072674304.0 / P + 481036337152.0 / P).epsilon(1e-12));
  CHECK(m.seconds(gpu_id{0}, of({4096})) == doctest::Approx(1.8267202677e-3).epsilon(1e-9));
}

TEST_CASE("roofline matches hand-computed times for DeepSeek-V2-Lite expert shapes") {
  const auto m = gem::h200_roofline(gem::shapes::deepseek_v2_lite, 2);
  constexpr double B = 4.3e12;
  // Eight local experts, rows {0,5,0,12,1,0,300,7}: R = 325, A = 5; memory bound.
  //   gate/up: 3,748,659,200 FLOP vs 60,833,280 B; down: 1,874,329,600 FLOP vs 31,082,240 B.
  const std::vector<double> rows{0, 5, 0, 12, 1, 0, 300, 7};
  CHECK(m.seconds(gpu_id{1}, of(rows)) == doctest::Approx(60833280.0 / B + 31082240.0 / B).epsilon(1e-12));
  CHECK(m.seconds(gpu_id{1}, of(rows)) == doctest::Approx(2.13757023256e-5).epsilon(1e-9));
}

TEST_CASE("roofline matches hand-computed times for DeepSeek-V3 expert shapes") {
  const auto m = gem::h200_roofline(gem::shapes::deepseek_v3, 1);
  constexpr double P = 790e12, B = 4.3e12;
  // Eight experts x 512 rows (R = 4096, A = 8): compute bound.
  //   gate/up: 240,518,168,576 FLOP vs 562,036,736 B; down: 120,259,084,288 FLOP vs 310,378,496 B.
  CHECK(m.seconds(gpu_id{0}, of(std::vector<double>(8, 512))) ==
        doctest::Approx(240518168576.0 / P + 120259084288.0 / P).epsilon(1e-12));
  // One row on one expert: gate/up 58,720,256 FLOP vs 58,742,784 B; down 29,360,128 FLOP vs 29,378,560 B.
  CHECK(m.seconds(gpu_id{0}, of({1, 0, 0, 0, 0, 0, 0, 0})) ==
        doctest::Approx(58742784.0 / B + 29378560.0 / B).epsilon(1e-12));
  CHECK(m.seconds(gpu_id{0}, of({1})) == doctest::Approx(2.049333581e-5).epsilon(1e-9));
}

TEST_CASE("roofline time never decreases when rows or active experts grow, and is zero for no work") {
  const gem::roofline m(gem::shapes::qwen3_30b_a3b, {{.flops_per_second = 5e14, .bytes_per_second = 3e12},
                                                     {.flops_per_second = 9e14, .bytes_per_second = 1e12}});
  CHECK(m.num_gpus() == 2);
  CHECK(m.seconds(gpu_id{0}, of({})) == 0.0);
  CHECK(m.seconds(gpu_id{1}, of({0, 0})) == 0.0);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 500; ++trial) {
    auto rows = random_rows(rng, 1 + rng() % 12);
    const auto g = gpu_id{static_cast<std::int32_t>(rng() % 2)};
    const double before = m.seconds(g, of(rows));
    rows[rng() % rows.size()] += 1 + static_cast<double>(rng() % 300);
    CHECK(m.seconds(g, of(rows)) >= before);
  }
}

TEST_CASE("uniform and roofline give the same time from a GPU's row and active-expert totals") {
  const gem::uniform u{.seconds_per_row = 2e-6, .seconds_per_active_expert = 3e-5};
  const gem::roofline r(gem::shapes::deepseek_v3, {gem::h200_peak, {.flops_per_second = 4e14, .bytes_per_second = 2e12}});
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 300; ++trial) {
    const auto rows = random_rows(rng, 1 + rng() % 32);
    double total = 0, active = 0;
    for (double x : rows) total += x, active += x > 0;
    const gpu_id g{static_cast<std::int32_t>(rng() % 2)};
    CHECK(u.seconds_from_totals(g, total, active) == u.seconds(g, of(rows)));
    CHECK(r.seconds_from_totals(g, total, active) == r.seconds(g, of(rows)));
  }
}

TEST_CASE("merging two experts' rows on one GPU never increases uniform or roofline time") {
  const gem::uniform u{.seconds_per_row = 2e-6, .seconds_per_active_expert = 3e-5};
  const auto r = gem::h200_roofline(gem::shapes::mixtral_8x7b, 1);
  std::mt19937_64 rng(23);
  for (int trial = 0; trial < 500; ++trial) {
    auto rows = random_rows(rng, 2 + rng() % 10);
    const double before_u = u.seconds(gpu_id{0}, of(rows)), before_r = r.seconds(gpu_id{0}, of(rows));
    const auto i = rng() % rows.size(), j = (i + 1 + rng() % (rows.size() - 1)) % rows.size();
    rows[i] += rows[j];
    rows[j] = 0;
    CHECK(u.seconds(gpu_id{0}, of(rows)) <= before_u * (1 + 1e-12));
    CHECK(r.seconds(gpu_id{0}, of(rows)) <= before_r * (1 + 1e-12));
  }
}

TEST_CASE("roofline rejects invalid shapes and peaks naming the field") {
  CHECK_THROWS_WITH_AS((void)gem::roofline(gem::layer_shape{.hidden = 0, .intermediate = 8}, {gem::h200_peak}),
                       doctest::Contains("layer_shape.hidden"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::roofline(gem::shapes::olmoe, {}), doctest::Contains("gpus is empty"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::roofline(gem::shapes::olmoe, {gem::h200_peak, {.flops_per_second = 1e12, .bytes_per_second = 0}}),
                       doctest::Contains("gpus[1].bytes_per_second"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::roofline(gem::shapes::olmoe, {{.flops_per_second = NAN, .bytes_per_second = 1e12}}),
                       doctest::Contains("gpus[0].flops_per_second"), gem::config_error);
  CHECK_THROWS_WITH_AS((void)gem::h200_roofline(gem::shapes::olmoe, 0), doctest::Contains("num_gpus"), gem::config_error);
}

TEST_CASE("the H200 default uses the measured ceilings on every GPU") {
  const auto m = gem::h200_roofline(gem::shapes::deepseek_v3, 8);
  CHECK(m.num_gpus() == 8);
  for (const auto& p : m.gpus()) {
    CHECK(p.flops_per_second == 790e12);
    CHECK(p.bytes_per_second == 4.3e12);
  }
  CHECK(m.shape() == gem::shapes::deepseek_v3);
}

TEST_CASE("named layer shapes carry the models' routed-expert dimensions") {
  CHECK(gem::layer_shape_by_name("mixtral-8x7b") ==
        gem::layer_shape{.hidden = 4096, .intermediate = 14336, .dtype_bytes = 2, .num_experts = 8, .top_k = 2});
  CHECK(gem::layer_shape_by_name("deepseek-v2-lite") ==
        gem::layer_shape{.hidden = 2048, .intermediate = 1408, .dtype_bytes = 2, .num_experts = 64, .top_k = 6});
  CHECK(gem::layer_shape_by_name("deepseek-v3") ==
        gem::layer_shape{.hidden = 7168, .intermediate = 2048, .dtype_bytes = 2, .num_experts = 256, .top_k = 8});
  CHECK(gem::layer_shape_by_name("qwen3-30b-a3b") ==
        gem::layer_shape{.hidden = 2048, .intermediate = 768, .dtype_bytes = 2, .num_experts = 128, .top_k = 8});
  CHECK(gem::layer_shape_by_name("olmoe") ==
        gem::layer_shape{.hidden = 2048, .intermediate = 1024, .dtype_bytes = 2, .num_experts = 64, .top_k = 8});
  for (const auto& s : gem::named_layer_shapes()) CHECK_NOTHROW(s.shape.validate());
  CHECK_THROWS_WITH_AS((void)gem::layer_shape_by_name("gpt-5"), doctest::Contains("known: mixtral-8x7b"), gem::config_error);
  // Mixtral: 6*h*i FLOP per row and 3*h*i*2 bytes of weights per expert.
  CHECK(gem::shapes::mixtral_8x7b.flops_per_row() == 6.0 * 4096 * 14336);
  CHECK(gem::shapes::mixtral_8x7b.weight_bytes_per_expert() == 352321536.0);
  CHECK(gem::dtype_bytes_of("bf16") == 2);
  CHECK(gem::dtype_bytes_of("fp32") == 4);
  CHECK(gem::dtype_bytes_of("fp8") == 1);
  CHECK_THROWS_WITH_AS((void)gem::dtype_bytes_of("int3"), doctest::Contains("int3"), gem::config_error);
}
