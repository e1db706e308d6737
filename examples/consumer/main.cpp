// A downstream program: places experts with gem's host API, writes the placement in EPLB's format
// and reads it back (gem/io.hpp), and checks that bad input is rejected.
#include <gem/gem.hpp>
#include <gem/io.hpp>

#include <cstdio>
#include <sstream>

#ifdef CONSUMER_CUDA
int cuda_part();  // in cuda_part.cu, compiled by nvcc against gem::cuda
#endif

int main() {
  gem::placement_problem problem{.cluster = gem::cluster_spec::equal(2, 2), .num_experts = 3, .layers = {}};
  problem.layers.push_back(gem::layer_loads{.mean = {5.0, 1.0, 1.0}, .steps = {}, .groups = {}});
  const auto speeds = gem::scale(gem::uniform{}, {1.0, 1.3});
  const auto pl = gem::gem_search{}.place(problem, speeds);
  std::ostringstream out;
  gem::io::write_placement_eplb(out, pl);
  const auto back = gem::io::read_placement_eplb(out.str(), "memory", {.num_gpus = 2, .num_nodes = 0, .num_experts = 0});
  if (back.placement.logcnt(gem::layer_id{0}) != pl.logcnt(gem::layer_id{0})) {
    std::puts("gem_consumer: the EPLB round trip changed logcnt");
    return 1;
  }
  try {
    (void)gem::placement::from_phy2log(gem::cluster_spec::equal(2, 2), 4, {{0, 1, 2, 0}});
    std::puts("gem_consumer: a placement with an expert lacking a replica was accepted");
    return 1;
  } catch (const gem::placement_error&) {
  }
#ifdef CONSUMER_CUDA
  if (cuda_part() != 0) return 1;
#endif
  std::printf("gem_consumer: ok (gem %s)\n", gem::version_string);
  return 0;
}
