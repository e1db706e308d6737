// expect: (constraints not satisfied|no matching|speed_model)
// Strategies are templates over a speed model: passing something without `seconds(gpu, work)` as
// the model does not compile.
#include "gem/place/gem_search.hpp"

struct not_a_model {
  double speed = 1.0;
};

int main() {
  const gem::placement_problem p{};
  (void)gem::gem_search{}.place(p, not_a_model{});
}
