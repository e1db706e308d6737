// The pieces behind gem_search's speed, against references written here: straggler_search's
// incremental state (per-GPU row cache, step tables) against a replay from scratch, gem_pack's early
// stop against the full scan it replaces, and gem_search::online() for determinism and a clear win.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "place_test_models.hpp"

namespace {

using gem::detail::search_item;

/// Mean over steps of the straggler's seconds when item i sits on GPU gpu_of[i], each GPU's rows
/// in item order: computed from nothing.
template <class M>
double replay(const M& m, int G, const std::vector<std::vector<double>>& steps, const std::vector<search_item>& items,
              const std::vector<std::int32_t>& gpu_of) {
  double sum = 0;
  for (const auto& step : steps) {
    double worst = 0;
    for (int g = 0; g < G; ++g) {
      std::vector<double> rows;
      for (std::size_t i = 0; i < items.size(); ++i)
        if (gpu_of[i] == g) rows.push_back(step[items[i].expert] * items[i].share);
      if (!rows.empty()) worst = std::max(worst, m.seconds(gem::gpu_id{g}, gem::work{rows}));
    }
    sum += worst;
  }
  return steps.empty() ? 0.0 : sum / static_cast<double>(steps.size());
}

/// The packing rule of gem_pack, scanning every GPU in index order (no early stop).
template <class M>
std::vector<std::int32_t> full_scan_pack(const M& m, int G, int E, const gem::detail::gem_layer_setup& st,
                                         const std::vector<std::int32_t>& caps, bool use_model, double anti_affinity) {
  std::vector<std::size_t> order(st.items.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return st.packing_load[a] > st.packing_load[b]; });
  std::vector<std::int32_t> gpu_of(st.items.size(), -1);
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(G));
  std::vector<std::vector<std::int32_t>> experts(static_cast<std::size_t>(G));
  for (const auto i : order) {
    const auto e = st.items[i].expert;
    int best = -1;
    double best_score = 0;
    for (int pass = 0; pass < 2 && best < 0; ++pass)
      for (int g = 0; g < G; ++g) {
        if (static_cast<int>(experts[g].size()) >= caps[g]) continue;
        if (pass == 0 && std::count(experts[g].begin(), experts[g].end(), e) > 0) continue;
        double score = 0;
        if (use_model) {
          auto r = rows[g];
          r.push_back(st.packing_load[i]);
          int same = 0;
          for (auto f : experts[g]) same += st.coactive[static_cast<std::size_t>(e) * E + f];
          score = m.seconds(gem::gpu_id{g}, gem::work{r}) * (1.0 + anti_affinity * same);
        } else {
          for (auto x : rows[g]) score += x;
          score += st.packing_load[i];
        }
        if (best < 0 || score < best_score) best = g, best_score = score;
      }
    REQUIRE(best >= 0);
    gpu_of[i] = best;
    rows[best].push_back(st.packing_load[i]);
    experts[best].push_back(e);
  }
  return gpu_of;
}

}  // namespace

TEST_CASE("straggler_search's objective equals a replay from scratch after descents, kicks and reassignments") {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 300; ++trial) {
    CAPTURE(trial);
    const int G = 2 + static_cast<int>(rng() % 5);
    const int E = 2 + static_cast<int>(rng() % 16);
    const int S = static_cast<int>(rng() % 10);
    const auto p = gem::test::random_problem(rng, 1, E, G, 1, S);
    std::vector<std::vector<double>> storage;
    const auto& steps = gem::detail::fitted_steps(p.layers[0], storage);
    // Items: every expert once, some twice with uneven shares.
    std::vector<search_item> items;
    for (int e = 0; e < E; ++e) {
      if (rng() % 3 == 0) {
        const double a = 0.2 + 0.6 * static_cast<double>(rng() % 100) / 100.0;
        items.push_back({.expert = e, .share = a});
        items.push_back({.expert = e, .share = 1.0 - a});
      } else {
        items.push_back({.expert = e, .share = 1.0});
      }
    }
    const int n = static_cast<int>(items.size());
    gem::detail::straggler_search<gem::test::read_speed>::options opt;
    opt.allow_moves = rng() % 2 == 0;
    const int per = (n + G - 1) / G + static_cast<int>(rng() % 2);
    opt.cap.assign(static_cast<std::size_t>(G), per);
    opt.max_targets = static_cast<int>(rng() % 3);  // 0 = every GPU
    opt.max_step_evals = 200000;                     // a broken state fails the checks instead of looping
    std::vector<double> speed(static_cast<std::size_t>(G));
    for (auto& s : speed) s = 0.4 + 0.6 * static_cast<double>(rng() % 1000) / 1000.0;
    const gem::test::read_speed m{.speed = speed, .read = 1.0 + static_cast<double>(rng() % 4)};

    // A start that respects the caps and never puts two copies of an expert on one GPU: copies of
    // one expert are adjacent, so dealing items round-robin keeps them apart.
    std::vector<std::int32_t> start(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) start[i] = i % G;
    gem::detail::straggler_search<gem::test::read_speed> search(m, G, steps, items, opt);
    search.assign(start);
    CHECK(search.objective() == doctest::Approx(replay(m, G, steps, items, start)).epsilon(1e-12));
    search.run();
    const auto check_state = [&] {
      const auto& at = search.gpu_of();
      CHECK(search.objective() == doctest::Approx(replay(m, G, steps, items, at)).epsilon(1e-9));
      std::vector<int> count(static_cast<std::size_t>(G), 0);
      for (int i = 0; i < n; ++i) ++count[at[i]];
      for (int g = 0; g < G; ++g) CHECK(count[g] <= per);
      for (int i = 0; i + 1 < n; ++i)
        if (items[i].expert == items[i + 1].expert) CHECK(at[i] != at[i + 1]);
    };
    check_state();
    gem::detail::splitmix64 kicks{static_cast<std::uint64_t>(trial)};
    for (int k = 0; k < 3; ++k) {
      search.kick_and_descend(kicks, 2);
      check_state();
    }
    // Reassigning the start (a second start on the same search) gives the start's objective again.
    search.reset_budget();
    search.assign(start);
    CHECK(search.objective() == doctest::Approx(replay(m, G, steps, items, start)).epsilon(1e-12));
  }
}

TEST_CASE("gem_pack's early stop picks exactly the GPUs of the full scan, ties included") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 400; ++trial) {
    CAPTURE(trial);
    const int G = 1 + static_cast<int>(rng() % 6);
    const int E = 1 + static_cast<int>(rng() % 20);
    gem::detail::gem_layer_setup st;
    for (int e = 0; e < E; ++e) {
      const int copies = rng() % 4 == 0 ? 2 : 1;
      // Small integer loads and (often) equal speeds make exact ties common.
      const double load = static_cast<double>(rng() % 6);
      for (int c = 0; c < copies; ++c) {
        st.items.push_back({.expert = e, .share = 1.0 / copies});
        st.packing_load.push_back(load / copies);
      }
    }
    const int n = static_cast<int>(st.items.size());
    st.coactive.assign(static_cast<std::size_t>(E) * E, 0);
    if (trial % 2 == 0)
      for (int k = 0; k < E; ++k) {
        const auto a = rng() % E, b = rng() % E;
        if (a != b) st.coactive[a * E + b] = st.coactive[b * E + a] = 1, st.any_coactive = true;
      }
    st.order.resize(st.items.size());
    std::iota(st.order.begin(), st.order.end(), std::size_t{0});
    std::stable_sort(st.order.begin(), st.order.end(), [&](auto a, auto b) { return st.packing_load[a] > st.packing_load[b]; });
    std::vector<std::int32_t> caps(static_cast<std::size_t>(G), (n + G - 1) / G + static_cast<int>(rng() % 2));
    std::vector<double> speed(static_cast<std::size_t>(G), 1.0);
    if (trial % 3 == 0)
      for (auto& s : speed) s = 0.5 + 0.5 * static_cast<double>(rng() % 3);
    const gem::test::read_speed m{.speed = speed, .read = static_cast<double>(rng() % 3)};
    const double aa = trial % 4 == 0 ? 0.0 : 0.05;
    gem::detail::splitmix64 r{1};
    for (const bool use_model : {true, false}) {
      const auto got = gem::detail::gem_pack(m, G, E, st, caps, 1, use_model, aa, 0.0, r);
      CHECK(got == full_scan_pack(m, G, E, st, caps, use_model, aa));
    }
  }
}

TEST_CASE("gem_search::online() repeats byte for byte across thread counts and beats eplb with a slow GPU") {
  std::mt19937_64 rng(11);
  const auto p = gem::test::random_problem(rng, 3, 32, 8, 5, 48);
  std::vector<double> speed(8, 1.0);
  speed[0] = 0.5;
  const gem::test::read_speed m{.speed = speed, .read = 2.0};
  const auto cfg = gem::gem_search::online(gem::slot_mode::engine_compatible, 3);
  const auto a = cfg.place(p, m);
  auto threaded = cfg;
  threaded.threads = 4;
  CHECK(threaded.place(p, m) == a);
  CHECK(cfg.place(p, m) == a);
  // Summed over layers, the mean straggler on every step (32 of the 48 were fitted).
  const auto cost = [&](const gem::placement& pl) {
    double total = 0;
    for (int l = 0; l < pl.num_layers(); ++l) {
      const auto& lp = pl.layer(gem::layer_id{l});
      const auto cnt = pl.logcnt(gem::layer_id{l});
      for (const auto& step : p.layers[l].steps) {
        std::vector<std::vector<double>> rows(8);
        for (std::size_t k = 0; k < lp.phy2log.size(); ++k)
          rows[lp.slot_gpu[k]].push_back(step[lp.phy2log[k]] / cnt[lp.phy2log[k]]);
        double worst = 0;
        for (int g = 0; g < 8; ++g) worst = std::max(worst, m.seconds(gem::gpu_id{g}, gem::work{rows[g]}));
        total += worst / static_cast<double>(p.layers[l].steps.size());
      }
    }
    return total;
  };
  CHECK(cost(a) < 0.95 * cost(gem::eplb{}.place(p, m)));
}
