// Tests of gem/cuda/grouped_gemm.cuh: every path of the grouped GEMM and of the expert FFN against
// a float64 CPU reference on fresh random inputs, with skewed and empty groups, padded offsets,
// outputs poisoned before each run; the device path replayed from a CUDA graph on new counts.
#include <doctest/doctest.h>

#include <cublas_v2.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/cuda_test_util.cuh"
#include "gem/cuda/grouped_gemm.cuh"

namespace {

using gem::test::bf16_bits_to_float;
using gem::test::device_buffer;
using gem::test::float_to_bf16_bits;
namespace gc = gem::cuda;

std::vector<std::uint16_t> random_bf16(std::mt19937_64& rng, std::size_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) x = float_to_bf16_bits(d(rng));
  return v;
}

struct groups {
  std::vector<std::int32_t> counts, offsets;  // offsets [G+1], padded to `tile`
  std::int32_t capacity = 0;
};

groups make_groups(const std::vector<std::int32_t>& counts, std::int32_t tile) {
  groups g{counts, {}, 0};
  std::int32_t off = 0;
  for (auto c : counts) {
    g.offsets.push_back(off);
    off += (c + tile - 1) / tile * tile;
  }
  g.offsets.push_back(off);
  g.capacity = off + 3;  // a few rows outside every group: must stay untouched
  return g;
}

/// Skewed counts: about a third of the groups empty, one hot group.
std::vector<std::int32_t> skewed_counts(std::mt19937_64& rng, std::int32_t G, std::int32_t max_rows, std::int32_t hot) {
  std::uniform_int_distribution<std::int32_t> c(0, max_rows);
  std::bernoulli_distribution empty(0.33);
  std::vector<std::int32_t> v(static_cast<std::size_t>(G));
  for (auto& x : v) x = empty(rng) ? 0 : c(rng);
  v[static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(G))] = hot;
  return v;
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

struct check_result {
  double rel_err = 0.0;
  bool written = true;    // every row of every group finite
  bool untouched = true;  // rows outside the groups still poisoned
};

/// Compares y ([capacity][n] bf16 bits, poisoned with 0xffff) against ref rows of each group.
/// `rooms_written`: the padding rows of each active group's room may be written (bucketed path).
check_result compare(const groups& g, std::int32_t n, const std::vector<std::uint16_t>& y,
                     const std::vector<double>& ref, bool rooms_written = false) {
  check_result r;
  std::vector<char> in_group(static_cast<std::size_t>(g.capacity), 0);
  if (rooms_written)
    for (std::size_t e = 0; e < g.counts.size(); ++e)
      if (g.counts[e] > 0)
        for (auto row = g.offsets[e]; row < g.offsets[e + 1]; ++row) in_group[static_cast<std::size_t>(row)] = 1;
  double err = 0.0, norm = 0.0;
  for (std::size_t e = 0; e < g.counts.size(); ++e)
    for (std::int32_t i = 0; i < g.counts[e]; ++i) {
      const auto row = static_cast<std::size_t>(g.offsets[e] + i);
      in_group[row] = 1;
      for (std::int32_t c = 0; c < n; ++c) {
        const double got = bf16_bits_to_float(y[row * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)]);
        const double want = ref[row * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)];
        r.written &= std::isfinite(got);
        err += (got - want) * (got - want);
        norm += want * want;
      }
    }
  for (std::size_t row = 0; row < in_group.size(); ++row)
    if (!in_group[row])
      for (std::int32_t c = 0; c < n; ++c) r.untouched &= y[row * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)] == 0xffff;
  r.rel_err = norm > 0 ? std::sqrt(err / norm) : 0.0;
  return r;
}

/// ref[row][c] = sum_k x[row][k] * w[g][c][k] in float64, for the rows of each group.
std::vector<double> gemm_reference(const groups& g, std::int32_t n, std::int32_t k, const std::vector<std::uint16_t>& x,
                                   const std::vector<std::uint16_t>& w) {
  std::vector<double> ref(static_cast<std::size_t>(g.capacity) * n, 0.0);
  std::vector<double> xf(x.size()), wf(w.size());
  for (std::size_t i = 0; i < x.size(); ++i) xf[i] = bf16_bits_to_float(x[i]);
  for (std::size_t i = 0; i < w.size(); ++i) wf[i] = bf16_bits_to_float(w[i]);
  for (std::size_t e = 0; e < g.counts.size(); ++e)
    for (std::int32_t i = 0; i < g.counts[e]; ++i) {
      const auto row = static_cast<std::size_t>(g.offsets[e] + i);
      for (std::int32_t c = 0; c < n; ++c) {
        double s = 0.0;
        const double* wr = &wf[(e * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)) * static_cast<std::size_t>(k)];
        const double* xr = &xf[row * static_cast<std::size_t>(k)];
        for (std::int32_t q = 0; q < k; ++q) s += xr[q] * wr[q];
        ref[row * static_cast<std::size_t>(n) + static_cast<std::size_t>(c)] = s;
      }
    }
  return ref;
}

struct cublas_handle {
  cublasHandle_t h = nullptr;
  cublas_handle() { REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS); }
  ~cublas_handle() { (void)cublasDestroy(h); }
};

const gc::gemm_path all_paths[] = {gc::gemm_path::device_counts, gc::gemm_path::per_group, gc::gemm_path::grouped,
                                   gc::gemm_path::bucketed,      gc::gemm_path::chunked,   gc::gemm_path::automatic};

}  // namespace

// the chunked path's cut: chunks of 128 rows, below that of the largest power of two that fits
static_assert(gc::detail::chunk_rows_for(1) == 1 && gc::detail::chunk_rows_for(3) == 2 &&
              gc::detail::chunk_rows_for(127) == 64 && gc::detail::chunk_rows_for(128) == 128 &&
              gc::detail::chunk_rows_for(1000) == 128);
static_assert(gc::detail::chunk_class(128) == 0 && gc::detail::chunk_class(64) == 1 && gc::detail::chunk_class(1) == 7);

TEST_CASE("every grouped GEMM path matches a float64 reference on skewed and empty groups") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(1234);
  cublas_handle handle;
  struct shape {
    std::int32_t G, n, k, max_rows, hot, tile, rows_hint;
  };
  gc::cublas_workers workers(2);
  // K = 512, 256, 1024, 2048 exercise every K split of the device kernel; n = 48 a partial column
  // block; rows_hint 32 and 64 its 32- and 64-row passes (one warp per column tile; n = 96 and 144
  // leave part of the 128-column block empty), and the hot groups several passes of each size.
  for (const auto& s : {shape{8, 256, 512, 3, 1, 1, 8}, shape{16, 128, 256, 12, 40, 8, 16},
                        shape{32, 64, 1024, 20, 150, 16, 8}, shape{4, 512, 256, 0, 300, 1, 8},
                        shape{6, 48, 2048, 5, 9, 1, 8}, shape{8, 48, 256, 4, 2, 4, 8},
                        shape{12, 96, 512, 30, 70, 1, 32}, shape{8, 144, 768, 60, 130, 4, 64},
                        shape{6, 256, 1024, 40, 33, 1, 64}}) {
    const auto g = make_groups(skewed_counts(rng, s.G, s.max_rows, s.hot), s.tile);
    const auto x = random_bf16(rng, static_cast<std::size_t>(g.capacity) * s.k, 1.0f);
    const auto w = random_bf16(rng, static_cast<std::size_t>(s.G) * s.n * s.k, 1.0f / std::sqrt(static_cast<float>(s.k)));
    const auto ref = gemm_reference(g, s.n, s.k, x, w);
    device_buffer<std::uint16_t> d_x(x), d_w(w), d_y(static_cast<std::size_t>(g.capacity) * s.n);
    device_buffer<std::int32_t> d_counts(g.counts), d_offsets(g.offsets);
    gc::grouped_gemm_problem p{.num_groups = s.G, .n = s.n, .k = s.k, .capacity_rows = g.capacity,
                               .x = reinterpret_cast<const gc::bf16*>(d_x.get()),
                               .w = reinterpret_cast<const gc::bf16*>(d_w.get()),
                               .y = reinterpret_cast<gc::bf16*>(d_y.get()), .counts = d_counts.get(),
                               .offsets = d_offsets.get(), .rows_hint = s.rows_hint};
    const gc::host_group_sizes sizes{g.counts, g.offsets};
    for (const auto path : all_paths) {
      for (const std::int32_t variant : {0, 1}) {
        // variant 1: the device path told the exact number of active groups and given no host
        // sizes (its passes then follow rows_hint, not the largest group); per_group fanned out
        if (variant && path != gc::gemm_path::device_counts && path != gc::gemm_path::per_group) continue;
        const std::int32_t max_active = variant && path == gc::gemm_path::device_counts ? 3 : 0;
        const auto ctx = variant && path == gc::gemm_path::per_group ? workers.context() : gc::cublas_context{handle.h};
        CAPTURE(s.G);
        CAPTURE(s.n);
        CAPTURE(s.k);
        CAPTURE(variant);
        CAPTURE(gc::to_string(path));
        REQUIRE(gc::can_implement(p, path).ok());
        p.max_active_groups = max_active ? static_cast<std::int32_t>(std::count_if(g.counts.begin(), g.counts.end(),
                                                                                   [](auto c) { return c > 0; }))
                                         : 0;
        device_buffer<unsigned char> ws(gc::grouped_gemm_workspace_size(p, path) + 1);
        d_y.poison(0xff);
        const bool no_sizes = variant && path == gc::gemm_path::device_counts;
        REQUIRE(gc::grouped_gemm_async(p, path, no_sizes ? gc::host_group_sizes{} : sizes, ctx, ws.get(), ws.size(),
                                       nullptr)
                    .ok());
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        const bool rooms = path == gc::gemm_path::bucketed ||
                           (path == gc::gemm_path::automatic && gc::choose_gemm_path(p, sizes) == gc::gemm_path::bucketed);
        const auto y = d_y.download();
        const auto r = compare(g, s.n, y, ref, rooms);
        CHECK(r.written);
        CHECK(r.untouched);
        CHECK(r.rel_err <= 1e-2);
        // the same bytes again (the chunked path writes overlapping rows twice: with the same values)
        d_y.poison(0xff);
        REQUIRE(gc::grouped_gemm_async(p, path, no_sizes ? gc::host_group_sizes{} : sizes, ctx, ws.get(), ws.size(),
                                       nullptr)
                    .ok());
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(d_y.download() == y);
      }
    }
  }
}

TEST_CASE("every expert FFN path matches a float64 reference") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(77);
  cublas_handle handle;
  gc::cublas_workers workers(3);
  const std::int32_t G = 8;
  struct ffn_case {
    std::int32_t H, I;
    std::vector<std::int32_t> counts;
  };
  const ffn_case cases[] = {{256, 128, {1, 0, 0, 2, 0, 1, 1, 0}}, {256, 128, skewed_counts(rng, G, 30, 70)},
                            {1024, 256, {0, 3, 0, 0, 1, 0, 40, 2}}, {512, 160, skewed_counts(rng, G, 25, 20)},
                            {768, 96, {12, 0, 9, 16, 0, 3, 11, 0}}};  // 9-16 rows: the gated 16-row passes
  for (const auto& [H, I, counts] : cases) {
    const auto g = make_groups(counts, 4);
    const auto x = random_bf16(rng, static_cast<std::size_t>(g.capacity) * H, 1.0f);
    const auto w13 = random_bf16(rng, static_cast<std::size_t>(G) * 2 * I * H, 1.0f / std::sqrt(static_cast<float>(H)));
    const auto w2 = random_bf16(rng, static_cast<std::size_t>(G) * H * I, 1.0f / std::sqrt(static_cast<float>(I)));
    // float64 reference: h = x·w13^T, act = silu(gate) * up, y = act·w2^T
    const auto h = gemm_reference(g, 2 * I, H, x, w13);
    std::vector<std::uint16_t> act_bits(static_cast<std::size_t>(g.capacity) * I, 0);
    std::vector<double> act(static_cast<std::size_t>(g.capacity) * I, 0.0);
    for (std::int32_t r = 0; r < g.capacity; ++r)
      for (std::int32_t i = 0; i < I; ++i)
        act[static_cast<std::size_t>(r) * I + i] =
            silu(h[static_cast<std::size_t>(r) * 2 * I + i]) * h[static_cast<std::size_t>(r) * 2 * I + I + i];
    // y = act · w2^T (act kept in float64)
    std::vector<double> ref(static_cast<std::size_t>(g.capacity) * H, 0.0);
    for (std::size_t e = 0; e < counts.size(); ++e)
      for (std::int32_t q = 0; q < counts[e]; ++q) {
        const auto row = static_cast<std::size_t>(g.offsets[e] + q);
        for (std::int32_t c = 0; c < H; ++c) {
          double s = 0.0;
          for (std::int32_t i = 0; i < I; ++i)
            s += act[row * I + static_cast<std::size_t>(i)] *
                 bf16_bits_to_float(w2[(e * H + static_cast<std::size_t>(c)) * I + static_cast<std::size_t>(i)]);
          ref[row * H + static_cast<std::size_t>(c)] = s;
        }
      }
    device_buffer<std::uint16_t> d_x(x), d_w13(w13), d_w2(w2), d_y(static_cast<std::size_t>(g.capacity) * H);
    device_buffer<std::int32_t> d_counts(g.counts), d_offsets(g.offsets);
    const gc::expert_ffn_problem f{.num_groups = G, .hidden = H, .inter = I, .capacity_rows = g.capacity,
                                   .x = reinterpret_cast<const gc::bf16*>(d_x.get()),
                                   .w13 = reinterpret_cast<const gc::bf16*>(d_w13.get()),
                                   .w2 = reinterpret_cast<const gc::bf16*>(d_w2.get()),
                                   .y = reinterpret_cast<gc::bf16*>(d_y.get()), .counts = d_counts.get(),
                                   .offsets = d_offsets.get(), .rows_hint = 16};
    for (const auto path : all_paths) {
      CAPTURE(gc::to_string(path));
      REQUIRE(gc::can_implement(f, path).ok());
      const auto bytes = std::max(gc::expert_ffn_workspace_size(f, path), gc::expert_ffn_workspace_size(f, gc::gemm_path::grouped));
      device_buffer<unsigned char> ws(bytes);
      // NaN everywhere (bf16 0xffff): a workspace row the gate/up GEMM failed to write would make
      // its output row NaN instead of passing on a stale value from the previous path's run.
      ws.poison(0xff);
      d_y.poison(0xff);
      REQUIRE(gc::expert_ffn_async(f, path, gc::host_group_sizes{g.counts, g.offsets},
                                   path == gc::gemm_path::per_group ? workers.context() : gc::cublas_context{handle.h},
                                   ws.get(), bytes, nullptr)
                  .ok());
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      const gc::grouped_gemm_problem gate_up{.num_groups = G, .n = 2 * I, .k = H};
      const bool rooms = path == gc::gemm_path::bucketed ||
                         (path == gc::gemm_path::automatic &&
                          gc::choose_gemm_path(gate_up, {g.counts, g.offsets}) == gc::gemm_path::bucketed);
      const auto r = compare(g, H, d_y.download(), ref, rooms);
      CHECK(r.written);
      CHECK(r.untouched);
      CHECK(r.rel_err <= 1e-2);
    }
  }
}

TEST_CASE("the device-count FFN path captured in a CUDA graph follows new counts on replay") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(8);
  const std::int32_t G = 16, H = 128, I = 64, T = 4, k = 2;
  const std::int32_t capacity = T * k;  // unpadded layout of T*k assignments
  const auto x = random_bf16(rng, static_cast<std::size_t>(capacity) * H, 1.0f);
  const auto w13 = random_bf16(rng, static_cast<std::size_t>(G) * 2 * I * H, 0.1f);
  const auto w2 = random_bf16(rng, static_cast<std::size_t>(G) * H * I, 0.1f);
  device_buffer<std::uint16_t> d_x(x), d_w13(w13), d_w2(w2), d_y(static_cast<std::size_t>(capacity) * H);
  device_buffer<std::int32_t> d_counts(static_cast<std::size_t>(G)), d_offsets(static_cast<std::size_t>(G) + 1);
  const gc::expert_ffn_problem f{.num_groups = G, .hidden = H, .inter = I, .capacity_rows = capacity,
                                 .x = reinterpret_cast<const gc::bf16*>(d_x.get()),
                                 .w13 = reinterpret_cast<const gc::bf16*>(d_w13.get()),
                                 .w2 = reinterpret_cast<const gc::bf16*>(d_w2.get()),
                                 .y = reinterpret_cast<gc::bf16*>(d_y.get()), .counts = d_counts.get(),
                                 .offsets = d_offsets.get(), .rows_hint = 8, .max_active_groups = capacity};
  const auto path = gc::gemm_path::device_counts;
  device_buffer<unsigned char> ws(gc::expert_ffn_workspace_size(f, path));
  cudaStream_t s;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  cudaGraph_t graph;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  const bool launched = gc::expert_ffn_async(f, path, {}, {}, ws.get(), ws.size(), s).ok();
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE(launched);
  cudaGraphExec_t exec;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  for (int step = 0; step < 3; ++step) {
    // T*k rows over G groups, at most T*k active
    std::vector<std::int32_t> counts(static_cast<std::size_t>(G), 0);
    for (std::int32_t i = 0; i < capacity; ++i) ++counts[rng() % static_cast<std::uint64_t>(G)];
    const auto g = make_groups(counts, 1);
    d_counts.upload(g.counts);
    d_offsets.upload(g.offsets);
    d_y.poison(0xff);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    // float64 reference
    const auto h = gemm_reference(groups{g.counts, g.offsets, capacity}, 2 * I, H, x, w13);
    std::vector<double> ref(static_cast<std::size_t>(capacity) * H, 0.0);
    for (std::size_t e = 0; e < counts.size(); ++e)
      for (std::int32_t q = 0; q < counts[e]; ++q) {
        const auto row = static_cast<std::size_t>(g.offsets[e] + q);
        for (std::int32_t c = 0; c < H; ++c) {
          double acc = 0.0;
          for (std::int32_t i = 0; i < I; ++i)
            acc += silu(h[row * 2 * I + static_cast<std::size_t>(i)]) * h[row * 2 * I + static_cast<std::size_t>(I + i)] *
                   bf16_bits_to_float(w2[(e * H + static_cast<std::size_t>(c)) * I + static_cast<std::size_t>(i)]);
          ref[row * H + static_cast<std::size_t>(c)] = acc;
        }
      }
    const auto r = compare(groups{g.counts, g.offsets, capacity}, H, d_y.download(), ref);
    CHECK(r.written);
    CHECK(r.rel_err <= 1e-2);
  }
  (void)cudaGraphExecDestroy(exec);
  (void)cudaGraphDestroy(graph);
  (void)cudaStreamDestroy(s);
}

TEST_CASE("a grouped GEMM the paths cannot run is refused before any launch") {
  alignas(16) static std::uint16_t buf[64];
  static std::int32_t ints[8];
  gc::grouped_gemm_problem p{.num_groups = 2, .n = 48, .k = 64, .capacity_rows = 4,
                             .x = reinterpret_cast<const gc::bf16*>(buf), .w = reinterpret_cast<const gc::bf16*>(buf),
                             .y = reinterpret_cast<gc::bf16*>(buf), .counts = ints, .offsets = ints};
  CHECK(gc::can_implement(p, gc::gemm_path::device_counts).ok());
  p.k = 48;  // not a multiple of 32: only the cuBLAS paths
  CHECK(gc::can_implement(p, gc::gemm_path::device_counts).code == gc::status_code::unsupported);
  CHECK(gc::can_implement(p, gc::gemm_path::per_group).ok());
  p.x = reinterpret_cast<const gc::bf16*>(reinterpret_cast<const char*>(buf) + 2);
  CHECK(gc::can_implement(p, gc::gemm_path::grouped).code == gc::status_code::invalid_argument);
  p.x = reinterpret_cast<const gc::bf16*>(buf);
  // host paths need the host sizes
  CHECK(gc::grouped_gemm_async(p, gc::gemm_path::per_group, {}, {}, nullptr, 0, nullptr).code ==
        gc::status_code::invalid_argument);
  // workspace too small for the grouped path
  const std::int32_t counts[2] = {1, 1}, offsets[3] = {0, 1, 2};
  CHECK(gc::grouped_gemm_async(p, gc::gemm_path::grouped, gc::host_group_sizes{counts, offsets}, {}, nullptr, 0,
                               nullptr)
            .code == gc::status_code::workspace_too_small);
  // the chunked path refuses host sizes that leave the rows: a group past capacity_rows, a negative
  // offset (the handle and workspace are never touched: the sizes are checked first)
  const std::int32_t two[2] = {2, 2}, past[3] = {0, 3, 5}, negative[3] = {-1, 1, 2};
  alignas(16) static unsigned char ws[4096];
  const gc::cublas_context any{reinterpret_cast<cublasHandle_t>(ws)};
  CHECK(gc::grouped_gemm_async(p, gc::gemm_path::chunked, gc::host_group_sizes{two, past}, any, ws, sizeof ws, nullptr)
            .code == gc::status_code::invalid_argument);
  CHECK(gc::grouped_gemm_async(p, gc::gemm_path::chunked, gc::host_group_sizes{counts, negative}, any, ws, sizeof ws,
                               nullptr)
            .code == gc::status_code::invalid_argument);
}

TEST_CASE("automatic picks the device kernel for few rows and cuBLAS for many") {
  const gc::grouped_gemm_problem p{.num_groups = 4, .n = 4096, .k = 4096};
  const std::vector<std::int32_t> few{1, 0, 3, 2}, many{2000, 3000, 0, 2500}, mid{20, 100, 0, 60};
  const std::vector<std::int32_t> off(5, 0);
  CHECK(gc::choose_gemm_path(p, {}) == gc::gemm_path::device_counts);
  CHECK(gc::choose_gemm_path(p, {few, off}) == gc::gemm_path::device_counts);
  CHECK(gc::choose_gemm_path(p, {many, off}) == gc::gemm_path::per_group);
  CHECK(gc::choose_gemm_path(p, {mid, off}) == gc::gemm_path::grouped);
  // 32 groups of ~300 rows: padded to 384-row rooms -> bucketed; unpadded (every room distinct) -> per_group
  const gc::grouped_gemm_problem q{.num_groups = 32, .n = 2048, .k = 2048};
  std::vector<std::int32_t> counts, padded{0}, tight{0};
  for (std::int32_t g = 0; g < 32; ++g) {
    counts.push_back(290 + g);
    padded.push_back(padded.back() + 384);
    tight.push_back(tight.back() + 290 + g);
  }
  CHECK(gc::choose_gemm_path(q, {counts, padded}) == gc::gemm_path::bucketed);
  CHECK(gc::choose_gemm_path(q, {counts, tight}) == gc::gemm_path::per_group);
  // ~64 rows per group: 80-row rooms (1.26x) -> bucketed; 192-row rooms (3x padding) -> grouped
  std::vector<std::int32_t> mid_counts, room80{0}, room192{0};
  for (std::int32_t g = 0; g < 32; ++g) {
    mid_counts.push_back(60 + g % 8);
    room80.push_back(room80.back() + 80);
    room192.push_back(room192.back() + 192);
  }
  CHECK(gc::choose_gemm_path(q, {mid_counts, room80}) == gc::gemm_path::bucketed);
  CHECK(gc::choose_gemm_path(q, {mid_counts, room192}) == gc::gemm_path::grouped);
  // unpadded ~64 rows in 128 groups (Qwen3 at T = 1024): ~30 distinct rooms are ~30 cuBLAS calls,
  // too many for bucketed even though every room is shared by 4+ groups -> grouped
  const gc::grouped_gemm_problem qwen{.num_groups = 128, .n = 1536, .k = 2048};
  std::vector<std::int32_t> near64, near64_off{0};
  for (std::int32_t g = 0; g < 128; ++g) {
    near64.push_back(50 + g % 30);
    near64_off.push_back(near64_off.back() + near64.back());
  }
  CHECK(gc::choose_gemm_path(qwen, {near64, near64_off}) == gc::gemm_path::grouped);
  // ~512 rows in 128 unpadded groups (Qwen3 at T = 8192): per group where a group's GEMM is long
  // enough to hide the host's cost per cuBLAS call (gate/up: 512 x 1536 x 2048 = 1.6e9
  // multiply-adds), the grouped call where it is not (down: 512 x 2048 x 768 = 0.8e9)
  std::vector<std::int32_t> near512, near512_off{0};
  for (std::int32_t g = 0; g < 128; ++g) {
    near512.push_back(490 + g % 45);
    near512_off.push_back(near512_off.back() + near512.back());
  }
  CHECK(gc::choose_gemm_path(qwen, {near512, near512_off}) == gc::gemm_path::per_group);
  const gc::grouped_gemm_problem qwen_down{.num_groups = 128, .n = 2048, .k = 768};
  CHECK(gc::choose_gemm_path(qwen_down, {near512, near512_off}) == gc::gemm_path::grouped);
  // up to 16 rows in the largest group: the device kernel; 17 or more: cuBLAS, whatever the mean
  std::vector<std::int32_t> small(32, 10), skew(32, 10), tight32{0};
  small[3] = 16;
  skew[5] = 17;
  for (std::int32_t g = 0; g < 32; ++g) tight32.push_back(tight32.back() + 32);
  CHECK(gc::choose_gemm_path(q, {small, tight32}) == gc::gemm_path::device_counts);
  CHECK(gc::choose_gemm_path(q, {skew, tight32}) == gc::gemm_path::grouped);
  // a few large experts past the device path (Mixtral T=128: 8 groups of ~40 rows, 235 MB each): per group
  const gc::grouped_gemm_problem mixtral{.num_groups = 8, .n = 2 * 14336, .k = 4096};
  const std::vector<std::int32_t> forty{40, 38, 45, 30, 36, 41, 29, 33}, off9(9, 0);
  CHECK(gc::choose_gemm_path(mixtral, {forty, off9}) == gc::gemm_path::per_group);
}
