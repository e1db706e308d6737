// Grouped expert GEMM and expert FFN on the GPU for five MoE shapes and T in {1, 16, 128, 1024,
// 8192}, each beside its anchors in the same run: one cublasGemmGroupedBatchedEx call and a
// per-expert cublasGemmEx loop (pointer and size arrays prepared outside the timed region), plus a
// large device-to-device copy (the bandwidth ceiling the memory-bound decode path is read against).
// torch._grouped_mm runs beside this program from grouped_mm_anchor.py on the same routings.
// Four routings rotate between calls so that weights are not served from L2 run after run.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "gem/cuda/grouped_gemm.cuh"
#include "gem/cuda/random_fill.cuh"

namespace {

using gem::bench::device_array;
namespace gc = gem::cuda;

struct model {
  const char* name;
  std::int32_t hidden, inter, experts, top_k;
};
const model models[] = {{"mixtral", 4096, 14336, 8, 2},
                        {"dsv3", 7168, 2048, 256, 8},
                        {"qwen3", 2048, 768, 128, 8},
                        {"olmoe", 2048, 1024, 64, 8},
                        {"dsv2lite", 2048, 1408, 64, 6}};
const std::int32_t token_counts[] = {1, 16, 128, 1024, 8192};
constexpr int routings = 4;

struct model_weights {
  device_array<gc::bf16> w13, w2;
};

model_weights& weights_of(const model& m) {
  static std::map<std::string, model_weights> cache;
  auto it = cache.find(m.name);
  if (it != cache.end()) return it->second;
  model_weights w{device_array<gc::bf16>(static_cast<std::size_t>(m.experts) * 2 * m.inter * m.hidden),
                  device_array<gc::bf16>(static_cast<std::size_t>(m.experts) * m.hidden * m.inter)};
  GEM_BENCH_OK(gc::fill_uniform_async(w.w13.p, w.w13.n, 11, -0.05f, 0.05f, nullptr));
  GEM_BENCH_OK(gc::fill_uniform_async(w.w2.p, w.w2.n, 12, -0.05f, 0.05f, nullptr));
  GEM_BENCH_CHECK(cudaDeviceSynchronize());
  return cache.emplace(m.name, std::move(w)).first->second;
}

/// gem's paths run with a handle and three side streams (per_group fans out over them).
const gc::cublas_context& gem_cublas() {
  static gc::cublas_workers workers(3);
  static const gc::cublas_context ctx = workers.context();
  return ctx;
}

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) std::abort();
    return x;
  }();
  return h;
}

enum class which { gate_up, down, ffn };
enum class variant {
  gem_auto,
  gem_device,
  gem_device32,
  gem_per_group,
  gem_chunked,
  gem_padded,
  gem_bucketed32,
  anchor_grouped,
  anchor_loop
};

/// One routing of T tokens: host and device counts and offsets (unpadded).
struct routing {
  std::vector<std::int32_t> counts, offsets;
  device_array<std::int32_t> d_counts, d_offsets;
  std::int32_t max_rows = 0, active = 0;
};

/// `pad`: each group's rows start at a multiple of it (a routing layout with tile_rows = pad).
std::vector<routing> make_routings(const model& m, std::int32_t T, std::int32_t pad = 1) {
  std::vector<routing> out;
  for (int r = 0; r < routings; ++r) {
    routing x;
    x.counts = gem::bench::count_ids(gem::bench::random_topk(100 + r, T, m.top_k, m.experts), m.experts);
    std::int32_t off = 0;
    for (auto c : x.counts) {
      x.offsets.push_back(off);
      off += (c + pad - 1) / pad * pad;
      x.max_rows = std::max(x.max_rows, c);
      x.active += c > 0;
    }
    x.offsets.push_back(off);
    x.d_counts = device_array<std::int32_t>(x.counts.size());
    x.d_offsets = device_array<std::int32_t>(x.offsets.size());
    x.d_counts.upload(x.counts);
    x.d_offsets.upload(x.offsets);
    out.push_back(std::move(x));
  }
  return out;
}

/// Direct cuBLAS grouped call, arrays prepared per routing outside the timed region.
struct grouped_anchor {
  std::vector<int> m, n, k, lda, ldc, one;
  std::vector<float> alpha, beta;
  std::vector<cublasOperation_t> ta, tb;
  device_array<const void*> a, b;
  device_array<void*> c;
  int count = 0;
  grouped_anchor(const routing& r, std::int32_t N, std::int32_t K, const gc::bf16* w, const gc::bf16* x, gc::bf16* y) {
    std::vector<const void*> ha, hb;
    std::vector<void*> hc;
    for (std::size_t e = 0; e < r.counts.size(); ++e) {
      if (r.counts[e] == 0) continue;
      m.push_back(r.counts[e]);
      ha.push_back(w + e * static_cast<std::size_t>(N) * K);
      hb.push_back(x + static_cast<std::size_t>(r.offsets[e]) * K);
      hc.push_back(y + static_cast<std::size_t>(r.offsets[e]) * N);
    }
    count = static_cast<int>(m.size());
    n.assign(m.size(), N);
    k.assign(m.size(), K);
    lda.assign(m.size(), K);
    ldc.assign(m.size(), N);
    one.assign(m.size(), 1);
    alpha.assign(m.size(), 1.0f);
    beta.assign(m.size(), 0.0f);
    ta.assign(m.size(), CUBLAS_OP_T);
    tb.assign(m.size(), CUBLAS_OP_N);
    a = device_array<const void*>(ha.size());
    b = device_array<const void*>(hb.size());
    c = device_array<void*>(hc.size());
    GEM_BENCH_CHECK(cudaMemcpy(a.p, ha.data(), ha.size() * sizeof(void*), cudaMemcpyHostToDevice));
    GEM_BENCH_CHECK(cudaMemcpy(b.p, hb.data(), hb.size() * sizeof(void*), cudaMemcpyHostToDevice));
    GEM_BENCH_CHECK(cudaMemcpy(c.p, hc.data(), hc.size() * sizeof(void*), cudaMemcpyHostToDevice));
  }
  void run() const {
    if (cublasGemmGroupedBatchedEx(handle(), ta.data(), tb.data(), n.data(), m.data(), k.data(), alpha.data(), a.p,
                                   CUDA_R_16BF, lda.data(), b.p, CUDA_R_16BF, lda.data(), beta.data(), c.p, CUDA_R_16BF,
                                   ldc.data(), count, one.data(), CUBLAS_COMPUTE_32F) != CUBLAS_STATUS_SUCCESS)
      std::abort();
  }
};

void loop_anchor(const routing& r, std::int32_t N, std::int32_t K, const gc::bf16* w, const gc::bf16* x, gc::bf16* y) {
  const float alpha = 1.0f, beta = 0.0f;
  for (std::size_t e = 0; e < r.counts.size(); ++e) {
    if (r.counts[e] == 0) continue;
    if (cublasGemmEx(handle(), CUBLAS_OP_T, CUBLAS_OP_N, N, r.counts[e], K, &alpha, w + e * static_cast<std::size_t>(N) * K,
                     CUDA_R_16BF, K, x + static_cast<std::size_t>(r.offsets[e]) * K, CUDA_R_16BF, K, &beta,
                     y + static_cast<std::size_t>(r.offsets[e]) * N, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
      std::abort();
  }
}

void bm_gemm(benchmark::State& state, model m, std::int32_t T, which wh, variant v) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  if (cublasSetStream(handle(), s) != CUBLAS_STATUS_SUCCESS) std::abort();
  auto& w = weights_of(m);
  constexpr std::int32_t pad = 128;  // gem_padded: the layout a routing_config{.tile_rows = 128} gives
  const std::int32_t tile = v == variant::gem_padded ? pad : v == variant::gem_bucketed32 ? 32 : 1;
  const auto rs = make_routings(m, T, tile);
  const std::int32_t rows = T * m.top_k + m.experts * (tile - 1);
  const std::int32_t K = wh == which::down ? m.inter : m.hidden;
  const std::int32_t N = wh == which::gate_up ? 2 * m.inter : m.hidden;
  const gc::bf16* W = wh == which::down ? w.w2.p : w.w13.p;
  device_array<gc::bf16> x(static_cast<std::size_t>(rows) * K), y(static_cast<std::size_t>(rows) * N);
  const double useful_rows = static_cast<double>(T) * m.top_k;
  GEM_BENCH_OK(gc::fill_uniform_async(x.p, x.n, 13, -1.0f, 1.0f, s));
  std::int32_t hint = 0, max_active = std::min(m.experts, T * m.top_k);
  double active = 0;
  for (const auto& r : rs) {
    hint = std::max(hint, r.max_rows);
    active += r.active / static_cast<double>(routings);
  }
  const int reps = T <= 128 ? 8 : 1;
  gc::gemm_path chosen = gc::gemm_path::device_counts;
  if (wh == which::ffn) {
    std::vector<gc::expert_ffn_problem> fs;
    for (const auto& r : rs)
      fs.push_back({.num_groups = m.experts, .hidden = m.hidden, .inter = m.inter, .capacity_rows = rows, .x = x.p,
                    .w13 = w.w13.p, .w2 = w.w2.p, .y = y.p, .counts = r.d_counts.p, .offsets = r.d_offsets.p,
                    .rows_hint = hint, .max_active_groups = max_active});
    const auto path =
        v == variant::gem_device || v == variant::gem_device32 ? gc::gemm_path::device_counts : gc::gemm_path::automatic;
    if (v == variant::gem_device32)  // 32-row passes whatever the sizes: no host sizes, rows_hint 32
      for (auto& f : fs) f.rows_hint = 32;
    device_array<unsigned char> ws(gc::expert_ffn_workspace_size(fs[0], gc::gemm_path::automatic));
    chosen = path == gc::gemm_path::automatic
                 ? gc::choose_gemm_path({.n = 2 * m.inter, .k = m.hidden}, {rs[0].counts, rs[0].offsets})
                 : path;
    gem::bench::time_calls(state, s, reps, [&](int i) {
      const auto& r = rs[static_cast<std::size_t>(i % routings)];
      const gc::host_group_sizes sizes = v == variant::gem_device32 ? gc::host_group_sizes{} : gc::host_group_sizes{r.counts, r.offsets};
      GEM_BENCH_OK(gc::expert_ffn_async(fs[static_cast<std::size_t>(i % routings)], path, sizes, gem_cublas(), ws.p, ws.n, s));
    });
    state.counters["flops"] = 2.0 * useful_rows * 3.0 * m.inter * m.hidden;
    state.counters["weight_bytes"] = active * 3.0 * m.inter * m.hidden * 2;
  } else {
    std::vector<gc::grouped_gemm_problem> ps;
    for (const auto& r : rs)
      ps.push_back({.num_groups = m.experts, .n = N, .k = K, .capacity_rows = rows, .x = x.p, .w = W, .y = y.p,
                    .counts = r.d_counts.p, .offsets = r.d_offsets.p, .rows_hint = hint, .max_active_groups = max_active});
    device_array<unsigned char> ws(gc::grouped_gemm_workspace_size(ps[0], gc::gemm_path::chunked));  // the most
    if (v == variant::gem_auto || v == variant::gem_device || v == variant::gem_device32 || v == variant::gem_per_group ||
        v == variant::gem_chunked || v == variant::gem_padded || v == variant::gem_bucketed32) {
      const auto path = v == variant::gem_device || v == variant::gem_device32 ? gc::gemm_path::device_counts
                        : v == variant::gem_per_group  ? gc::gemm_path::per_group
                        : v == variant::gem_chunked    ? gc::gemm_path::chunked
                        : v == variant::gem_bucketed32 ? gc::gemm_path::bucketed
                                                       : gc::gemm_path::automatic;
      chosen = path == gc::gemm_path::automatic ? gc::choose_gemm_path(ps[0], {rs[0].counts, rs[0].offsets}) : path;
      // gem_device32: 32-row passes (one warp per column tile) whatever the sizes: no host sizes, rows_hint 32
      if (v == variant::gem_device32)
        for (auto& q : ps) q.rows_hint = 32;
      gem::bench::time_calls(state, s, reps, [&](int i) {
        const auto& r = rs[static_cast<std::size_t>(i % routings)];
        const gc::host_group_sizes sizes = v == variant::gem_device32 ? gc::host_group_sizes{} : gc::host_group_sizes{r.counts, r.offsets};
        GEM_BENCH_OK(gc::grouped_gemm_async(ps[static_cast<std::size_t>(i % routings)], path, sizes, gem_cublas(), ws.p,
                                            ws.n, s));
      });
    } else if (v == variant::anchor_grouped) {
      std::vector<grouped_anchor> an;
      for (const auto& r : rs) an.emplace_back(r, N, K, W, x.p, y.p);
      gem::bench::time_calls(state, s, reps, [&](int i) { an[static_cast<std::size_t>(i % routings)].run(); });
    } else {
      gem::bench::time_calls(state, s, reps,
                             [&](int i) { loop_anchor(rs[static_cast<std::size_t>(i % routings)], N, K, W, x.p, y.p); });
    }
    state.counters["flops"] = 2.0 * useful_rows * static_cast<double>(N) * K;
    state.counters["weight_bytes"] = active * static_cast<double>(N) * K * 2;
  }
  state.counters["path"] = static_cast<double>(chosen);
  state.counters["active_experts"] = active;
  (void)cudaStreamDestroy(s);
}

/// The copy-bandwidth ceiling: a 2 GiB device-to-device copy, bytes read plus written.
void bm_copy(benchmark::State& state) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  const std::size_t bytes = std::size_t{2} << 30;
  device_array<unsigned char> a(bytes), b(bytes);
  GEM_BENCH_CHECK(cudaMemset(a.p, 1, bytes));
  gem::bench::time_calls(state, s, 1, [&](int) { GEM_BENCH_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s)); });
  state.counters["bytes"] = 2.0 * static_cast<double>(bytes);
  (void)cudaStreamDestroy(s);
}

/// The copy ceiling at a decode GEMM's size: a device-to-device copy whose bytes read plus written
/// equal the weight bytes that GEMM streams (mean active experts of the same four routings), timed
/// like the GEMM (8 calls back to back). Small copies do not reach the 2 GiB copy's rate either
/// (launch and ramp-up), so this is the ceiling a kernel of that size can be read against.
void bm_copy_matched(benchmark::State& state, model m, std::int32_t T, which wh) {
  cudaStream_t s;
  GEM_BENCH_CHECK(cudaStreamCreate(&s));
  double active = 0;
  for (const auto& r : make_routings(m, T)) active += r.active / static_cast<double>(routings);
  const double per_expert = wh == which::ffn ? 3.0 * m.inter * m.hidden * 2 : wh == which::gate_up ? 2.0 * m.inter * m.hidden * 2 : 1.0 * m.inter * m.hidden * 2;
  const auto bytes = static_cast<std::size_t>(active * per_expert / 2) / 256 * 256;
  // Rotate over enough buffer pairs (>= 256 MB in all) that the copies are not served from L2,
  // as the GEMM's four routings rotate over different experts.
  const std::size_t pairs = std::clamp<std::size_t>((std::size_t{256} << 20) / std::max<std::size_t>(2 * bytes, 1) + 1, 2, 64);
  device_array<unsigned char> a(bytes * pairs), b(bytes * pairs);
  GEM_BENCH_CHECK(cudaMemset(a.p, 1, a.n));
  gem::bench::time_calls(state, s, 8, [&](int i) {
    const std::size_t o = static_cast<std::size_t>(i) % pairs * bytes;
    GEM_BENCH_CHECK(cudaMemcpyAsync(b.p + o, a.p + o, bytes, cudaMemcpyDeviceToDevice, s));
  });
  state.counters["bytes"] = 2.0 * static_cast<double>(bytes);
  (void)cudaStreamDestroy(s);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RegisterBenchmark("copy/2GiB/anchor_copy", bm_copy)->UseManualTime()->Unit(benchmark::kMicrosecond);
  const std::pair<which, const char*> whiches[] = {{which::gate_up, "gate_up"}, {which::down, "down"}, {which::ffn, "ffn"}};
  const std::pair<variant, const char*> variants[] = {{variant::gem_auto, "gem_auto"},
                                                      {variant::gem_device, "gem_device"},
                                                      {variant::gem_device32, "gem_device_32row"},
                                                      {variant::gem_per_group, "gem_per_group_fanout"},
                                                      {variant::gem_chunked, "gem_chunked"},
                                                      {variant::gem_padded, "gem_padded128"},
                                                      {variant::gem_bucketed32, "gem_bucketed_pad32"},
                                                      {variant::anchor_grouped, "anchor_cublas_grouped"},
                                                      {variant::anchor_loop, "anchor_cublas_loop"}};
  for (const auto& m : models)
    for (const auto T : token_counts)
      for (const auto& [wh, wname] : whiches)
        for (const auto& [v, vname] : variants) {
          if (v == variant::gem_device && T > 128) continue;
          if (v == variant::gem_device32 && (T < 16 || T > 128)) continue;
          if (v == variant::gem_per_group && (T < 128 || wh == which::ffn)) continue;
          if (v == variant::gem_chunked && (T < 1024 || wh == which::ffn)) continue;
          if (v == variant::gem_padded && T < 1024) continue;
          if (v == variant::gem_bucketed32 && (T != 1024 || wh == which::ffn)) continue;
          if (wh == which::ffn && (v == variant::anchor_grouped || v == variant::anchor_loop)) continue;
          const std::string name = std::string("gemm/") + m.name + "/" + wname + "/T=" + std::to_string(T) + "/" + vname;
          benchmark::RegisterBenchmark(name.c_str(), bm_gemm, m, T, wh, v)->UseManualTime()->Unit(benchmark::kMicrosecond);
          if (v == variant::gem_device && T <= 16) {
            const std::string copy = std::string("gemm/") + m.name + "/" + wname + "/T=" + std::to_string(T) + "/anchor_copy_matched";
            benchmark::RegisterBenchmark(copy.c_str(), bm_copy_matched, m, T, wh)->UseManualTime()->Unit(benchmark::kMicrosecond);
          }
        }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
