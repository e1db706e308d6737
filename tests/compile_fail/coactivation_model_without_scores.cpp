// expect: (constraints not satisfied|template constraint failure|coactivation_model)
// A co-activation model must provide scores(trace, layer) -> gem::coactivation_matrix; one that
// returns raw pair counts cannot be plugged into grouped_load.
#include <cstdint>
#include <vector>

#include "gem/load/coactivation.hpp"

struct raw_pairs {
  std::vector<std::int64_t> scores(const gem::routing_trace& t, gem::layer_id l) const {
    return gem::token_pair_counts(t, l);
  }
};

int main() {
  gem::grouped_load<gem::mean_load, raw_pairs> m{};
  (void)m;
  return 0;
}
