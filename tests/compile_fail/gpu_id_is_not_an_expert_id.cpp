// expect: (could not convert|no matching|cannot convert|conversion from)
// Strong ids: an expert id passed where a GPU id is expected must not compile.
#include "gem/gem.hpp"

int main() {
  const auto c = gem::cluster_spec::equal(4, 2);
  return c.slots(gem::expert_id{1});
}
