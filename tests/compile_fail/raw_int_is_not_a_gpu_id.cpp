// expect: (could not convert|no matching|cannot convert|conversion from)
// Strong ids: a bare integer does not silently become a GPU id (the constructor is explicit).
#include "gem/gem.hpp"

int main() {
  const auto c = gem::cluster_spec::equal(4, 2);
  return c.slots(1);
}
