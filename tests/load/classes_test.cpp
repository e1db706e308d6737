// Expert classes: the hot rule and thresholds on hand-built traces, the per-layer report, and
// recovery of the classes planted by the synthetic generator (precision and recall >= 0.9 over 20
// seeds).
#include <doctest/doctest.h>

#include <set>

#include "gem/load/classes.hpp"
#include "gem/trace/synthetic.hpp"
#include "planted_traces.hpp"

using gem::expert_class;

TEST_CASE("classes follow the hot rule: consistent, temporal and cold by share of hot steps") {
  // 8 experts, 10 steps of 160 tokens (uniform share 20, hot at >= 30): e0 hot every step, e1 hot
  // in 3 steps, e2 never (0 tokens), e3 hot in 8 steps (0.8 >= 0.75); e4..e7 fill up, never hot.
  std::vector<std::int64_t> c;
  for (int s = 0; s < 10; ++s) {
    const std::int64_t e0 = 30, e1 = s < 3 ? 30 : 5, e2 = 0, e3 = s < 8 ? 30 : 29;
    const std::int64_t rest = 160 - e0 - e1 - e2 - e3;
    c.insert(c.end(), {e0, e1, e2, e3, rest / 4, rest / 4, rest / 4, rest - 3 * (rest / 4)});
  }
  const gem::routing_trace t(1, 10, 8, c);
  const auto cls = gem::classify(t, gem::layer_id{0});
  const auto C = expert_class::consistent, T = expert_class::temporal, O = expert_class::cold;
  CHECK(cls.of == std::vector<expert_class>{C, T, O, C, O, O, O, O});
  CHECK(cls.hot_fraction == std::vector<double>{1.0, 0.3, 0.0, 0.8, 0, 0, 0, 0});
  CHECK(cls.count == std::array<std::int32_t, 3>{2, 1, 5});
  double tot = 0, cons = 0, temp = 0;
  for (int s = 0; s < 10; ++s)
    for (int e = 0; e < 8; ++e) {
      const double x = static_cast<double>(c[s * 8 + e]);
      tot += x;
      if (e == 0 || e == 3) cons += x;
      if (e == 1) temp += x;
    }
  CHECK(cls.load_share[0] == doctest::Approx(cons / tot));
  CHECK(cls.load_share[1] == doctest::Approx(temp / tot));
  CHECK(cls.load_share[0] + cls.load_share[1] + cls.load_share[2] == doctest::Approx(1.0));
  CHECK(cls.members(expert_class::consistent) == std::vector<std::int32_t>{0, 3});
  // Tighter thresholds move the boundary experts.
  const auto strict = gem::classify(t, gem::layer_id{0}, {.hot_factor = 1.5, .consistent_min = 0.9, .temporal_min = 0.5});
  CHECK(strict.of == std::vector<expert_class>{C, O, O, T, O, O, O, O});
  // Only a range of steps: steps 3..9 -> e1 never hot, e3 hot in 5 of 7.
  const auto late = gem::classify(t, gem::layer_id{0}, {}, 3, 7);
  CHECK(late.of[1] == expert_class::cold);
  CHECK(late.hot_fraction[3] == doctest::Approx(5.0 / 7.0));
  CHECK(late.of[3] == expert_class::temporal);
  CHECK(gem::to_string(expert_class::temporal) == "temporal");
}

TEST_CASE("class thresholds are validated") {
  const gem::routing_trace t(1, 1, 2, {1, 1});
  CHECK_THROWS_AS((void)gem::classify(t, gem::layer_id{0}, {.hot_factor = 0}), gem::config_error);
  CHECK_THROWS_AS((void)gem::classify(t, gem::layer_id{0}, {.consistent_min = 1.5}), gem::config_error);
  CHECK_THROWS_AS((void)gem::classify(t, gem::layer_id{0}, {.consistent_min = 0.5, .temporal_min = 0.6}), gem::config_error);
  CHECK_THROWS_AS((void)gem::classify(t, gem::layer_id{1}), gem::config_error);
}

TEST_CASE("classification recovers the planted consistent and temporal experts over 20 seeds") {
  double ctp = 0, cfp = 0, cfn = 0, ttp = 0, tfp = 0, tfn = 0;
  double worst_seed = 1.0;
  for (const auto& g : gem::test::planted_traces()) {
    double stp = 0, sfp = 0, sfn = 0;
    for (int l = 0; l < 2; ++l) {
      const auto cls = gem::classify(g.trace, gem::layer_id{l});
      const std::set<std::int32_t> pc(g.plant.consistent[l].begin(), g.plant.consistent[l].end());
      std::set<std::int32_t> pt;
      for (const auto& grp : g.plant.groups[l]) pt.insert(grp.begin(), grp.end());
      for (int e = 0; e < 64; ++e) {
        const bool c = cls.of[e] == expert_class::consistent, t = cls.of[e] == expert_class::temporal;
        ctp += c && pc.count(e);
        cfp += c && !pc.count(e);
        cfn += !c && pc.count(e);
        ttp += t && pt.count(e);
        tfp += t && !pt.count(e);
        tfn += !t && pt.count(e);
        stp += (c && pc.count(e)) || (t && pt.count(e));
        sfp += (c && !pc.count(e)) || (t && !pt.count(e));
        sfn += (!c && pc.count(e)) || (!t && pt.count(e));
      }
    }
    worst_seed = std::min({worst_seed, stp / (stp + sfp), stp / (stp + sfn)});
  }
  const double cp = ctp / (ctp + cfp), cr = ctp / (ctp + cfn), tp = ttp / (ttp + tfp), tr = ttp / (ttp + tfn);
  MESSAGE("consistent P " << cp << " R " << cr << ", temporal P " << tp << " R " << tr << ", worst seed " << worst_seed);
  CHECK(cp >= 0.9);
  CHECK(cr >= 0.9);
  CHECK(tp >= 0.9);
  CHECK(tr >= 0.9);
  CHECK(worst_seed >= 0.8);
}
