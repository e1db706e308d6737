// Tests of gem/cuda/permute.cuh: the gather is an exact row copy with zero padding rows, combine
// matches a float64 reference (weights, residual, invalid ids), the round trip is bit-exact, and the
// whole route-permute-combine sequence replays from a CUDA graph.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/cuda_test_util.cuh"
#include "gem/cuda/permute.cuh"
#include "gem/cuda/routing.cuh"

namespace {

using gem::test::bf16_bits_to_float;
using gem::test::device_buffer;
using gem::test::float_to_bf16_bits;
namespace gc = gem::cuda;

std::vector<std::uint16_t> random_bf16(std::mt19937_64& rng, std::size_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) x = float_to_bf16_bits(d(rng));
  return v;
}

std::vector<std::int32_t> random_ids(std::mt19937_64& rng, std::int32_t T, std::int32_t k, std::int32_t E) {
  std::uniform_int_distribution<std::int32_t> pick(0, E - 1);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(T) * k);
  for (std::int32_t t = 0; t < T; ++t)
    for (std::int32_t j = 0; j < k; ++j) {
      std::int32_t e;
      bool dup;
      do {
        e = pick(rng);
        dup = false;
        for (std::int32_t i = 0; i < j; ++i) dup |= ids[static_cast<std::size_t>(t * k + i)] == e;
      } while (dup && k <= E);
      ids[static_cast<std::size_t>(t * k + j)] = e;
    }
  return ids;
}

struct routed {
  gc::routing_config cfg;
  device_buffer<unsigned char> ws;
  gc::routing_layout layout;
  device_buffer<std::int32_t> ids;
};

routed route(const gc::routing_config& cfg, const std::vector<std::int32_t>& ids) {
  routed r{cfg, device_buffer<unsigned char>(gc::routing_workspace_size(cfg)), {}, device_buffer<std::int32_t>(ids)};
  REQUIRE(gc::bind_routing_layout(cfg, r.ws.get(), r.ws.size(), &r.layout).ok());
  REQUIRE(gc::routing_layout_async(cfg, r.ids.get(), nullptr, r.layout, nullptr).ok());
  return r;
}

std::vector<std::int32_t> dl(const std::int32_t* p, std::size_t n) {
  std::vector<std::int32_t> v(n);
  gem::test::cuda_check(cudaMemcpy(v.data(), p, n * 4, cudaMemcpyDeviceToHost), "download");
  return v;
}

}  // namespace

TEST_CASE("permute copies each token row to its permuted rows exactly and zeroes padding rows") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(21);
  struct shape {
    std::int32_t T, k, E, H, tile;
    bool invalid;  // some ids out of range: their assignments are not copied anywhere
  };
  // permute_async, the token gather with other column runs and the destination-warp gather on
  // every shape: few tokens split each row into runs (1 and 64 blocks per SM give other splits, a
  // last run shorter than the others at H = 7168 and 1408) and, for 1-5 tokens, spread their
  // destinations over blocks; H = 24 is less than one vector per thread; k = 12 more destinations
  // than the kernels unroll (and than a block has warps); tile_rows > 1 pads groups, whose rows must
  // come out zero. T = 128 at H = 7168 is where permute_async takes the destination-warp gather.
  for (const auto& s : {shape{1, 8, 64, 2048, 1, false}, shape{5, 2, 8, 4096, 16, false},
                        shape{128, 8, 64, 7168, 4, true},
                        shape{300, 8, 64, 7168, 8, true}, shape{1000, 6, 64, 1408, 1, false},
                        shape{64, 4, 16, 24, 4, true}, shape{16, 12, 32, 7168, 1, true},
                        shape{1100, 6, 64, 512, 8, true}}) {
    CAPTURE(s.T);
    CAPTURE(s.H);
    const gc::routing_config cfg{.num_tokens = s.T, .top_k = s.k, .num_experts = s.E, .tile_rows = s.tile};
    auto ids = random_ids(rng, s.T, s.k, s.E);
    if (s.invalid)
      for (std::size_t i = 2; i < ids.size(); i += 13) ids[i] = i % 2 ? -1 : s.E + 3;
    auto r = route(cfg, ids);
    const auto x = random_bf16(rng, static_cast<std::size_t>(s.T) * s.H);
    device_buffer<std::uint16_t> d_x(x);
    device_buffer<std::uint16_t> d_out(static_cast<std::size_t>(cfg.capacity_rows()) * s.H);
    const auto p2s = dl(r.layout.perm_to_src, static_cast<std::size_t>(cfg.capacity_rows()));
    const auto used = dl(r.layout.group_offsets + cfg.num_groups(), 1)[0];
    for (const int blocks_per_sm : {0, -1, 1, 64}) {  // 0: permute_async; -1: destination-warp gather
      CAPTURE(blocks_per_sm);
      d_out.poison(0xff);
      if (blocks_per_sm == 0)
        REQUIRE(gc::permute_async(r.layout, s.k, d_x.get(), s.H * 2, d_out.get(), nullptr).ok());
      else if (blocks_per_sm < 0)
        REQUIRE(gc::detail::launch_permute_dest_warps(r.layout, s.k, d_x.get(), s.H / 8, d_out.get(), nullptr) ==
                cudaSuccess);
      else
        REQUIRE(gc::detail::launch_permute_tokens(r.layout, s.k, d_x.get(), s.H / 8, d_out.get(), nullptr,
                                                  blocks_per_sm) == cudaSuccess);
      const auto out = d_out.download();
      bool all_ok = true;
      for (std::int32_t row = 0; row < cfg.capacity_rows(); ++row) {
        const auto src = p2s[static_cast<std::size_t>(row)];
        for (std::int32_t h = 0; h < s.H; ++h) {
          const auto got = out[static_cast<std::size_t>(row) * s.H + h];
          std::uint16_t want;
          if (row >= used) want = 0xffff;  // untouched
          else if (src < 0) want = 0;
          else want = x[static_cast<std::size_t>(src / s.k) * s.H + h];
          all_ok &= got == want;
        }
      }
      CHECK(all_ok);
    }
  }
}

TEST_CASE("combine matches a float64 weighted sum with residual and skips invalid ids") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  struct shape {
    std::int32_t T, k, E, H;
    bool residual;
  };
  for (const auto& s : {shape{1, 8, 64, 2048, false}, shape{37, 2, 8, 4096, true}, shape{256, 6, 64, 1408, true},
                        shape{128, 5, 16, 8, false}}) {
    CAPTURE(s.T);
    CAPTURE(s.H);
    const gc::routing_config cfg{.num_tokens = s.T, .top_k = s.k, .num_experts = s.E, .tile_rows = 1};
    auto ids = random_ids(rng, s.T, s.k, s.E);
    for (std::size_t i = 3; i < ids.size(); i += 17) ids[i] = -7;  // out of range
    auto r = route(cfg, ids);
    std::uniform_real_distribution<float> uw(-1.0f, 1.0f);
    std::vector<float> w(ids.size());
    for (auto& v : w) v = uw(rng);
    const auto y = random_bf16(rng, static_cast<std::size_t>(cfg.capacity_rows()) * s.H);
    const auto res = random_bf16(rng, static_cast<std::size_t>(s.T) * s.H);
    device_buffer<std::uint16_t> d_y(y), d_res(res), d_out(static_cast<std::size_t>(s.T) * s.H);
    device_buffer<float> d_w(w);
    d_out.poison(0xff);
    REQUIRE(gc::combine_async(r.layout, s.T, s.k, d_w.get(), reinterpret_cast<const gc::bf16*>(d_y.get()), s.H,
                              s.residual ? reinterpret_cast<const gc::bf16*>(d_res.get()) : nullptr,
                              reinterpret_cast<gc::bf16*>(d_out.get()), nullptr)
                .ok());
    const auto out = d_out.download();
    const auto s2p = dl(r.layout.src_to_perm, ids.size());
    double err = 0.0, norm = 0.0;
    bool finite = true;
    for (std::int32_t t = 0; t < s.T; ++t)
      for (std::int32_t h = 0; h < s.H; ++h) {
        double ref = s.residual ? bf16_bits_to_float(res[static_cast<std::size_t>(t) * s.H + h]) : 0.0;
        for (std::int32_t j = 0; j < s.k; ++j) {
          const auto i = static_cast<std::size_t>(t * s.k + j);
          if (ids[i] < 0) continue;
          ref += static_cast<double>(w[i]) * bf16_bits_to_float(y[static_cast<std::size_t>(s2p[i]) * s.H + h]);
        }
        const double got = bf16_bits_to_float(out[static_cast<std::size_t>(t) * s.H + h]);
        finite &= std::isfinite(got);
        err += (got - ref) * (got - ref);
        norm += ref * ref;
      }
    CHECK(finite);
    CHECK(std::sqrt(err / norm) <= 4e-3);  // one bf16 rounding of the output
  }
}

TEST_CASE("permute then combine with an identity expert and exact weights gives x back bit for bit") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(99);
  for (const std::int32_t k : {1, 2, 4, 8}) {
    const std::int32_t T = 200, E = 32, H = 2048;
    CAPTURE(k);
    const gc::routing_config cfg{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 8};
    auto r = route(cfg, random_ids(rng, T, k, E));
    const auto x = random_bf16(rng, static_cast<std::size_t>(T) * H);
    device_buffer<std::uint16_t> d_x(x), d_xp(static_cast<std::size_t>(cfg.capacity_rows()) * H),
        d_out(static_cast<std::size_t>(T) * H);
    // weights 1/k (exact in fp32 for powers of two), and one-hot weights
    std::vector<float> w_avg(static_cast<std::size_t>(T) * k, 1.0f / static_cast<float>(k));
    std::vector<float> w_hot(static_cast<std::size_t>(T) * k, 0.0f);
    std::uniform_int_distribution<std::int32_t> which(0, k - 1);
    for (std::int32_t t = 0; t < T; ++t) w_hot[static_cast<std::size_t>(t * k + which(rng))] = 1.0f;
    for (const auto* w : {&w_avg, &w_hot}) {
      device_buffer<float> d_w(*w);
      d_out.poison(0xff);
      REQUIRE(gc::permute_async(r.layout, k, d_x.get(), H * 2, d_xp.get(), nullptr).ok());
      REQUIRE(gc::combine_async(r.layout, T, k, d_w.get(), reinterpret_cast<const gc::bf16*>(d_xp.get()), H, nullptr,
                                reinterpret_cast<gc::bf16*>(d_out.get()), nullptr)
                  .ok());
      CHECK(d_out.download() == x);
    }
  }
}

TEST_CASE("route, permute and combine captured in a CUDA graph replay on new ids") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(42);
  const std::int32_t T = 96, k = 2, E = 16, H = 512;
  const gc::routing_config cfg{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 16};
  device_buffer<unsigned char> ws(gc::routing_workspace_size(cfg));
  gc::routing_layout layout;
  REQUIRE(gc::bind_routing_layout(cfg, ws.get(), ws.size(), &layout).ok());
  device_buffer<std::int32_t> d_ids(static_cast<std::size_t>(T) * k);
  const auto x = random_bf16(rng, static_cast<std::size_t>(T) * H);
  device_buffer<std::uint16_t> d_x(x), d_xp(static_cast<std::size_t>(cfg.capacity_rows()) * H),
      d_out(static_cast<std::size_t>(T) * H);
  std::vector<float> w(static_cast<std::size_t>(T) * k, 0.5f);
  device_buffer<float> d_w(w);
  cudaStream_t s;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  cudaGraph_t graph;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  const bool a = gc::routing_layout_async(cfg, d_ids.get(), d_w.get(), layout, s).ok();
  const bool b = gc::permute_async(layout, k, d_x.get(), H * 2, d_xp.get(), s).ok();
  const bool c = gc::combine_async(layout, T, k, d_w.get(), reinterpret_cast<const gc::bf16*>(d_xp.get()), H,
                                   nullptr, reinterpret_cast<gc::bf16*>(d_out.get()), s)
                     .ok();
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE((a && b && c));
  cudaGraphExec_t exec;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  for (int step = 0; step < 3; ++step) {
    d_ids.upload(random_ids(rng, T, k, E));
    d_out.poison(0xff);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(d_out.download() == x);
  }
  (void)cudaGraphExecDestroy(exec);
  (void)cudaGraphDestroy(graph);
  (void)cudaStreamDestroy(s);
}

TEST_CASE("permute and combine refuse misaligned rows") {
  gc::routing_layout layout{};
  layout.perm_to_src = reinterpret_cast<std::int32_t*>(256);
  layout.src_to_perm = reinterpret_cast<std::int32_t*>(256);
  layout.num_assignments = 8;
  const auto* p = reinterpret_cast<const gc::bf16*>(256);
  auto* q = reinterpret_cast<gc::bf16*>(512);
  CHECK(gc::can_implement_permute(layout, 24, p, q).code == gc::status_code::invalid_argument);
  CHECK(gc::can_implement_permute(layout, 32, p, q).ok());
  CHECK(gc::can_implement_permute(layout, 32, reinterpret_cast<const char*>(p) + 2, q).code ==
        gc::status_code::invalid_argument);
  CHECK(gc::can_implement_combine(layout, 4, 2, 12, p, nullptr, q).code == gc::status_code::invalid_argument);
  CHECK(gc::can_implement_combine(layout, 4, 2, 16, p, nullptr, q).ok());
  CHECK(gc::can_implement_combine(layout, 4, 3, 16, p, nullptr, q).code == gc::status_code::invalid_argument);
}
