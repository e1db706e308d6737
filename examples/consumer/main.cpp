// A downstream program: builds a placement with gem's host API and checks its EPLB views.
#include <gem/gem.hpp>

#include <cstdio>

#ifdef CONSUMER_CUDA
int cuda_part();  // in cuda_part.cu, compiled by nvcc against gem::cuda
#endif

int main() {
  const auto pl = gem::placement::from_phy2log(gem::cluster_spec::equal(2, 2), 3, {{0, 1, 2, 0}});
  const auto cnt = pl.logcnt(gem::layer_id{0});
  if (cnt[0] != 2 || cnt[1] != 1 || cnt[2] != 1) {
    std::puts("gem_consumer: unexpected logcnt");
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
