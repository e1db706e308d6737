// The 20 seeded synthetic traces (gem's default generator, 2 layers each) on which the tests of
// classes and co-activation check recovery of the plant; generated once per test program.
#pragma once

#include <vector>

#include "gem/trace/synthetic.hpp"

namespace gem::test {

inline const std::vector<synthetic_trace>& planted_traces() {
  static const std::vector<synthetic_trace> traces = [] {
    std::vector<synthetic_trace> out;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) out.push_back(generate_synthetic({.num_layers = 2, .seed = seed}));
    return out;
  }();
  return traces;
}

}  // namespace gem::test
