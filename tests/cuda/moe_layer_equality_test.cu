// Tests of examples/moe_layer/moe_layer.cuh: for every strategy's placement (and a hand-made one
// with replicas, uneven shares and interleaved slots) the layer's output over 4 devices equals the
// single-device layer's output and a float64 CPU reference of the same routing (bf16 tolerance),
// in both run modes; rows are conserved; a placement for the wrong device count is refused. With
// NCCL: the expert-parallel layer (ep_layer.cuh) over every visible GPU, also with the last GPU
// restricted to an SM partition, gives the same outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "../../examples/moe_layer/moe_layer.cuh"
#if GEM_HAS_NCCL
#include "../../examples/moe_layer/ep_layer.cuh"
#endif
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

/// A layer's inputs and routing with its float64 reference: skewed routing (distinct experts per
/// token, popularity ~ 1 / (e + 1)), random bf16 activations and weights.
struct moe_case {
  std::vector<std::uint16_t> x, w13, w2;
  std::vector<std::int32_t> ids;
  std::vector<float> w;
  std::vector<double> counts, ref;
};

moe_case make_case(int T, int K, int H, int I, int E, unsigned seed) {
  std::mt19937 rng(seed);
  moe_case c;
  c.x = random_bf16(static_cast<std::size_t>(T) * H, 1.0f, rng);
  c.w13 = random_bf16(static_cast<std::size_t>(E) * 2 * I * H, 1.0f / 16, rng);
  c.w2 = random_bf16(static_cast<std::size_t>(E) * H * I, 1.0f / 16, rng);
  std::vector<double> popularity;
  for (int e = 0; e < E; ++e) popularity.push_back(1.0 / (e + 1));
  std::discrete_distribution<int> pick(popularity.begin(), popularity.end());
  std::uniform_real_distribution<float> uw(0.05f, 0.5f);
  c.counts.assign(static_cast<std::size_t>(E), 0.0);
  for (int t = 0; t < T; ++t) {
    std::vector<int> chosen;
    while (static_cast<int>(chosen.size()) < K) {
      const int e = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    for (int e : chosen) {
      c.ids.push_back(e);
      c.w.push_back(uw(rng));
      c.counts[static_cast<std::size_t>(e)] += 1;
    }
  }
  c.ref = reference_moe(c.x, c.ids, c.w, c.w13, c.w2, T, K, H, I);
  return c;
}

/// A case on GPU 0 (activations, weights, routing) with the single-device layer's output of it.
struct device_case {
  device_buffer<std::uint16_t> x, w13, w2;
  device_buffer<std::int32_t> ids;
  device_buffer<float> w;
  ex::expert_bank bank;
  ex::moe_shape shape;
  const gc::bf16* xb;
  gc::exec_device coord = gc::whole_gpu(0);
  std::vector<std::uint16_t> single;       ///< the single-device output (bf16 bits)
  std::vector<double> single_d;            ///< the same as doubles
  std::vector<std::int32_t> single_rows;   ///< rows its one device ran

  device_case(const moe_case& c, int T, int K, int H, int I, int E)
      : x(c.x), w13(c.w13), w2(c.w2), ids(c.ids), w(c.w),
        bank{reinterpret_cast<const gc::bf16*>(w13.get()), reinterpret_cast<const gc::bf16*>(w2.get())},
        shape{.hidden = H, .inter = I, .num_experts = E, .top_k = K, .max_tokens = T},
        xb(reinterpret_cast<const gc::bf16*>(x.get())) {
    device_buffer<std::uint16_t> out(static_cast<std::size_t>(T) * H);
    ex::moe_layer one(std::span<const gc::exec_device>(&coord, 1), coord, ex::single_device_placement(E), gem::layer_id{0},
                      shape, bank);
    out.poison();
    single_rows = one.run_step(ids.get(), w.get(), T, xb, reinterpret_cast<gc::bf16*>(out.get()), ex::run_mode::concurrent)
                      .device_rows;
    single = out.download();
    for (auto b : single) single_d.push_back(bf16_bits_to_float(b));
  }
};

/// Slots that interleave GPUs (GPU g holds slots g, g + G, ...), with three replicas each of
/// the two hottest experts (0 and 1) at uneven shares: E + 4 slots.
gem::placement hand_made(int G, int E) {
  gem::layer_placement lp;
  std::vector<std::int32_t> per_gpu(static_cast<std::size_t>(G), 0);
  for (int p = 0; p < E + 4; ++p) {
    lp.phy2log.push_back(p < E ? p : (p - E) % 2);  // slots E..E+3 replicate experts 0, 1, 0, 1
    lp.slot_gpu.push_back(p % G);
    ++per_gpu[static_cast<std::size_t>(p % G)];
  }
  lp.share.assign(static_cast<std::size_t>(E) + 4, 1.0);
  lp.share[0] = 0.2, lp.share[E] = 0.3, lp.share[E + 2] = 0.5;      // expert 0: three replicas
  lp.share[1] = 0.7, lp.share[E + 1] = 0.1, lp.share[E + 3] = 0.2;  // expert 1: three replicas
  return gem::placement(gem::cluster_spec{.num_gpus = G, .slots_per_gpu = per_gpu}, E, {lp});
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
  const auto c = make_case(T, K, H, I, E, 2026);
  const auto& counts = c.counts;
  const auto& ref = c.ref;
  device_case d(c, T, K, H, I, E);
  CHECK(d.single_rows == std::vector<std::int32_t>{T * K});
  CHECK(relative_l2(d.single, ref) < 1e-2);
  device_buffer<std::uint16_t> out(static_cast<std::size_t>(T) * H);

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
  placements.emplace_back("hand-made", hand_made(G, E));

  const auto devices = four_devices();
  for (const auto& [name, pl] : placements) {
    CAPTURE(name);
    ex::moe_layer layer(devices, d.coord, pl, gem::layer_id{0}, d.shape, d.bank);
    for (const auto mode : {ex::run_mode::concurrent, ex::run_mode::isolated}) {
      out.poison();
      const auto t = layer.run_step(d.ids.get(), d.w.get(), T, d.xb, reinterpret_cast<gc::bf16*>(out.get()), mode);
      REQUIRE(t.device_seconds.size() == static_cast<std::size_t>(G));
      std::int32_t rows = 0;
      for (auto r : t.device_rows) rows += r;
      CHECK(rows == T * K);
      for (auto s : t.device_seconds) CHECK(s >= 0);
      const auto got = out.download();
      CHECK(relative_l2(got, d.single_d) < 1e-2);
      CHECK(relative_l2(got, ref) < 1e-2);
    }
  }
}

#if GEM_HAS_NCCL
TEST_CASE("expert-parallel over every visible GPU (rows moved by NCCL) gives the single-device output") {
  GEM_REQUIRE_GPU();
  const int T = 97, K = 4, H = 256, I = 128, E = 16;  // 97: ranks hold unequal token slices
  const int R = std::min(gc::device_count(), 8);
  MESSAGE(R << " GPU(s) visible: " << R << " rank(s)");
  const auto c = make_case(T, K, H, I, E, 77);
  device_case d(c, T, K, H, I, E);
  const auto& bank = d.bank;
  const auto& shape = d.shape;
  const auto* xb = d.xb;
  const auto& single = d.single_d;
  REQUIRE(relative_l2(d.single, c.ref) < 1e-2);

  gem::placement_problem problem{.cluster = {.num_gpus = R, .slots_per_gpu = {E / R + 2}}, .num_experts = E};
  problem.layers.push_back(gem::layer_loads{.mean = c.counts, .steps = {c.counts}});
  std::vector<double> factors;
  for (int r = 0; r < R; ++r) factors.push_back(1.0 + 0.25 * r);
  const gem::scaled<gem::uniform> speeds(gem::uniform{.seconds_per_row = 1e-6, .seconds_per_active_expert = 5e-6}, factors);
  std::vector<std::pair<std::string, gem::placement>> placements;
  placements.emplace_back("eplb", gem::eplb{}.place(problem, speeds));
  placements.emplace_back("gem extended", gem::gem_search{.mode = gem::slot_mode::extended}.place(problem, speeds));
  placements.emplace_back("hand-made", hand_made(R, E));

  // Whole GPUs, then the last GPU restricted to about 3/4 of its SMs (a slower GPU's emulation).
  for (const bool restricted : {false, true}) {
    CAPTURE(restricted);
    std::vector<gc::exec_device> devices;
    for (int r = 0; r < R; ++r) {
      if (restricted && r == R - 1) {
        try {
          const auto rules = gc::partition_rules(r);
          const auto align = std::max(rules.alignment, 1);
          const auto sms = std::max(rules.min_partition, rules.sm_count * 3 / 4 / align * align);
          devices.push_back(std::move(gc::split_device(r, {.sm_counts = {sms}})[0]));
          MESSAGE("rank " << r << ": " << devices.back().name());
          continue;
        } catch (const gem::error& e) {
          MESSAGE("no partition of GPU " << r << " (" << e.what() << "): whole GPU");
        }
      }
      devices.push_back(gc::whole_gpu(r));
    }
    const ex::ep_comms comms(devices);
    for (const auto& [name, pl] : placements) {
      CAPTURE(name);
      ex::ep_layer layer(devices, comms, pl, gem::layer_id{0}, shape, bank);
      layer.stage(c.ids, c.w, T, xb);
      for (int rep = 0; rep < 2; ++rep) {  // a second run of the same step: nothing left over
        const auto t = layer.run_step();
        REQUIRE(t.device_seconds.size() == static_cast<std::size_t>(R));
        std::int32_t rows = 0;
        for (auto r : t.device_rows) rows += r;
        CHECK(rows == T * K);  // every routed row reached an expert once
        CHECK(t.latency == doctest::Approx(*std::max_element(t.device_seconds.begin(), t.device_seconds.end())));
        CHECK(t.dispatch > 0);
        CHECK(t.combine > 0);
        const auto got = layer.output();
        std::vector<std::uint16_t> bits(got.size());
        std::memcpy(bits.data(), got.data(), got.size() * 2);
        CHECK(relative_l2(bits, single) < 1e-2);
        CHECK(relative_l2(bits, c.ref) < 1e-2);
      }
    }
  }

  // Bad input: a step that does not fit, nothing staged, ids outside [0, E); then a good step.
  std::vector<gc::exec_device> devices;
  for (int r = 0; r < R; ++r) devices.push_back(gc::whole_gpu(r));
  const ex::ep_comms comms(devices);
  ex::ep_layer layer(devices, comms, placements[0].second, gem::layer_id{0}, shape, bank);
  CHECK_THROWS_AS(layer.run_step(), gem::config_error);
  CHECK_THROWS_AS(layer.stage(c.ids, c.w, T + 1, xb), gem::config_error);
  CHECK_THROWS_AS(layer.stage(std::span(c.ids).first(10), c.w, T, xb), gem::config_error);
  auto bad = c.ids;
  bad[5] = E;
  bad[17] = -1;
  layer.stage(bad, c.w, T, xb);
  CHECK_THROWS_AS((void)layer.run_step(), gem::placement_error);
  layer.stage(c.ids, c.w, T, xb);
  (void)layer.run_step();
  const auto got = layer.output();
  std::vector<std::uint16_t> bits(got.size());
  std::memcpy(bits.data(), got.data(), got.size() * 2);
  CHECK(relative_l2(bits, single) < 1e-2);
  CHECK_THROWS_AS(ex::ep_layer(std::span<const gc::exec_device>(devices).first(R - 1), comms, placements[0].second,
                               gem::layer_id{0}, shape, bank),
                  gem::config_error);
}
#endif
