// gem's speed models and a user-written one plugged into the evaluator (gem/eval/evaluator.hpp):
// stragglers match step_straggler_seconds on hand-built per-GPU work, and no step beats the
// evaluator's fluid lower bound under any of gem's models (the bound's conditions hold for them).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gem/eval/evaluator.hpp"
#include "gem/speed/models.hpp"

using gem::gpu_id;
using gem::work;

namespace {

// A user's own model, written against nothing but `work` and `gpu_id`: GPU g is 1 + g/10 times as
// fast and pays per tile of 64 rows plus 5 us per active expert.
struct user_tiles_model {
  [[nodiscard]] double seconds(gpu_id g, const work& w) const {
    return (static_cast<double>(w.tiles(64)) * 1e-5 + w.active_experts() * 5e-6) / (1.0 + g.value / 10.0);
  }
};
static_assert(gem::speed_model<user_tiles_model>);

struct instance {
  gem::placement pl;
  std::vector<std::vector<std::vector<double>>> steps;  // [1][S][E]
};

// G GPUs with E / G slots each, a random one-slot-per-expert layout, S skewed random steps.
instance random_instance(std::mt19937_64& rng, std::int32_t G, std::int32_t E, int S) {
  std::vector<std::int32_t> phy2log(static_cast<std::size_t>(E));
  std::iota(phy2log.begin(), phy2log.end(), 0);
  std::shuffle(phy2log.begin(), phy2log.end(), rng);
  instance in{gem::placement::from_phy2log(gem::cluster_spec::equal(G, E / G), E, {phy2log}), {{}}};
  for (int s = 0; s < S; ++s) {
    std::vector<double> c(static_cast<std::size_t>(E));
    for (auto& x : c) {
      const auto u = rng() % 10;
      x = u < 2 ? 0.0 : static_cast<double>(rng() % (u < 8 ? 40 : 900));
    }
    in.steps[0].push_back(c);
  }
  return in;
}

// The straggler of step s computed by hand: each GPU's rows in slot order, then gem's helper.
template <class M>
double hand_straggler(const instance& in, std::size_t s, const M& model) {
  const auto& lp = in.pl.layer(gem::layer_id{0});
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(in.pl.num_gpus()));
  for (std::size_t p = 0; p < lp.phy2log.size(); ++p)
    rows[static_cast<std::size_t>(lp.slot_gpu[p])].push_back(in.steps[0][s][static_cast<std::size_t>(lp.phy2log[p])]);
  std::vector<work> w;
  for (const auto& r : rows) w.push_back(work{r});
  return gem::step_straggler_seconds(model, w);
}

gem::table concave_table(std::int32_t G) {
  // Per-GPU latency at tile boundaries 1, 64, 128, ...: concave (per-row cost falls with rows).
  std::vector<gem::table_gpu> gpus;
  for (std::int32_t g = 0; g < G; ++g) {
    gem::table_gpu t{.rows = {1}, .seconds = {3e-6}, .seconds_per_active_expert = 2e-5};
    double slope = 2e-7;
    for (int k = 1; k <= 16; ++k) {
      t.rows.push_back(64.0 * k);
      t.seconds.push_back(t.seconds.back() + slope * (t.rows[k] - t.rows[k - 1]) * (1 + 0.05 * g));
      slope *= 0.9;
    }
    gpus.push_back(t);
  }
  return gem::table(gpus);
}

}  // namespace

TEST_CASE("a user-written speed model plugs into the evaluator") {
  std::mt19937_64 rng(8);
  const user_tiles_model m{};
  for (int trial = 0; trial < 20; ++trial) {
    const auto in = random_instance(rng, 4, 16, 12);
    const auto ev = gem::evaluate(in.pl, in.steps, m);
    REQUIRE(ev.straggler.size() == 12);
    for (std::size_t s = 0; s < 12; ++s) CHECK(ev.straggler[s] == doctest::Approx(hand_straggler(in, s, m)).epsilon(1e-14));
    // The user's model composes with gem's: scaled over it, through the evaluator.
    const auto slow = gem::scale(m, gem::variability::degraded(4, gpu_id{2}));
    const auto ev2 = gem::evaluate(in.pl, in.steps, slow);
    for (std::size_t s = 0; s < 12; ++s) CHECK(ev2.straggler[s] == doctest::Approx(hand_straggler(in, s, slow)).epsilon(1e-14));
  }
}

TEST_CASE("gem's speed models give the evaluator the same stragglers as step_straggler_seconds, never below its bound") {
  std::mt19937_64 rng(12);
  for (int trial = 0; trial < 12; ++trial) {
    const std::int32_t G = trial % 2 ? 4 : 8;
    const auto in = random_instance(rng, G, 32, 6);
    const auto check = [&](const auto& model) {
      const auto ev = gem::evaluate(in.pl, in.steps, model);
      for (std::size_t s = 0; s < in.steps[0].size(); ++s) {
        CHECK(ev.straggler[s] == doctest::Approx(hand_straggler(in, s, model)).epsilon(1e-13));
        CHECK(ev.straggler[s] >= ev.bound[s] * (1 - 1e-9));
      }
      CHECK(ev.ratio_to_bound >= 1 - 1e-9);
    };
    check(gem::uniform{.seconds_per_row = 1e-6, .seconds_per_active_expert = 1e-5});
    check(gem::scale(gem::uniform{}, gem::variability::low(G)));
    check(gem::scale(gem::h200_roofline(gem::shapes::deepseek_v2_lite, G), gem::variability::high(G)));
    check(gem::h200_roofline(gem::shapes::olmoe, G));
    check(gem::scale(concave_table(G), gem::variability::degraded(G, gpu_id{G - 1})));
  }
}
