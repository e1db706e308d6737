// expect: (satisfaction of [^ ]*speed_model|does not satisfy [^ ]*speed_model)
// A type without `seconds(gpu_id, work)` is not a speed model: handing it to gem's generic step
// code must fail to compile, naming the concept.
#include <vector>

#include "gem/speed/straggler.hpp"

struct not_a_speed_model {
  double time(int gpu) const { return gpu; }
};

int main() {
  std::vector<gem::work> w(2);
  return static_cast<int>(gem::step_straggler_seconds(not_a_speed_model{}, w));
}
