// gem/cuda/partition.cuh — execution devices: a whole GPU, or an SM partition of one made with CUDA
// green contexts, both seen the same way by the code above (a name, an SM count, a stream, and a
// scope that makes the device's context current). One H200 split 40/32/32/24 emulates four GPUs of
// unequal speed. Depends on the CUDA runtime, cuda.h (driver types; the driver functions are looked
// up at run time, so nothing links libcuda) and gem/error.hpp.
//
// Host call sequence:
//   auto parts = gem::cuda::split_device(0, {.sm_counts = {40, 32, 32, 24}});   // throws on failure
//   for (auto& d : parts) {
//     auto scope = d.activate();            // this thread's current context is d's until scope ends
//     create cuBLAS handles / events here; enqueue work on d.stream()
//   }
// Memory from cudaMalloc in the primary context is usable from every partition of that GPU (green
// contexts share the primary context's address space); events and cuBLAS handles belong to the
// context current when they are made.
// Measured on an H200 (CUDA 13.0, DESIGN.md §3.6): the SM resource splits into groups of 32 with 4
// SMs left over; a split's outputs cannot be split again directly, but re-split inside a green
// context of their own (split_device does that for every split after the first).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gem/cuda/detail/partition_driver.cuh"
#include "gem/error.hpp"

namespace gem::cuda {

/// While alive, the owning device's context is current on this thread; restores the previous one.
class context_scope {
 public:
  context_scope() = default;
  explicit context_scope(CUcontext ctx) {
    const auto& d = detail::driver();
    if (!ctx || !d.ctx_get_current || !d.ctx_set_current) return;
    detail::driver_check(d.ctx_get_current(&previous_), "context_scope: cuCtxGetCurrent");
    detail::driver_check(d.ctx_set_current(ctx), "context_scope: cuCtxSetCurrent");
    active_ = true;
  }
  context_scope(const context_scope&) = delete;
  context_scope& operator=(const context_scope&) = delete;
  context_scope(context_scope&& o) noexcept : previous_(o.previous_), active_(std::exchange(o.active_, false)) {}
  context_scope& operator=(context_scope&&) = delete;
  ~context_scope() {
    if (active_) (void)detail::driver().ctx_set_current(previous_);
  }

 private:
  CUcontext previous_ = nullptr;
  bool active_ = false;
};

/// SM partitioning rules of a GPU, as its driver reports them.
struct sm_partition_rules {
  std::int32_t sm_count = 0;        ///< SMs of the whole device
  std::int32_t min_partition = 0;   ///< fewest SMs a partition may hold
  std::int32_t alignment = 0;       ///< partitions hold a multiple of this many SMs
};

/// What split_device makes. An aggregate: `partition_config{.sm_counts = {40, 32, 32, 24}}`.
struct partition_config {
  std::vector<std::int32_t> sm_counts{};  ///< SMs of each partition, in partition order; sum <= device SMs
  /// Split with CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING (finer granularity, no large thread
  /// clusters); by default partitions follow the GPU's processing-cluster hierarchy.
  bool ignore_coscheduling = false;
  std::string name{};                     ///< prefix of the partitions' names; "" = the device's name

  /// Throws config_error naming the partition whose SM count is not positive, or an empty list.
  void validate() const {
    if (sm_counts.empty()) throw gem::config_error("partition_config.sm_counts is empty (one partition at least)");
    for (std::size_t i = 0; i < sm_counts.size(); ++i)
      if (sm_counts[i] <= 0)
        throw gem::config_error("partition_config.sm_counts[" + std::to_string(i) + "] must be positive, got " +
                                std::to_string(sm_counts[i]));
  }
};

class exec_device;
[[nodiscard]] inline exec_device whole_gpu(int ordinal);
[[nodiscard]] inline std::vector<exec_device> split_device(int ordinal, const partition_config& cfg);

/// One execution device: a whole GPU (its primary context) or an SM partition (a green context).
/// Owns its stream (non-blocking) and, for a partition, its green context. Move-only.
class exec_device {
 public:
  exec_device() = default;
  exec_device(const exec_device&) = delete;
  exec_device& operator=(const exec_device&) = delete;
  exec_device(exec_device&& o) noexcept { swap(o); }
  exec_device& operator=(exec_device&& o) noexcept {
    exec_device t(std::move(o));
    swap(t);
    return *this;
  }
  ~exec_device() { release(); }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] int ordinal() const noexcept { return ordinal_; }          ///< CUDA device ordinal
  [[nodiscard]] std::int32_t sm_count() const noexcept { return sm_count_; }
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }  ///< the device's work stream
  [[nodiscard]] bool is_partition() const noexcept { return green_ != nullptr; }
  [[nodiscard]] std::int32_t index() const noexcept { return index_; }    ///< partition index (0 for a GPU)
  [[nodiscard]] const std::string& uuid() const noexcept { return uuid_; }
  /// Makes this device's context current on the calling thread until the returned scope ends.
  [[nodiscard]] context_scope activate() const { return context_scope(ctx_); }

 private:
  friend exec_device whole_gpu(int ordinal);
  friend std::vector<exec_device> split_device(int ordinal, const partition_config& cfg);

  void swap(exec_device& o) noexcept {
    std::swap(name_, o.name_);
    std::swap(uuid_, o.uuid_);
    std::swap(ordinal_, o.ordinal_);
    std::swap(index_, o.index_);
    std::swap(sm_count_, o.sm_count_);
    std::swap(stream_, o.stream_);
    std::swap(ctx_, o.ctx_);
    std::swap(green_, o.green_);
    std::swap(keep_, o.keep_);
  }
  void release() noexcept {
    if (stream_) {
      try {
        const context_scope s(ctx_);
        (void)cudaStreamDestroy(stream_);
      } catch (...) {
        (void)cudaStreamDestroy(stream_);
      }
    }
    if (green_) (void)detail::driver().green_ctx_destroy(green_);
    stream_ = nullptr;
    green_ = nullptr;
    keep_.reset();
  }

  std::string name_{};
  std::string uuid_{};
  int ordinal_ = 0;
  std::int32_t index_ = 0;
  std::int32_t sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  CUcontext ctx_ = nullptr;
  CUgreenCtx green_ = nullptr;
  std::shared_ptr<void> keep_{};  ///< intermediate green contexts the split went through
};

namespace detail {
inline std::string uuid_string(const cudaDeviceProp& p) {
  static const char* hex = "0123456789abcdef";
  std::string s = "GPU-";
  for (int i = 0; i < 16; ++i) {
    const auto b = static_cast<unsigned char>(p.uuid.bytes[i]);
    s += hex[b >> 4];
    s += hex[b & 15];
    if (i == 3 || i == 5 || i == 7 || i == 9) s += '-';
  }
  return s;
}
inline CUdevice cu_device(int ordinal) {
  CUdevice dev{};
  if (!driver().device_get) throw gem::cuda_error("the CUDA driver entry point cuDeviceGet is missing");
  driver_check(driver().device_get(&dev, ordinal), "cuDeviceGet(" + std::to_string(ordinal) + ")");
  return dev;
}
}  // namespace detail

/// GPU `ordinal` as a whole device (its primary context, a new non-blocking stream). Throws
/// gem::cuda_error when there is no such device.
[[nodiscard]] inline exec_device whole_gpu(int ordinal) {
  detail::runtime_check(cudaSetDevice(ordinal), "whole_gpu: cudaSetDevice(" + std::to_string(ordinal) + ")");
  detail::runtime_check(cudaFree(nullptr), "whole_gpu: initialising the primary context");
  cudaDeviceProp prop{};
  detail::runtime_check(cudaGetDeviceProperties(&prop, ordinal), "whole_gpu: cudaGetDeviceProperties");
  exec_device d;
  d.name_ = prop.name;
  d.uuid_ = detail::uuid_string(prop);
  d.ordinal_ = ordinal;
  d.sm_count_ = prop.multiProcessorCount;
  if (detail::driver().ctx_get_current)
    detail::driver_check(detail::driver().ctx_get_current(&d.ctx_), "whole_gpu: cuCtxGetCurrent");
  detail::runtime_check(cudaStreamCreateWithFlags(&d.stream_, cudaStreamNonBlocking), "whole_gpu: cudaStreamCreate");
  return d;
}

/// The SM partitioning rules of GPU `ordinal`. Throws gem::cuda_error when the driver has no green
/// contexts or the device is missing.
[[nodiscard]] inline sm_partition_rules partition_rules(int ordinal) {
  const auto& d = detail::driver();
  if (!d.has_green_contexts()) throw gem::cuda_error("partition_rules: this CUDA driver has no green contexts");
  detail::runtime_check(cudaSetDevice(ordinal), "partition_rules: cudaSetDevice");
  detail::runtime_check(cudaFree(nullptr), "partition_rules: initialising the primary context");
  CUdevResource r{};
  detail::driver_check(d.device_get_dev_resource(detail::cu_device(ordinal), &r, CU_DEV_RESOURCE_TYPE_SM),
                       "partition_rules: cuDeviceGetDevResource");
  return {static_cast<std::int32_t>(r.sm.smCount), static_cast<std::int32_t>(r.sm.minSmPartitionSize),
          static_cast<std::int32_t>(r.sm.smCoscheduledAlignment)};
}

/// Splits GPU `ordinal` into partitions of exactly cfg.sm_counts SMs (disjoint), each a green
/// context with its own non-blocking stream, named "<name> [<n> SMs, partition <i>]". Partitions
/// are taken in order from what the previous ones left; a split that gives more SMs than asked is
/// re-split inside a green context of its own. Throws config_error for a bad config or counts that
/// exceed the device, and gem::cuda_error (naming the partition and the SMs obtained) when the
/// driver cannot make a partition of exactly the asked size.
[[nodiscard]] inline std::vector<exec_device> split_device(int ordinal, const partition_config& cfg) {
  cfg.validate();
  const auto& d = detail::driver();
  if (!d.has_green_contexts()) throw gem::cuda_error("split_device: this CUDA driver has no green contexts");
  detail::runtime_check(cudaSetDevice(ordinal), "split_device: cudaSetDevice(" + std::to_string(ordinal) + ")");
  detail::runtime_check(cudaFree(nullptr), "split_device: initialising the primary context");
  cudaDeviceProp prop{};
  detail::runtime_check(cudaGetDeviceProperties(&prop, ordinal), "split_device: cudaGetDeviceProperties");
  const CUdevice dev = detail::cu_device(ordinal);
  CUdevResource pool{};
  detail::driver_check(d.device_get_dev_resource(dev, &pool, CU_DEV_RESOURCE_TYPE_SM),
                       "split_device: cuDeviceGetDevResource");
  std::int64_t asked = 0;
  for (auto c : cfg.sm_counts) asked += c;
  if (asked > static_cast<std::int64_t>(pool.sm.smCount))
    throw gem::config_error("partition_config.sm_counts sum to " + std::to_string(asked) + " SMs, device " +
                            std::to_string(ordinal) + " has " + std::to_string(pool.sm.smCount));

  // Intermediate green contexts (to re-split a split's output) stay alive as long as any partition.
  auto temps = std::make_shared<std::vector<CUgreenCtx>>();
  std::shared_ptr<void> keep(nullptr, [temps](void*) {
    for (auto g : *temps) (void)detail::driver().green_ctx_destroy(g);
  });
  const unsigned flags = cfg.ignore_coscheduling ? CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING : 0u;
  const auto make_ctx = [&](CUdevResource r, const std::string& what) {
    CUdevResourceDesc desc{};
    detail::driver_check(d.resource_generate_desc(&desc, &r, 1), what + ": cuDevResourceGenerateDesc");
    CUgreenCtx g{};
    detail::driver_check(d.green_ctx_create(&g, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM), what + ": cuGreenCtxCreate");
    return g;
  };
  const auto resplittable = [&](CUdevResource r, const std::string& what) {
    const CUgreenCtx g = make_ctx(r, what);
    temps->push_back(g);
    CUdevResource out{};
    detail::driver_check(d.green_ctx_get_dev_resource(g, &out, CU_DEV_RESOURCE_TYPE_SM),
                         what + ": cuGreenCtxGetDevResource");
    return out;
  };
  const auto split_one = [&](const CUdevResource& in, unsigned count, CUdevResource* rest, const std::string& what) {
    CUdevResource group{};
    unsigned n = 1;
    detail::driver_check(d.sm_resource_split_by_count(&group, &n, &in, rest, flags, count),
                         what + ": cuDevSmResourceSplitByCount(" + std::to_string(count) + " of " +
                             std::to_string(in.sm.smCount) + " SMs)");
    if (n < 1)
      throw gem::cuda_error(what + ": the driver made no group of " + std::to_string(count) + " SMs from " +
                            std::to_string(in.sm.smCount));
    return group;
  };

  std::vector<CUdevResource> groups;
  bool pool_is_output = false;
  for (std::size_t i = 0; i < cfg.sm_counts.size(); ++i) {
    const auto want = static_cast<unsigned>(cfg.sm_counts[i]);
    const std::string what = "split_device: partition " + std::to_string(i);
    if (pool_is_output) pool = resplittable(pool, what + " (pool)");
    CUdevResource rest{};
    auto group = split_one(pool, want, &rest, what);
    if (group.sm.smCount > want) {
      const auto inner = resplittable(group, what + " (re-split)");
      group = split_one(inner, want, nullptr, what + " (re-split)");
    }
    if (group.sm.smCount != want)
      throw gem::cuda_error(what + ": asked for " + std::to_string(want) + " SMs, the driver gave " +
                            std::to_string(group.sm.smCount) + " (min partition " +
                            std::to_string(pool.sm.minSmPartitionSize) + ", alignment " +
                            std::to_string(pool.sm.smCoscheduledAlignment) + ")");
    groups.push_back(group);
    pool = rest;
    pool_is_output = true;
  }

  std::vector<exec_device> out;
  out.reserve(groups.size());
  const std::string base = cfg.name.empty() ? std::string(prop.name) : cfg.name;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const std::string what = "split_device: partition " + std::to_string(i);
    exec_device e;
    e.green_ = make_ctx(groups[i], what);
    e.keep_ = keep;
    e.ordinal_ = ordinal;
    e.index_ = static_cast<std::int32_t>(i);
    e.uuid_ = detail::uuid_string(prop);
    CUdevResource got{};
    detail::driver_check(d.green_ctx_get_dev_resource(e.green_, &got, CU_DEV_RESOURCE_TYPE_SM),
                         what + ": cuGreenCtxGetDevResource");
    e.sm_count_ = static_cast<std::int32_t>(got.sm.smCount);
    detail::driver_check(d.ctx_from_green_ctx(&e.ctx_, e.green_), what + ": cuCtxFromGreenCtx");
    CUstream s{};
    detail::driver_check(d.green_ctx_stream_create(&s, e.green_, CU_STREAM_NON_BLOCKING, 0),
                         what + ": cuGreenCtxStreamCreate");
    e.stream_ = s;
    e.name_ = base + " [" + std::to_string(e.sm_count_) + " SMs, partition " + std::to_string(i) + "]";
    out.push_back(std::move(e));
  }
  return out;
}

/// Parses "40,32,32,24" into SM counts; throws config_error naming the bad item.
[[nodiscard]] inline std::vector<std::int32_t> parse_sm_counts(const std::string& text) {
  std::vector<std::int32_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    const auto item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    std::size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (...) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v <= 0 || v > 1 << 20)
      throw gem::config_error("SM counts '" + text + "': item " + std::to_string(out.size()) + " ('" + item +
                              "') is not a positive integer");
    out.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace gem::cuda
