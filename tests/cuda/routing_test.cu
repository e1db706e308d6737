// Tests of gem/cuda/routing.cuh against a CPU reference: counts, padded offsets, stable order,
// both index maps, permuted weights, placement replica choice and per-GPU counts, invalid ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "cuda/cuda_test_util.cuh"
#include "gem/cuda/routing.cuh"

namespace {

using gem::test::device_buffer;
namespace gc = gem::cuda;

/// The replica draw as routing.cuh documents it (re-derived here, not shared with the kernel).
float spec_draw(std::int32_t token, std::int32_t expert) {
  auto h = static_cast<std::uint32_t>(token) * 0x9e3779b1u ^ static_cast<std::uint32_t>(expert) * 0x85ebca77u;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return static_cast<float>(h >> 8) / 16777216.0f;
}

struct reference_layout {
  std::vector<std::int32_t> counts, offsets, expert_counts, gpu_counts, perm_to_src, src_to_perm;
  std::vector<float> perm_weights;
  std::int32_t invalid = 0;
};

template <class Id>
reference_layout reference(const gc::routing_config& cfg, const std::vector<Id>& ids, const std::vector<float>& w,
                           const gc::placement_tables* tables) {
  const auto G = cfg.num_groups();
  const auto n = static_cast<std::int32_t>(ids.size());
  reference_layout r;
  std::vector<std::vector<std::int32_t>> members(static_cast<std::size_t>(G));
  r.expert_counts.assign(static_cast<std::size_t>(cfg.num_experts), 0);
  r.src_to_perm.assign(ids.size(), -1);
  for (std::int32_t i = 0; i < n; ++i) {
    const Id id = ids[static_cast<std::size_t>(i)];
    if (id < 0 || id >= cfg.num_experts) {
      ++r.invalid;
      continue;
    }
    const auto e = static_cast<std::int32_t>(id);
    std::int32_t g = e;
    if (tables) {
      const float u = spec_draw(i / cfg.top_k, e);
      const auto R = tables->max_replicas;
      for (std::int32_t k = 0; k < R; ++k) {
        const auto slot = tables->log2phy[static_cast<std::size_t>(e * R + k)];
        if (slot < 0) break;
        g = slot;
        if (u < tables->cum_share[static_cast<std::size_t>(e * R + k)]) break;
      }
    }
    members[static_cast<std::size_t>(g)].push_back(i);
    ++r.expert_counts[static_cast<std::size_t>(e)];
  }
  r.perm_to_src.assign(static_cast<std::size_t>(cfg.capacity_rows()), -1);
  r.perm_weights.assign(static_cast<std::size_t>(cfg.capacity_rows()), 0.0f);
  std::int32_t off = 0;
  for (std::int32_t g = 0; g < G; ++g) {
    const auto& m = members[static_cast<std::size_t>(g)];
    r.counts.push_back(static_cast<std::int32_t>(m.size()));
    r.offsets.push_back(off);
    for (std::size_t j = 0; j < m.size(); ++j) {
      r.perm_to_src[static_cast<std::size_t>(off) + j] = m[j];
      r.perm_weights[static_cast<std::size_t>(off) + j] = w.empty() ? 1.0f : w[static_cast<std::size_t>(m[j])];
      r.src_to_perm[static_cast<std::size_t>(m[j])] = off + static_cast<std::int32_t>(j);
    }
    off += (static_cast<std::int32_t>(m.size()) + cfg.tile_rows - 1) / cfg.tile_rows * cfg.tile_rows;
  }
  r.offsets.push_back(off);
  if (tables) {
    r.gpu_counts.assign(static_cast<std::size_t>(tables->num_gpus), 0);
    for (std::int32_t g = 0; g < G; ++g)
      r.gpu_counts[static_cast<std::size_t>(tables->slot_gpu[static_cast<std::size_t>(g)])] +=
          r.counts[static_cast<std::size_t>(g)];
  }
  return r;
}

/// Runs the layout on poisoned workspace and checks every output against the reference.
template <class Id>
void check_layout(const gc::routing_config& cfg, const std::vector<Id>& ids, const std::vector<float>& w,
                  const gc::placement_tables* tables = nullptr) {
  REQUIRE(gc::can_implement(cfg).ok());
  const auto bytes = gc::routing_workspace_size(cfg);
  device_buffer<unsigned char> ws(bytes);
  ws.poison(0xab);
  gc::routing_layout layout;
  REQUIRE(gc::bind_routing_layout(cfg, ws.get(), bytes, &layout).ok());
  device_buffer<Id> d_ids(ids);
  device_buffer<float> d_w(w.size());
  if (!w.empty()) d_w.upload(w);
  REQUIRE(gc::routing_layout_async(cfg, d_ids.get(), w.empty() ? nullptr : d_w.get(), layout, nullptr).ok());
  const auto st = gc::check_routing(layout, nullptr);
  const auto ref = reference(cfg, ids, w, tables);
  if (ref.invalid == 0) {
    CHECK(st.ok());
  } else {
    CHECK(st.code == gc::status_code::ids_out_of_range);
    CHECK(st.detail == ref.invalid);
  }
  const auto G = static_cast<std::size_t>(cfg.num_groups());
  const auto cap = static_cast<std::size_t>(cfg.capacity_rows());
  auto dl = [](const auto* p, std::size_t n) {
    std::vector<std::remove_cv_t<std::remove_pointer_t<decltype(p)>>> v(n);
    gem::test::cuda_check(cudaMemcpy(v.data(), p, n * sizeof(v[0]), cudaMemcpyDeviceToHost), "download");
    return v;
  };
  std::vector<std::int32_t> sizes(2 * G + 1);
  REQUIRE(gc::copy_group_sizes_async(layout, sizes.data(), nullptr).ok());
  REQUIRE(cudaStreamSynchronize(nullptr) == cudaSuccess);
  CHECK(std::vector<std::int32_t>(sizes.begin(), sizes.begin() + static_cast<std::ptrdiff_t>(G)) == ref.counts);
  CHECK(std::vector<std::int32_t>(sizes.begin() + static_cast<std::ptrdiff_t>(G), sizes.end()) == ref.offsets);
  CHECK(dl(layout.expert_counts, static_cast<std::size_t>(cfg.num_experts)) == ref.expert_counts);
  CHECK(dl(layout.perm_to_src, cap) == ref.perm_to_src);
  CHECK(dl(layout.src_to_perm, ids.size()) == ref.src_to_perm);
  CHECK(dl(layout.perm_weights, cap) == ref.perm_weights);
  if (tables) CHECK(dl(layout.gpu_counts, static_cast<std::size_t>(tables->num_gpus)) == ref.gpu_counts);
}

/// Random ids: a Zipf-like skew over experts (so some experts stay empty), distinct within a token.
template <class Id>
std::vector<Id> random_ids(std::mt19937_64& rng, std::int32_t T, std::int32_t k, std::int32_t E, double skew) {
  std::vector<double> p(static_cast<std::size_t>(E));
  for (std::int32_t e = 0; e < E; ++e) p[static_cast<std::size_t>(e)] = 1.0 / std::pow(e + 1.0, skew);
  std::shuffle(p.begin(), p.end(), rng);
  std::discrete_distribution<std::int32_t> pick(p.begin(), p.end());
  std::vector<Id> ids(static_cast<std::size_t>(T) * k);
  for (std::int32_t t = 0; t < T; ++t) {
    std::vector<std::int32_t> chosen;
    while (static_cast<std::int32_t>(chosen.size()) < std::min(k, E)) {
      const auto e = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    while (static_cast<std::int32_t>(chosen.size()) < k) chosen.push_back(pick(rng));
    for (std::int32_t j = 0; j < k; ++j) ids[static_cast<std::size_t>(t * k + j)] = static_cast<Id>(chosen[static_cast<std::size_t>(j)]);
  }
  return ids;
}

std::vector<float> random_weights(std::mt19937_64& rng, std::size_t n) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> w(n);
  for (auto& x : w) x = u(rng);
  return w;
}

}  // namespace

TEST_CASE("routing layout matches a CPU reference on random skewed ids, int32 and int64") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  struct shape {
    std::int32_t T, k, E, tile;
    double skew;
  };
  const shape shapes[] = {{1, 1, 8, 1, 0.0},      {1, 8, 256, 128, 1.0},  {3, 2, 8, 16, 0.5},
                          {64, 6, 64, 1, 1.2},    {128, 8, 128, 8, 0.8},  {1000, 2, 8, 64, 2.0},
                          {1024, 8, 256, 1, 1.0}, {4099, 8, 64, 16, 0.3}, {8192, 8, 256, 128, 1.1}};
  for (const auto& s : shapes) {
    CAPTURE(s.T);
    CAPTURE(s.k);
    CAPTURE(s.E);
    CAPTURE(s.tile);
    const gc::routing_config cfg{.num_tokens = s.T, .top_k = s.k, .num_experts = s.E, .tile_rows = s.tile};
    check_layout(cfg, random_ids<std::int32_t>(rng, s.T, s.k, s.E, s.skew),
                 random_weights(rng, static_cast<std::size_t>(s.T) * s.k));
    check_layout(cfg, random_ids<std::int64_t>(rng, s.T, s.k, s.E, s.skew), {});
  }
}

TEST_CASE("all tokens on one expert leave the others empty and keep source order") {
  GEM_REQUIRE_GPU();
  const std::int32_t T = 3000, k = 1, E = 16;
  std::vector<std::int32_t> ids(T, 5);
  check_layout(gc::routing_config{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 64}, ids, {});
}

TEST_CASE("ids outside 0..E-1 are counted in the status and never placed") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 3; ++trial) {
    const std::int32_t T = 777, k = 4, E = 32;
    auto ids32 = random_ids<std::int32_t>(rng, T, k, E, 1.0);
    auto ids64 = random_ids<std::int64_t>(rng, T, k, E, 1.0);
    std::uniform_int_distribution<std::size_t> at(0, ids32.size() - 1);
    const std::int64_t bad64[] = {-1, 32, 33, -2147483648LL, 4294967296LL + 3, INT64_MAX, INT64_MIN};
    for (int i = 0; i < 40; ++i) {
      ids32[at(rng)] = static_cast<std::int32_t>(i % 2 ? -1 - i : E + i);
      ids64[at(rng)] = bad64[i % 7];
    }
    const gc::routing_config cfg{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 8};
    check_layout(cfg, ids32, random_weights(rng, ids32.size()));
    check_layout(cfg, ids64, {});
  }
}

TEST_CASE("a placement routes each assignment to a replica by its shares and counts rows per GPU") {
  GEM_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  // 16 experts on 4 GPUs with 6 slots each; experts 0..7 get a second replica with uneven shares.
  const std::int32_t E = 16, G = 4;
  std::vector<std::int32_t> phy2log;
  for (std::int32_t e = 0; e < E; ++e) phy2log.push_back(e);
  for (std::int32_t e = 0; e < 8; ++e) phy2log.push_back(e);
  std::shuffle(phy2log.begin(), phy2log.end(), rng);
  gem::layer_placement lp;
  lp.phy2log = phy2log;
  for (std::size_t p = 0; p < phy2log.size(); ++p) lp.slot_gpu.push_back(static_cast<std::int32_t>(p % G));
  lp.share.assign(phy2log.size(), 1.0);
  std::vector<int> seen(E, 0);
  for (std::size_t p = 0; p < phy2log.size(); ++p) {
    const auto e = phy2log[p];
    if (e < 8) lp.share[p] = seen[e]++ == 0 ? 0.25 + 0.05 * e : 0.75 - 0.05 * e;
  }
  const gem::placement plc(gem::cluster_spec::equal(G, 6), E, {lp});
  const auto tables = gc::make_placement_tables(plc, gem::layer_id{0});
  device_buffer<unsigned char> pbuf(gc::placement_bytes(tables));
  gc::placement_view view;
  REQUIRE(gc::upload_placement(tables, pbuf.get(), pbuf.size(), &view).ok());
  const std::int32_t T = 4096, k = 4;
  const gc::routing_config cfg{.num_tokens = T, .top_k = k, .num_experts = E, .tile_rows = 4, .placement = view};
  const auto ids = random_ids<std::int32_t>(rng, T, k, E, 0.0);
  check_layout(cfg, ids, random_weights(rng, ids.size()), &tables);

  // The realized split follows the shares (independent of the reference's arithmetic).
  const auto bytes = gc::routing_workspace_size(cfg);
  device_buffer<unsigned char> ws(bytes);
  gc::routing_layout layout;
  REQUIRE(gc::bind_routing_layout(cfg, ws.get(), bytes, &layout).ok());
  device_buffer<std::int32_t> d_ids(ids);
  REQUIRE(gc::routing_layout_async(cfg, d_ids.get(), nullptr, layout, nullptr).ok());
  std::vector<std::int32_t> counts(phy2log.size());
  REQUIRE(cudaMemcpy(counts.data(), layout.group_counts, counts.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  std::vector<std::int32_t> per_expert(E, 0);
  for (std::size_t p = 0; p < phy2log.size(); ++p) per_expert[phy2log[p]] += counts[p];
  for (std::size_t p = 0; p < phy2log.size(); ++p) {
    const double expected = lp.share[p] * per_expert[phy2log[p]];
    CHECK(std::abs(counts[p] - expected) <= 4.0 * std::sqrt(expected + 1.0));
  }
}

TEST_CASE("a routing config the kernel cannot run is refused before any launch") {
  gc::routing_config cfg{.num_tokens = 0, .top_k = 2, .num_experts = 8};
  CHECK(gc::can_implement(cfg).code == gc::status_code::invalid_argument);
  cfg.num_tokens = 4;
  cfg.tile_rows = 0;
  CHECK(gc::can_implement(cfg).code == gc::status_code::invalid_argument);
  cfg.tile_rows = 1;
  CHECK(gc::can_implement(cfg).ok());
  cfg.num_experts = 1 << 20;  // histograms no longer fit in shared memory
  CHECK(gc::can_implement(cfg).code == gc::status_code::unsupported);
  cfg.num_experts = 8;
  cfg.placement.num_slots = 8;  // tables missing
  CHECK(gc::can_implement(cfg).code == gc::status_code::invalid_argument);
  cfg.placement = {};
  gc::routing_layout layout;
  alignas(256) static unsigned char host_bytes[512];
  CHECK(gc::bind_routing_layout(cfg, host_bytes, 16, &layout).code == gc::status_code::workspace_too_small);
}
