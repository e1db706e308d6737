// expect: (static assertion failed|constraints not satisfied|load_model)
// A load model whose loads() returns a bare mean vector instead of gem::layer_loads is not a
// gem::load_model.
#include <vector>

#include "gem/load/mean_load.hpp"

struct mean_vector_load {
  std::vector<double> loads(const gem::routing_trace& t, gem::layer_id l) const {
    return gem::mean_load{}.loads(t, l).mean;
  }
};
static_assert(gem::load_model<mean_vector_load>);

int main() { return 0; }
