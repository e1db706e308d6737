// The synthetic generator: deterministic in its seed, exact assignment totals, a well-formed plant,
// validated config, and default statistics inside the range the three real ESFT tasks span (the
// calibration written in gem/trace/synthetic.hpp).
#include <doctest/doctest.h>

#include <set>

#include "gem/trace/stats.hpp"
#include "gem/trace/synthetic.hpp"

TEST_CASE("the generator is deterministic in its seed and keeps tokens x top_k assignments per step") {
  const gem::synthetic_config c{.num_layers = 2, .num_steps = 10, .tokens_per_step = 64, .seed = 5};
  const auto a = gem::generate_synthetic(c);
  const auto b = gem::generate_synthetic(c);
  CHECK(a.trace == b.trace);
  CHECK(a.plant.step_task == b.plant.step_task);
  auto c2 = c;
  c2.seed = 6;
  CHECK_FALSE(gem::generate_synthetic(c2).trace == a.trace);
  const auto& t = a.trace;
  REQUIRE(t.num_layers() == 2);
  REQUIRE(t.num_steps() == 10);
  REQUIRE(t.tokens()->num_tokens == 640);
  for (int l = 0; l < 2; ++l)
    for (int s = 0; s < 10; ++s) {
      std::int64_t sum = 0;
      for (auto x : t.step_counts(gem::layer_id{l}, s)) sum += x;
      CHECK(sum == 64 * 6);
    }
  for (std::size_t i = 0; i < t.tokens()->weights.size(); i += 6) {
    float w = 0;
    for (int j = 0; j < 6; ++j) w += t.tokens()->weights[i + j];
    CHECK(w == doctest::Approx(1.0f).epsilon(1e-5));
  }
}

TEST_CASE("the plant names disjoint consistent experts and temporal groups, and groups co-activate in bursts") {
  const auto g = gem::generate_synthetic({.num_layers = 3, .seed = 9});
  REQUIRE(g.plant.consistent.size() == 3u);
  for (int l = 0; l < 3; ++l) {
    std::set<std::int32_t> seen(g.plant.consistent[l].begin(), g.plant.consistent[l].end());
    CHECK(seen.size() == 8u);
    REQUIRE(g.plant.groups[l].size() == 4u);
    for (const auto& grp : g.plant.groups[l]) {
      CHECK(grp.size() == 3u);
      for (auto e : grp) CHECK(seen.insert(e).second);
    }
    for (auto e : seen) CHECK((e >= 0 && e < 64));
    // In a burst step every member of the group gets more tokens than in the group's quiet steps.
    for (std::size_t gi = 0; gi < 4; ++gi)
      for (auto e : g.plant.groups[l][gi]) {
        double on = 0, off = 0, n_on = 0, n_off = 0;
        for (int s = 0; s < 128; ++s) {
          const double x = static_cast<double>(g.trace.count(gem::layer_id{l}, s, gem::expert_id{e}));
          if (g.plant.bursting[l][s * 4 + gi]) on += x, ++n_on;
          else off += x, ++n_off;
        }
        REQUIRE(n_on > 0);
        CHECK(on / n_on > 2.0 * off / n_off);
      }
  }
  std::set<std::int32_t> tasks(g.plant.step_task.begin(), g.plant.step_task.end());
  CHECK(tasks.size() == 3u);
}

TEST_CASE("bad generator settings are rejected naming the field") {
  auto bad = [](gem::synthetic_config c, const std::string& field) {
    try {
      (void)gem::generate_synthetic(c);
      FAIL("accepted a bad " << field);
    } catch (const gem::config_error& e) {
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  bad({.top_k = 0}, "top_k");
  bad({.num_experts = 16}, "consistent_experts");
  bad({.burst_rate = 1.5}, "burst_rate");
  bad({.joint_tokens = 0.5}, "joint_tokens");
  bad({.cold_min = 0.5, .cold_max = 0.4}, "cold_min");
  bad({.num_tasks = 0}, "num_tasks");
}

TEST_CASE("default synthetic statistics lie within the range spanned by the real ESFT tasks") {
  // Ranges over the three ESFT tasks (intent, law, summary; B = 256; means over 26 layers), as
  // written in gem/trace/synthetic.hpp, with 10% slack for a 4-seed sample.
  struct band {
    const char* name;
    double lo, hi;
  };
  gem::layer_stats mean{};
  double pairs = 0;
  const int seeds = 4;
  for (int seed = 1; seed <= seeds; ++seed) {
    const auto st = gem::compute_stats(gem::generate_synthetic({.seed = static_cast<std::uint64_t>(seed)}).trace).mean;
    mean.max_over_mean += st.max_over_mean / seeds;
    mean.min_over_mean += st.min_over_mean / seeds;
    mean.zipf_exponent += st.zipf_exponent / seeds;
    mean.class_share[0] += st.class_share[0] / seeds;
    mean.hot_set_persistence += st.hot_set_persistence / seeds;
    mean.hot_per_step += st.hot_per_step / seeds;
    pairs += st.top_pair_share.value() / seeds;
  }
  const std::pair<band, double> checks[] = {
      {{"max/mean", 3.52, 4.28}, mean.max_over_mean},
      {{"min/mean", 0.069, 0.180}, mean.min_over_mean},
      {{"zipf", 0.58, 0.84}, mean.zipf_exponent},
      {{"consistent share", 0.221, 0.424}, mean.class_share[0]},
      {{"hot per step", 10.9, 13.7}, mean.hot_per_step},
      {{"hot-set persistence", 0.467, 0.758}, mean.hot_set_persistence},
      {{"top 5% pair share", 0.336, 0.433}, pairs},
  };
  for (const auto& check : checks) {
    const band b = check.first;
    const double v = check.second;
    INFO(b.name << " = " << v);
    CHECK(v >= 0.9 * b.lo);
    CHECK(v <= 1.1 * b.hi);
  }
}
