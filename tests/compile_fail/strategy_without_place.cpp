// expect: (constraints not satisfied|static assertion failed|placement_strategy)
// A strategy must offer `place(problem, model) -> placement`; one that returns phy2log rows instead
// is not a placement_strategy, and a generic call that requires the concept does not compile.
#include <vector>

#include "gem/place/problem.hpp"

struct returns_rows {
  std::vector<std::vector<int>> place(const gem::placement_problem&, const auto&) const { return {}; }
};
struct some_model {
  double seconds(gem::gpu_id, gem::work w) const { return w.tokens(); }
};

template <class S>
  requires gem::placement_strategy<S, some_model>
gem::placement run(const S& s) {
  return s.place(gem::placement_problem{}, some_model{});
}

int main() { (void)run(returns_rows{}); }
