// expect: (satisfaction of [^ ]*speed_model|does not satisfy [^ ]*speed_model)
// `seconds` must return something convertible to double: a model returning a string fails the
// speed_model concept when scaled.
#include <string>
#include <vector>

#include "gem/speed/scaled.hpp"

struct says_seconds {
  std::string seconds(gem::gpu_id, const gem::work&) const { return "fast"; }
};

int main() {
  auto m = gem::scale(says_seconds{}, {1.0, 2.0});
  return m.num_gpus();
}
