// gem/cuda/profiler.cuh — the expert phase one device runs in a lock-step MoE layer (rows in,
// fused expert FFN over the device's slots, rows out) and the profiler that measures it at tile
// boundaries and over active-expert counts on whole GPUs or SM partitions (warm-up, timed runs,
// median, CUDA events), producing a gem::profile (gem/speed/profile.hpp) for the `table` model.
// Depends on gem/cuda/partition.cuh, gem/cuda/grouped_gemm.cuh, gem/cuda/random_fill.cuh and
// gem/speed/profile.hpp (nlohmann-json).
//
// Host call sequence (profiling):
//   auto devs = gem::cuda::split_device(0, {.sm_counts = {40, 32, 32, 24}});
//   auto m = gem::cuda::measure_profile(devs, {.shape = gem::shapes::deepseek_v2_lite});
//   gem::write_profile(m.profile, "h200-40-32-32-24.json");
// `gem profile` (tools/gem) should call measure_profile with the devices its options name and
// write m.profile; m.samples hold every (device, active experts, rows) median for a report.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "gem/cuda/grouped_gemm.cuh"
#include "gem/cuda/partition.cuh"
#include "gem/cuda/random_fill.cuh"
#include "gem/cuda/status.cuh"
#include "gem/error.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/profile.hpp"
#include "gem/speed/profile_fit.hpp"

namespace gem::cuda {

/// What one device's expert phase holds. An aggregate.
struct device_experts_config {
  std::int32_t hidden = 0;     ///< H
  std::int32_t inter = 0;      ///< I, one expert's intermediate size
  std::int32_t num_slots = 0;  ///< expert slots (weights) the device holds
  std::int32_t max_rows = 0;   ///< most token rows one step may bring (e.g. tokens x top_k)
  gemm_path path = gemm_path::automatic;

  /// Throws config_error naming the field out of range.
  void validate() const {
    if (hidden <= 0 || hidden % 32 != 0)
      throw gem::config_error("device_experts_config.hidden must be a positive multiple of 32, got " + std::to_string(hidden));
    if (inter <= 0 || inter % 32 != 0)
      throw gem::config_error("device_experts_config.inter must be a positive multiple of 32, got " + std::to_string(inter));
    if (num_slots <= 0)
      throw gem::config_error("device_experts_config.num_slots must be positive, got " + std::to_string(num_slots));
    if (max_rows <= 0)
      throw gem::config_error("device_experts_config.max_rows must be positive, got " + std::to_string(max_rows));
  }
};

/// One device's part of a MoE layer: its slots' weights ([S][2I][H] gate/up, [S][H][I] down), row
/// buffers, group sizes (host pinned and device), FFN workspace, a cuBLAS handle and two timing
/// events made in the device's context. Setup allocates; `enqueue` does not.
class device_experts {
 public:
  device_experts(const exec_device& dev, const device_experts_config& cfg) : dev_(&dev), cfg_(cfg) {
    cfg_.validate();
    try {
      create();
    } catch (...) {
      release();
      throw;
    }
  }
  device_experts(const device_experts&) = delete;
  device_experts& operator=(const device_experts&) = delete;
  ~device_experts() { release(); }

  [[nodiscard]] const exec_device& device() const noexcept { return *dev_; }
  [[nodiscard]] const device_experts_config& config() const noexcept { return cfg_; }
  [[nodiscard]] bf16* w13() const noexcept { return w13_; }  ///< [S][2I][H]
  [[nodiscard]] bf16* w2() const noexcept { return w2_; }    ///< [S][H][I]
  [[nodiscard]] bf16* x() const noexcept { return x_; }      ///< [max_rows][H] rows in
  [[nodiscard]] bf16* y() const noexcept { return y_; }      ///< [max_rows][H] rows out
  /// Host group sizes of the next enqueue: counts [S] then offsets [S+1] (offsets[0] = 0), pinned.
  /// Write them before enqueue_async; do not touch them again until the device is synchronized.
  [[nodiscard]] std::span<std::int32_t> host_counts() noexcept { return {h_sizes_, static_cast<std::size_t>(cfg_.num_slots)}; }
  [[nodiscard]] std::span<std::int32_t> host_offsets() noexcept {
    return {h_sizes_ + cfg_.num_slots, static_cast<std::size_t>(cfg_.num_slots) + 1};
  }

  /// Enqueues the device's expert phase on its stream and returns before it finishes: upload the
  /// host group sizes, copy `rows` rows of `src` (H bf16 each; null: x() already holds them) into
  /// x(), y = FFN of each slot's rows, copy y() into `dst` (null: leave them in y()), bracketed by
  /// the timing events. Offsets must end at `rows` <= max_rows.
  [[nodiscard]] status enqueue_async(std::int32_t rows, const bf16* src, bf16* dst) noexcept {
    const auto S = cfg_.num_slots;
    if (rows < 0 || rows > cfg_.max_rows || h_sizes_[S + S] != rows || h_sizes_[S] != 0)
      return {status_code::invalid_argument, cudaSuccess, 0};
    try {
      const auto scope = dev_->activate();
      const auto st = dev_->stream();
      const auto row_bytes = static_cast<std::size_t>(cfg_.hidden) * sizeof(bf16);
      if (auto e = cudaEventRecord(begin_, st); e != cudaSuccess) return from_cuda(e);
      if (auto e = cudaMemcpyAsync(d_sizes_, h_sizes_, (2 * static_cast<std::size_t>(S) + 1) * 4, cudaMemcpyHostToDevice, st);
          e != cudaSuccess)
        return from_cuda(e);
      if (src && rows > 0)
        if (auto e = cudaMemcpyAsync(x_, src, rows * row_bytes, cudaMemcpyDeviceToDevice, st); e != cudaSuccess)
          return from_cuda(e);
      if (rows > 0) {
        std::int32_t most = 1;
        for (std::int32_t g = 0; g < S; ++g) most = std::max(most, h_sizes_[g]);
        const expert_ffn_problem f{.num_groups = S, .hidden = cfg_.hidden, .inter = cfg_.inter, .capacity_rows = rows,
                                   .x = x_, .w13 = w13_, .w2 = w2_, .y = y_, .counts = d_sizes_,
                                   .offsets = d_sizes_ + S, .rows_hint = most, .max_active_groups = S};
        const host_group_sizes hs{host_counts(), host_offsets()};
        if (auto s = expert_ffn_async(f, cfg_.path, hs, workers_->context(), ws_, ws_bytes_, st); !s) return s;
      }
      if (dst && rows > 0)
        if (auto e = cudaMemcpyAsync(dst, y_, rows * row_bytes, cudaMemcpyDeviceToDevice, st); e != cudaSuccess)
          return from_cuda(e);
      return from_cuda(cudaEventRecord(end_, st));
    } catch (...) {
      return {status_code::cuda_failure, cudaErrorUnknown, 0};
    }
  }

  /// Seconds between the last enqueue's two events. Synchronizes with its end.
  [[nodiscard]] double last_seconds() const {
    detail::runtime_check(cudaEventSynchronize(end_), "device_experts: cudaEventSynchronize");
    float ms = 0;
    detail::runtime_check(cudaEventElapsedTime(&ms, begin_, end_), "device_experts: cudaEventElapsedTime");
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  void create() {
    const auto H = static_cast<std::size_t>(cfg_.hidden), I = static_cast<std::size_t>(cfg_.inter);
    const auto S = static_cast<std::size_t>(cfg_.num_slots), R = static_cast<std::size_t>(cfg_.max_rows);
    // Memory in the primary context (shared by the GPU's partitions).
    detail::runtime_check(cudaSetDevice(dev_->ordinal()), "device_experts: cudaSetDevice");
    alloc(w13_, S * 2 * I * H);
    alloc(w2_, S * H * I);
    alloc(x_, R * H);
    alloc(y_, R * H);
    void* p = nullptr;
    detail::runtime_check(cudaMalloc(&p, (2 * S + 1) * 4), "device_experts: cudaMalloc sizes");
    d_sizes_ = static_cast<std::int32_t*>(p);
    detail::runtime_check(cudaHostAlloc(&p, (2 * S + 1) * 4, cudaHostAllocPortable), "device_experts: cudaHostAlloc");
    h_sizes_ = static_cast<std::int32_t*>(p);
    std::fill(h_sizes_, h_sizes_ + 2 * S + 1, 0);
    const expert_ffn_problem f{.num_groups = cfg_.num_slots, .hidden = cfg_.hidden, .inter = cfg_.inter,
                               .capacity_rows = cfg_.max_rows};
    ws_bytes_ = expert_ffn_workspace_size(f, cfg_.path);
    detail::runtime_check(cudaMalloc(&ws_, ws_bytes_), "device_experts: cudaMalloc workspace");
    // Handles and events belong to the device's own context.
    const auto scope = dev_->activate();
    workers_ = new cublas_workers(0);
    detail::runtime_check(cudaEventCreate(&begin_), "device_experts: cudaEventCreate");
    detail::runtime_check(cudaEventCreate(&end_), "device_experts: cudaEventCreate");
  }
  static void alloc(bf16*& p, std::size_t n) {
    void* q = nullptr;
    detail::runtime_check(cudaMalloc(&q, std::max<std::size_t>(n, 1) * sizeof(bf16)), "device_experts: cudaMalloc");
    p = static_cast<bf16*>(q);
  }
  void release() noexcept {
    if (begin_) (void)cudaEventDestroy(begin_);
    if (end_) (void)cudaEventDestroy(end_);
    delete workers_;
    for (void* p : {static_cast<void*>(w13_), static_cast<void*>(w2_), static_cast<void*>(x_), static_cast<void*>(y_),
                    static_cast<void*>(d_sizes_), ws_})
      if (p) (void)cudaFree(p);
    if (h_sizes_) (void)cudaFreeHost(h_sizes_);
    begin_ = end_ = nullptr;
    workers_ = nullptr;
  }

  const exec_device* dev_;
  device_experts_config cfg_;
  bf16 *w13_ = nullptr, *w2_ = nullptr, *x_ = nullptr, *y_ = nullptr;
  std::int32_t* d_sizes_ = nullptr;
  std::int32_t* h_sizes_ = nullptr;
  void* ws_ = nullptr;
  std::size_t ws_bytes_ = 0;
  cublas_workers* workers_ = nullptr;
  cudaEvent_t begin_ = nullptr, end_ = nullptr;
};

// ---- profiler ------------------------------------------------------------------------------------

/// What measure_profile measures. An aggregate; defaults fit DeepSeek-V2-Lite on 4 partitions.
struct profiler_config {
  layer_shape shape = shapes::deepseek_v2_lite;
  /// Rows per active expert to measure: 1, then GEMM-tile boundaries (BM = tile_rows) and the
  /// small-row regime below the first tile, strictly increasing.
  std::vector<std::int32_t> rows{1, 8, 16, 32, 64, 128, 256, 384, 512};
  std::vector<std::int32_t> active{1, 4, 8, 16, 24};  ///< active-expert counts to measure, increasing
  /// The active count whose per-expert cost becomes the table (the experts a device typically runs
  /// in one step, e.g. num_experts / devices); must be one of `active`.
  std::int32_t reference_active = 16;
  std::int32_t tile_rows = 128;  ///< BM, recorded in the profile
  std::int32_t warmup = 3;
  std::int32_t repeats = 10;     ///< timed runs per point (>= 10); the median is kept
  bool concurrent = false;       ///< time every device at once (shared memory bandwidth) or one at a time
  gemm_path path = gemm_path::automatic;
  std::uint32_t seed = 1;
  /// Uneven row mixes to time after the uniform grid (gem::profile_mixes over `reference_active`
  /// experts, mean rows per expert up to rows.back() / 2). With mixes > 0 each device's table is
  /// fitted to them (gem::fit_profile_gpu): a real step's skewed rows run the grouped kernels
  /// differently from even rows, so the table is read off what a step looks like. With 0 it is
  /// read off the uniform samples at `reference_active` (profile_gpu_from_samples).
  std::int32_t mixes = 128;

  /// Throws config_error naming the field out of range.
  void validate() const {
    shape.validate();
    if (shape.dtype_bytes != 2) throw gem::config_error("profiler_config.shape.dtype_bytes must be 2 (bf16)");
    const auto increasing = [](const std::vector<std::int32_t>& v) {
      if (v.empty() || v.front() <= 0) return false;
      for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] <= v[i - 1]) return false;
      return true;
    };
    if (!increasing(rows)) throw gem::config_error("profiler_config.rows must be positive and strictly increasing");
    if (!increasing(active)) throw gem::config_error("profiler_config.active must be positive and strictly increasing");
    if (std::find(active.begin(), active.end(), reference_active) == active.end())
      throw gem::config_error("profiler_config.reference_active (" + std::to_string(reference_active) +
                              ") must be one of profiler_config.active");
    if (tile_rows <= 0) throw gem::config_error("profiler_config.tile_rows must be positive");
    if (warmup < 0) throw gem::config_error("profiler_config.warmup must be >= 0");
    if (repeats < 10) throw gem::config_error("profiler_config.repeats must be >= 10, got " + std::to_string(repeats));
    if (mixes < 0) throw gem::config_error("profiler_config.mixes must be >= 0, got " + std::to_string(mixes));
  }
};

/// One measured point: `device` ran `active` experts of `rows` rows each.
struct profile_sample {
  std::int32_t device = 0;
  std::int32_t active = 0;
  std::int32_t rows = 0;
  double median_seconds = 0;
  double min_seconds = 0;
  double max_seconds = 0;
};

/// A measured profile and the samples behind it.
struct profile_measurement {
  gem::profile profile{};
  std::vector<profile_sample> samples{};
  /// Per device: the timed uneven mixes (rows per expert, median seconds), empty when cfg.mixes = 0.
  std::vector<std::vector<gem::profile_observation>> mixes{};
  /// Per device: how well its table predicts those mixes (zeros when cfg.mixes = 0).
  std::vector<gem::profile_fit_quality> fit{};
  double wall_seconds = 0;  ///< host time the measurement took
};

/// Median of `v` (mean of the two middle values for an even count); 0 for none.
[[nodiscard]] inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The table of one device from its samples at `reference_active` experts: per-expert cost
/// u(r) = median / reference_active, made non-decreasing in r (a running maximum: a measured dip
/// is noise, the table model needs monotone points); seconds_per_active_expert = u(rows[0]) and
/// point k = (rows[k], u(rows[k]) - u(rows[0])). So a device running `reference_active` experts of r
/// rows is predicted at exactly the measured median. Throws config_error when a row of `rows`
/// has no sample.
[[nodiscard]] inline profile_gpu profile_gpu_from_samples(std::span<const profile_sample> samples, std::int32_t device,
                                                          std::int32_t reference_active,
                                                          std::span<const std::int32_t> rows) {
  profile_gpu g;
  double run = 0, base = 0;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const profile_sample* hit = nullptr;
    for (const auto& s : samples)
      if (s.device == device && s.active == reference_active && s.rows == rows[k]) hit = &s;
    if (!hit)
      throw gem::config_error("profile_gpu_from_samples: device " + std::to_string(device) + " has no sample at " +
                              std::to_string(reference_active) + " experts x " + std::to_string(rows[k]) + " rows");
    run = std::max(run, hit->median_seconds / reference_active);
    if (k == 0) base = run;
    g.points.push_back({static_cast<double>(rows[k]), run - base});
  }
  g.seconds_per_active_expert = base;
  return g;
}

/// Measures the expert phase (device_experts::enqueue_async: group sizes up, rows in, fused expert
/// FFN, rows out) on each device for every (active, rows) of `cfg`: `warmup` untimed then `repeats`
/// timed runs with CUDA events on the device's stream, median kept; all devices at once when
/// cfg.concurrent, else one after another. Weights and rows are uniform random bf16 (never zeros),
/// weights of distinct experts distinct (no cache reuse between experts). Throws config_error for a
/// bad config and gem::cuda_error when a launch fails.
[[nodiscard]] inline profile_measurement measure_profile(std::span<const exec_device> devices, const profiler_config& cfg) {
  cfg.validate();
  if (devices.empty()) throw gem::config_error("measure_profile: no devices");
  const auto t0 = std::chrono::steady_clock::now();
  const auto H = static_cast<std::int32_t>(cfg.shape.hidden), I = static_cast<std::int32_t>(cfg.shape.intermediate);
  const auto max_active = cfg.active.back();
  const auto max_rows = cfg.rows.back() * max_active;
  std::vector<std::unique_ptr<device_experts>> units;
  for (std::size_t d = 0; d < devices.size(); ++d) {
    units.push_back(std::make_unique<device_experts>(
        devices[d], device_experts_config{.hidden = H, .inter = I, .num_slots = max_active, .max_rows = max_rows, .path = cfg.path}));
    auto& u = *units.back();
    const auto st = devices[d].stream();
    const auto seed = cfg.seed + 7919u * static_cast<std::uint32_t>(d);
    const auto w13n = static_cast<std::size_t>(max_active) * 2 * I * H, w2n = static_cast<std::size_t>(max_active) * H * I;
    const float ws = 1.0f / std::sqrt(static_cast<float>(H));
    for (auto s : {fill_uniform_async(u.w13(), w13n, seed, -ws, ws, st), fill_uniform_async(u.w2(), w2n, seed + 1, -ws, ws, st),
                   fill_uniform_async(u.x(), static_cast<std::size_t>(max_rows) * H, seed + 2, -1.0f, 1.0f, st)})
      if (!s) throw gem::cuda_error(std::string("measure_profile: random fill failed: ") + to_string(s.code));
    detail::runtime_check(cudaStreamSynchronize(st), "measure_profile: fill");
  }
  profile_measurement m;
  // Times one phase shape, `counts` rows per slot (the rest idle), on every device (all at once
  // when concurrent, else one after another): warm-up, then repeats; the runs' times per device.
  std::vector<std::int32_t> counts;
  const auto time_phase = [&] {
    std::int32_t total = 0;
    for (const auto c : counts) total += c;
    std::vector<std::vector<double>> times(devices.size());
    const auto timed = [&](std::size_t d0, std::size_t d1) {
      for (std::int32_t k = 0; k < cfg.warmup + cfg.repeats; ++k) {
        for (auto d = d0; d < d1; ++d) {
          auto c = units[d]->host_counts();
          auto o = units[d]->host_offsets();
          std::fill(c.begin(), c.end(), 0);
          std::copy(counts.begin(), counts.end(), c.begin());
          o[0] = 0;
          for (std::size_t g = 0; g < c.size(); ++g) o[g + 1] = o[g] + c[g];
          if (auto s = units[d]->enqueue_async(total, nullptr, nullptr); !s)
            throw gem::cuda_error("measure_profile: " + devices[d].name() + ": expert phase failed: " + to_string(s.code) +
                                  (s.cuda != cudaSuccess ? std::string(" (") + cudaGetErrorString(s.cuda) + ")" : ""));
        }
        for (auto d = d0; d < d1; ++d) {
          const double s = units[d]->last_seconds();
          if (k >= cfg.warmup) times[d].push_back(s);
        }
      }
    };
    if (cfg.concurrent) timed(0, devices.size());
    else
      for (std::size_t d = 0; d < devices.size(); ++d) timed(d, d + 1);
    return times;
  };
  // The uniform grid: a experts of r rows each.
  for (const auto a : cfg.active) {
    for (const auto r : cfg.rows) {
      counts.assign(static_cast<std::size_t>(a), r);
      const auto times = time_phase();
      for (std::size_t d = 0; d < devices.size(); ++d)
        m.samples.push_back({static_cast<std::int32_t>(d), a, r, median_of(times[d]),
                             *std::min_element(times[d].begin(), times[d].end()),
                             *std::max_element(times[d].begin(), times[d].end())});
    }
  }
  // Uneven mixes: every device runs the same mix, median of the runs.
  m.mixes.assign(devices.size(), {});
  for (const auto& mix : profile_mixes(cfg.mixes, cfg.reference_active, std::max(1, cfg.rows.back() / 2), cfg.seed)) {
    counts = mix;
    const auto times = time_phase();
    for (std::size_t d = 0; d < devices.size(); ++d)
      m.mixes[d].push_back({std::vector<double>(mix.begin(), mix.end()), median_of(times[d])});
  }
  units.clear();
  auto& p = m.profile;
  p.shape = cfg.shape;
  p.dtype = "bf16";
  p.tile_rows = cfg.tile_rows;
  {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    p.measured_at = buf;
  }
  int rt = 0, drv = 0;
  (void)cudaRuntimeGetVersion(&rt);
  (void)cudaDriverGetVersion(&drv);
  p.method = "gem::cuda::measure_profile (CUDA runtime " + std::to_string(rt) + ", driver " + std::to_string(drv) +
             "): expert phase = group sizes up + rows in (D2D) + fused expert FFN (expert_ffn_async, path " +
             to_string(cfg.path) + ") + rows out (D2D), " + std::to_string(cfg.warmup) + " warm-up + " +
             std::to_string(cfg.repeats) + " timed runs per point, median, CUDA events on the device's stream, " +
             (cfg.concurrent ? "all devices at once" : "one device at a time") +
             ", random bf16 data, default clocks; " +
             (cfg.mixes > 0 ? "table fitted (non-negative least squares, relative error) to " + std::to_string(cfg.mixes) +
                                  " uneven mixes of up to " + std::to_string(cfg.reference_active) +
                                  " experts (lognormal rows, gem::profile_mixes seed " + std::to_string(cfg.seed) + ")"
                            : "per-expert cost from " + std::to_string(cfg.reference_active) + " active experts of r rows each");
  for (std::size_t d = 0; d < devices.size(); ++d) {
    const std::vector<double> knots(cfg.rows.begin(), cfg.rows.end());
    auto g = cfg.mixes > 0 ? fit_profile_gpu(m.mixes[d], knots)
                           : profile_gpu_from_samples(m.samples, static_cast<std::int32_t>(d), cfg.reference_active, cfg.rows);
    m.fit.push_back(cfg.mixes > 0 ? fit_quality(g, m.mixes[d]) : profile_fit_quality{});
    g.device = devices[d].name();
    g.uuid = devices[d].uuid();
    g.sm_count = devices[d].sm_count();
    p.gpus.push_back(std::move(g));
  }
  validate_profile(p, "measure_profile");
  m.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

/// Writes every uniform sample of `m` as CSV (device, active, rows, median_s, min_s, max_s).
/// Throws gem::io_error when the file cannot be written.
inline void write_profile_samples(const profile_measurement& m, const std::string& path) {
  std::ofstream f(path);
  if (!f) throw gem::io_error("cannot write '" + path + "'");
  f << "device,active,rows,median_s,min_s,max_s\n";
  for (const auto& s : m.samples)
    f << s.device << ',' << s.active << ',' << s.rows << ',' << s.median_seconds << ',' << s.min_seconds << ','
      << s.max_seconds << '\n';
}

/// Writes every uneven mix of `m` as CSV (device, measured_s, predicted_s by m.profile's table,
/// rows per expert ';'-separated). Writes nothing when `m` holds no mixes. Throws gem::io_error
/// when the file cannot be written.
inline void write_profile_mixes(const profile_measurement& m, const std::string& path) {
  if (m.mixes.empty() || m.mixes[0].empty()) return;
  const auto t = to_table(m.profile);
  std::ofstream x(path);
  if (!x) throw gem::io_error("cannot write '" + path + "'");
  x << "device,measured_s,predicted_s,rows\n";
  for (std::size_t d = 0; d < m.mixes.size(); ++d)
    for (const auto& o : m.mixes[d]) {
      x << d << ',' << o.seconds << ',' << t.seconds(gpu_id{static_cast<std::int32_t>(d)}, work{o.rows}) << ',';
      for (std::size_t e = 0; e < o.rows.size(); ++e) x << (e ? ";" : "") << o.rows[e];
      x << '\n';
    }
}

}  // namespace gem::cuda
