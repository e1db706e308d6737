// Tests of gem/cuda/partition.cuh: configs and SM-count lists are validated; a GPU splits into
// green-context partitions of exactly the asked SM counts, whose blocks run only on their own,
// disjoint SMs (read from %smid); a whole GPU is a device like a partition.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "cuda/cuda_test_util.cuh"
#include "gem/cuda/partition.cuh"

namespace {

namespace gc = gem::cuda;
using gem::test::device_buffer;

__global__ void record_smid_kernel(std::int32_t* out, std::int32_t n) {
  std::uint32_t id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  // Keep each block resident a little so the scheduler spreads blocks over every SM it may use.
  const auto t0 = clock64();
  while (clock64() - t0 < 20000) {
  }
  if (threadIdx.x == 0 && static_cast<std::int32_t>(blockIdx.x) < n) out[blockIdx.x] = static_cast<std::int32_t>(id);
}

/// The distinct SMs that `blocks` blocks launched on `dev`'s stream ran on.
std::set<std::int32_t> sms_used(const gc::exec_device& dev, std::int32_t blocks) {
  device_buffer<std::int32_t> ids(static_cast<std::size_t>(blocks));
  ids.poison();
  {
    const auto scope = dev.activate();
    record_smid_kernel<<<blocks, 64, 0, dev.stream()>>>(ids.get(), blocks);
    gem::test::cuda_check(cudaGetLastError(), "record_smid_kernel");
    gem::test::cuda_check(cudaStreamSynchronize(dev.stream()), "sync");
  }
  const auto v = ids.download();
  CHECK(std::none_of(v.begin(), v.end(), [](std::int32_t x) { return x < 0; }));  // every block wrote
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("partition configs without SM counts or with a non-positive count are rejected") {
  CHECK_THROWS_AS(gc::partition_config{}.validate(), gem::config_error);
  try {
    gc::partition_config{.sm_counts = {32, 0, 8}}.validate();
    FAIL("no exception");
  } catch (const gem::config_error& e) {
    CHECK(std::string(e.what()).find("sm_counts[1]") != std::string::npos);
  }
  CHECK_NOTHROW(gc::partition_config{.sm_counts = {40, 32, 32, 24}}.validate());
}

TEST_CASE("SM count lists parse and malformed items are named") {
  CHECK(gc::parse_sm_counts("40,32,32,24") == std::vector<std::int32_t>{40, 32, 32, 24});
  CHECK(gc::parse_sm_counts("8") == std::vector<std::int32_t>{8});
  for (const char* bad : {"", "40,,32", "4x", "-8", "0", "32,"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS((void)gc::parse_sm_counts(bad), gem::config_error);
  }
}

TEST_CASE("a whole GPU is a device with the GPU's SM count and a working stream") {
  GEM_REQUIRE_GPU();
  cudaDeviceProp prop{};
  gem::test::cuda_check(cudaGetDeviceProperties(&prop, 0), "props");
  const auto d = gc::whole_gpu(0);
  CHECK(d.sm_count() == prop.multiProcessorCount);
  CHECK_FALSE(d.is_partition());
  CHECK(d.name() == prop.name);
  CHECK(d.uuid().rfind("GPU-", 0) == 0);
  const auto used = sms_used(d, 8 * prop.multiProcessorCount);
  CHECK(static_cast<std::int32_t>(used.size()) <= prop.multiProcessorCount);
  CHECK(static_cast<std::int32_t>(used.size()) > prop.multiProcessorCount / 2);
}

TEST_CASE("equal partitions hold exactly the asked SMs and run blocks only on their own disjoint SMs") {
  GEM_REQUIRE_GPU();
  const auto rules = gc::partition_rules(0);
  INFO("device SMs " << rules.sm_count << ", min partition " << rules.min_partition << ", alignment " << rules.alignment);
  const std::int32_t each = std::max(rules.min_partition, rules.sm_count >= 128 ? 32 : rules.min_partition);
  const std::int32_t n = std::min(4, rules.sm_count / std::max(each, 1));
  REQUIRE(n >= 1);
  const auto parts = gc::split_device(0, {.sm_counts = std::vector<std::int32_t>(static_cast<std::size_t>(n), each)});
  REQUIRE(static_cast<std::int32_t>(parts.size()) == n);
  std::set<std::int32_t> seen;
  for (const auto& p : parts) {
    CAPTURE(p.name());
    CHECK(p.is_partition());
    CHECK(p.sm_count() == each);
    const auto used = sms_used(p, 16 * each);
    CHECK(static_cast<std::int32_t>(used.size()) <= each);
    CHECK(static_cast<std::int32_t>(used.size()) >= each / 2);
    for (auto s : used) CHECK_MESSAGE(seen.insert(s).second, "SM " << s << " is used by two partitions");
  }
}

TEST_CASE("unequal partitions (40/32/32/24 on an H200-sized GPU) hold exactly the asked SMs") {
  GEM_REQUIRE_GPU();
  const auto rules = gc::partition_rules(0);
  if (rules.sm_count < 128) {
    MESSAGE("SKIPPED: the GPU has " << rules.sm_count << " SMs, fewer than 128");
    return;
  }
  const std::vector<std::int32_t> want{40, 32, 32, 24};
  const auto parts = gc::split_device(0, {.sm_counts = want});
  REQUIRE(parts.size() == want.size());
  std::set<std::int32_t> seen;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    CHECK(parts[i].sm_count() == want[i]);
    const auto used = sms_used(parts[i], 16 * want[i]);
    CHECK(static_cast<std::int32_t>(used.size()) <= want[i]);
    for (auto s : used) CHECK(seen.insert(s).second);
  }
}

TEST_CASE("asking for more SMs than the GPU has is a config error") {
  GEM_REQUIRE_GPU();
  const auto rules = gc::partition_rules(0);
  CHECK_THROWS_AS((void)gc::split_device(0, {.sm_counts = {rules.sm_count, 8}}), gem::config_error);
}
