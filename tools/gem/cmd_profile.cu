// `gem profile`: measures a speed profile (gem/speed/profile.hpp) on this machine's GPUs or on SM
// partitions of one GPU (green contexts) with gem::cuda::measure_profile, and writes it as JSON for
// `gem place --profile` and `gem evaluate --profile`. Built when gem is configured with CUDA.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "gem/cuda/partition.cuh"
#include "gem/cuda/profiler.cuh"
#include "gem/speed/profile.hpp"

namespace gem::cli {

namespace {

struct profile_cli_options {
  std::string out{};
  std::string samples{};
  std::string shape = "deepseek-v2-lite";
  std::string partitions{};
  std::int32_t gpus = 0;
  bool isolated = false;
  std::int32_t experts_per_device = 0;
  std::int32_t mixes = 128;
  std::int32_t repeats = 10;
  std::string path = "automatic";
};

cuda::gemm_path path_by_name(const std::string& v) {
  for (const auto p : {cuda::gemm_path::automatic, cuda::gemm_path::device_counts, cuda::gemm_path::per_group,
                       cuda::gemm_path::grouped, cuda::gemm_path::bucketed, cuda::gemm_path::chunked})
    if (v == cuda::to_string(p)) return p;
  throw config_error("--path must be automatic, device_counts, per_group, grouped, bucketed or chunked, got '" + v +
                     "'");
}

void run_profile(const profile_cli_options& o) {
  // Options first (exit 2), then the GPU (exit 1).
  const auto shape = layer_shape_by_name(o.shape);
  const auto path = path_by_name(o.path);
  if (!o.partitions.empty() && o.gpus > 0) throw config_error("give --partitions or --gpus, not both");
  const auto sm_counts = o.partitions.empty() ? std::vector<std::int32_t>{} : cuda::parse_sm_counts(o.partitions);
  if (o.repeats < 10) throw config_error("--repeats must be >= 10, got " + std::to_string(o.repeats));
  const int visible = cuda::device_count();
  if (visible <= 0) throw cuda_error("gem profile: no CUDA device is visible to this process");
  std::vector<cuda::exec_device> devs;
  if (!sm_counts.empty()) {
    devs = cuda::split_device(0, {.sm_counts = sm_counts});
  } else {
    const int n = o.gpus > 0 ? o.gpus : visible;
    if (n > visible)
      throw config_error("--gpus " + std::to_string(n) + ": only " + std::to_string(visible) + " CUDA device(s) are visible");
    for (int g = 0; g < n; ++g) devs.push_back(cuda::whole_gpu(g));
  }
  const auto num_devices = static_cast<std::int32_t>(devs.size());
  // The table stands for the experts one device runs in a step: the shape's experts spread over
  // the devices unless given.
  std::int32_t ref = o.experts_per_device;
  if (ref <= 0) ref = std::max(1, (shape.num_experts + num_devices - 1) / num_devices);
  cuda::profiler_config cfg{.shape = shape, .repeats = o.repeats, .concurrent = !o.isolated, .path = path, .mixes = o.mixes};
  cfg.active.clear();
  for (const auto a : {1, 4, 8, ref, 2 * ref})
    if (cfg.active.empty() || a > cfg.active.back()) cfg.active.push_back(a);
  cfg.reference_active = ref;
  const auto m = cuda::measure_profile(devs, cfg);
  write_profile(m.profile, o.out);
  if (!o.samples.empty()) cuda::write_profile_samples(m, o.samples);
  std::printf("profiled %d device(s) (%s, %s path, %d experts per device) in %.2f s -> %s\n", num_devices,
              o.isolated ? "one at a time" : "all at once", o.path.c_str(), ref, m.wall_seconds, o.out.c_str());
  for (std::size_t d = 0; d < m.profile.gpus.size(); ++d) {
    const auto& g = m.profile.gpus[d];
    std::printf("  %-36s %3d SMs  %.2f us per step + %.2f us per active expert, +%.2f us at %g rows", g.device.c_str(),
                g.sm_count, g.seconds_per_step * 1e6, g.seconds_per_active_expert * 1e6, g.points.back().seconds * 1e6,
                g.points.back().rows);
    if (d < m.fit.size() && o.mixes > 0)
      std::printf("  (fit to %d mixes: median error %.1f%%, p95 %.1f%%)", o.mixes, 100 * m.fit[d].median_error,
                  100 * m.fit[d].p95_error);
    std::printf("\n");
  }
}

}  // namespace

void register_profile(CLI::App& app) {
  auto o = std::make_shared<profile_cli_options>();
  auto* sub = app.add_subcommand("profile", "Measure a speed profile of this machine's GPUs (or SM partitions of GPU 0)");
  sub->footer(
      "Examples:\n"
      "  gem profile -o h200.json                               every visible GPU, all at once\n"
      "  gem profile --partitions 40,32,32,24 -o parts.json     four green-context partitions of GPU 0\n"
      "  gem place --trace TRACE --gpus 4 --profile parts.json -o placement.json\n"
      "What is timed: one device's expert phase of a lock-step MoE layer (group sizes up, rows in, the fused\n"
      "expert FFN over its experts, rows out) at tile boundaries and over active-expert counts (3 warm-up,\n"
      "--repeats timed runs, median, CUDA events), then --mixes uneven row mixes like real routing, to which\n"
      "the table is fitted. Exit codes: 0 written, 2 bad options, 1 a CUDA failure (no device, launch error).");
  sub->add_option("-o,--out", o->out, "Profile JSON to write")->required();
  sub->add_option("--samples", o->samples, "Also write every uniform sample (device, active, rows, median/min/max) as CSV");
  sub->add_option("--shape", o->shape, "Expert shape: deepseek-v2-lite, deepseek-v3, mixtral-8x7b, qwen3-30b-a3b, olmoe");
  sub->add_option("--partitions", o->partitions, "SM counts of partitions of GPU 0, e.g. 40,32,32,24 (multiples of 8 on Hopper)");
  sub->add_option("--gpus", o->gpus, "Profile GPUs 0..N-1 (default: every visible GPU)")->check(CLI::PositiveNumber);
  sub->add_flag("--isolated", o->isolated, "Time one device at a time (default: all at once, sharing nothing but the host)");
  sub->add_option("--experts-per-device", o->experts_per_device,
                  "Experts one device runs per step, the table's reference (default: experts / devices)");
  sub->add_option("--mixes", o->mixes, "Uneven row mixes to fit the table to (0: read it off even rows)")->check(CLI::NonNegativeNumber);
  sub->add_option("--repeats", o->repeats, "Timed runs per point (>= 10)");
  sub->add_option("--path", o->path, "Expert GEMM path: automatic, device_counts, per_group, grouped, bucketed, chunked");
  sub->callback([o] { run_profile(*o); });
}

}  // namespace gem::cli
