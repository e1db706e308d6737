// Tests of examples/moe_layer/moe_layer.cuh: for every strategy's placement (and a hand-made one
// with replicas, uneven shares and interleaved slots) the layer's output over 4 devices equals the
// single-device layer's output and a float64 CPU reference of the same routing (bf16 tolerance),
// in both run modes; rows are conserved; a placement for the wrong device count is refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "../../examples/moe_layer/moe_layer.cuh"
#include "cuda/cuda_test_util.cuh"
#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/uniform.hpp"

namespace {

namespace gc = gem::cuda;
namespace ex = gem::example;
using gem::test::bf16_bits_to_float;
using gem::test::device_buffer;
using gem::test::float_to_bf16_bits;

std::vector<std::uint16_t> random_bf16(std::size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) x = float_to_bf16_bits(u(rng));
  return v;
}

/// out[t] = sum_j w[t][j] * down_e(silu(gate_e x_t) * up_e x_t), float64 over bf16 inputs.
std::vector<double> reference_moe(const std::vector<std::uint16_t>& x, const std::vector<std::int32_t>& ids,
                                  const std::vector<float>& w, const std::vector<std::uint16_t>& w13,
                                  const std::vector<std::uint16_t>& w2, int T, int K, int H, int I) {
  std::vector<double> out(static_cast<std::size_t>(T) * H, 0.0), act(static_cast<std::size_t>(I));
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < K; ++j) {
      const auto e = static_cast<std::size_t>(ids[static_cast<std::size_t>(t) * K + j]);
      for (int i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int h = 0; h < H; ++h) {
          const double xv = bf16_bits_to_float(x[static_cast<std::size_t>(t) * H + h]);
          g += xv * bf16_bits_to_float(w13[(e * 2 * I + i) * H + h]);
          u += xv * bf16_bits_to_float(w13[(e * 2 * I + I + i) * H + h]);
        }
        act[i] = g / (1 + std::exp(-g)) * u;
      }
      for (int h = 0; h < H; ++h) {
        double y = 0;
        for (int i = 0; i < I; ++i) y += act[i] * bf16_bits_to_float(w2[(e * H + h) * I + i]);
        out[static_cast<std::size_t>(t) * H + h] += w[static_cast<std::size_t>(t) * K + j] * y;
      }
    }
  return out;
}

double relative_l2(const std::vector<std::uint16_t>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = bf16_bits_to_float(got[i]);
    if (!std::isfinite(g)) return INFINITY;
    num += (g - ref[i]) * (g - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

/// Four devices: equal SM partitions when the GPU has the SMs, else four views of the whole GPU.
std::vector<gc::exec_device> four_devices() {
  std::vector<gc::exec_device> d;
  try {
    const auto rules = gc::partition_rules(0);
    const auto each = std::max(rules.min_partition, 8);
    if (rules.sm_count >= 4 * each) return gc::split_device(0, {.sm_counts = {each, each, each, each}});
  } catch (const gem::error& e) {
    MESSAGE("no partitions (" << e.what() << "): using four views of the whole GPU");
  }
  for (int i = 0; i < 4; ++i) d.push_back(gc::whole_gpu(0));
  return d;
}

}  // namespace

TEST_CASE("a layer refuses a placement for another number of devices") {
  const auto pl = ex::single_device_placement(8);
  const gc::exec_device none;
  CHECK_THROWS_AS(ex::moe_layer(std::span<const gc::exec_device>{}, none, pl, gem::layer_id{0},
                                ex::moe_shape{.hidden = 256, .inter = 128, .num_experts = 8, .top_k = 2, .max_tokens = 4},
                                ex::expert_bank{}),
                  gem::config_error);
}

TEST_CASE("every placement gives the single-device output and the float64 reference, in both modes") {
  GEM_REQUIRE_GPU();
  const int T = 96, K = 4, H = 256, I = 128, E = 16, G = 4;
  std::mt19937 rng(2026);
  const auto hx = random_bf16(static_cast<std::size_t>(T) * H, 1.0f, rng);
  const auto hw13 = random_bf16(static_cast<std::size_t>(E) * 2 * I * H, 1.0f / 16, rng);
  const auto hw2 = random_bf16(static_cast<std::size_t>(E) * H * I, 1.0f / 16, rng);
  // Skewed routing: distinct experts per token, expert popularity ~ 1 / (e + 1).
  std::vector<std::int32_t> ids;
  std::vector<float> w;
  std::vector<double> popularity;
  for (int e = 0; e < E; ++e) popularity.push_back(1.0 / (e + 1));
  std::discrete_distribution<int> pick(popularity.begin(), popularity.end());
  std::uniform_real_distribution<float> uw(0.05f, 0.5f);
  std::vector<double> counts(E, 0.0);
  for (int t = 0; t < T; ++t) {
    std::vector<int> chosen;
    while (static_cast<int>(chosen.size()) < K) {
      const int e = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    for (int e : chosen) {
      ids.push_back(e);
      w.push_back(uw(rng));
      counts[e] += 1;
    }
  }
  const auto ref = reference_moe(hx, ids, w, hw13, hw2, T, K, H, I);

  device_buffer<std::uint16_t> x(hx), w13(hw13), w2(hw2), out(static_cast<std::size_t>(T) * H),
      single_out(static_cast<std::size_t>(T) * H);
  device_buffer<std::int32_t> d_ids(ids);
  device_buffer<float> d_w(w);
  const ex::expert_bank bank{reinterpret_cast<const gc::bf16*>(w13.get()), reinterpret_cast<const gc::bf16*>(w2.get())};
  const ex::moe_shape shape{.hidden = H, .inter = I, .num_experts = E, .top_k = K, .max_tokens = T};
  auto* xb = reinterpret_cast<const gc::bf16*>(x.get());

  auto coord = gc::whole_gpu(0);
  {
    ex::moe_layer one(std::span<const gc::exec_device>(&coord, 1), coord, ex::single_device_placement(E), gem::layer_id{0},
                      shape, bank);
    single_out.poison();
    const auto t = one.run_step(d_ids.get(), d_w.get(), T, xb, reinterpret_cast<gc::bf16*>(single_out.get()),
                                ex::run_mode::concurrent);
    CHECK(t.device_rows == std::vector<std::int32_t>{T * K});
  }
  const auto single = single_out.download();
  CHECK(relative_l2(single, ref) < 1e-2);

  // Placements: the strategies on the routing's loads, and a hand-made one whose slots interleave
  // GPUs, with replicas of the two hottest experts and uneven shares.
  gem::placement_problem problem{.cluster = {.num_gpus = G, .slots_per_gpu = {5}}, .num_experts = E};
  problem.layers.push_back(gem::layer_loads{.mean = counts, .steps = {counts}});
  const gem::scaled<gem::uniform> speeds(gem::uniform{.seconds_per_row = 1e-6, .seconds_per_active_expert = 5e-6},
                                         {1.0, 1.25, 1.25, 1.6});
  std::vector<std::pair<std::string, gem::placement>> placements;
  placements.emplace_back("eplb", gem::eplb{}.place(problem, speeds));
  placements.emplace_back("speed_proportional", gem::speed_proportional{}.place(problem, speeds));
  placements.emplace_back("gem", gem::gem_search{}.place(problem, speeds));
  placements.emplace_back("gem extended",
                          gem::gem_search{.mode = gem::slot_mode::extended}.place(problem, speeds));
  {
    gem::layer_placement lp;
    for (int p = 0; p < 20; ++p) {
      lp.phy2log.push_back(p < E ? p : (p - E) % 2);  // slots 16..19 replicate experts 0, 1, 0, 1
      lp.slot_gpu.push_back(p % G);                    // interleaved: GPU g holds slots g, g+4, ...
    }
    lp.share.assign(20, 1.0);
    lp.share[0] = 0.2, lp.share[16] = 0.3, lp.share[18] = 0.5;  // expert 0: three replicas
    lp.share[1] = 0.7, lp.share[17] = 0.1, lp.share[19] = 0.2;  // expert 1: three replicas
    placements.emplace_back("hand-made", gem::placement(gem::cluster_spec{.num_gpus = G, .slots_per_gpu = {5}}, E, {lp}));
  }

  const auto devices = four_devices();
  for (const auto& [name, pl] : placements) {
    CAPTURE(name);
    ex::moe_layer layer(devices, coord, pl, gem::layer_id{0}, shape, bank);
    for (const auto mode : {ex::run_mode::concurrent, ex::run_mode::isolated}) {
      out.poison();
      const auto t = layer.run_step(d_ids.get(), d_w.get(), T, xb, reinterpret_cast<gc::bf16*>(out.get()), mode);
      REQUIRE(t.device_seconds.size() == static_cast<std::size_t>(G));
      std::int32_t rows = 0;
      for (auto r : t.device_rows) rows += r;
      CHECK(rows == T * K);
      for (auto s : t.device_seconds) CHECK(s >= 0);
      const auto got = out.download();
      std::vector<double> single_d(single.size());
      for (std::size_t i = 0; i < single.size(); ++i) single_d[i] = bf16_bits_to_float(single[i]);
      CHECK(relative_l2(got, single_d) < 1e-2);
      CHECK(relative_l2(got, ref) < 1e-2);
    }
  }
}
