// examples/moe_layer/main.cu — `moe_layer`: profiles devices (whole GPUs or SM partitions of one)
// and compares placement strategies on a real MoE layer driven by ESFT routing, measured per step
// in lock-step beside the evaluator's prediction from the measured profile.
//
//   moe_layer profile --partitions 40,32,32,24 [--isolated] --out profile.json [--samples s.csv]
//   moe_layer compare --partitions 40,32,32,24 --esft DIR[,DIR...] --layers 5,10 --tokens 256,1024
//                     [--slots 18] [--profile p.json] [--placement file.json ...] [--reps 5]
//                     [--path automatic|device_counts|per_group|grouped|bucketed|chunked] [--mixes 128] --out DIR
//   moe_layer compare --gpus 2 --gpu-sms 0,96 ...   (several real GPUs, rows moved with NCCL)
// Profiles fit the table to --mixes uneven row mixes (0: read it off uniform rows).
// The table model adds a cost per active expert; the per_group path (one cuBLAS GEMM per expert,
// back to back on the device's stream) is the execution whose cost is additive by construction.
// Devices: --partitions SMS (green contexts on GPU 0; rows copied inside the GPU, moe_layer.cuh) or
// --gpus N (GPUs 0..N-1, one rank each; with NCCL built in, expert-parallel: each rank holds a slice
// of every step's tokens and rows travel by NCCL, ep_layer.cuh, and the summary reports dispatch and
// combine beside the expert phase). --gpu-sms A,B,... restricts GPU g to that many SMs (a green
// context; 0 = the whole GPU) to emulate a slower GPU; --fine-partitions splits at finer
// granularity (no SM co-scheduling). Exit codes: 0 ok, 1 a check failed, 2 bad arguments, 3 a CUDA
// failure.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gem/eval/evaluator.hpp"
#include "gem/io/esft.hpp"
#include "gem/io/placement_formats.hpp"
#include "gem/load/empirical_load.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/speed/profile.hpp"
#include "moe_layer.cuh"
#if GEM_HAS_NCCL
#include "ep_layer.cuh"
#endif

namespace {

using gem::example::moe_layer;
using gem::example::run_mode;
namespace gc = gem::cuda;

struct options {
  std::string command;
  std::vector<std::int32_t> partitions;
  std::int32_t gpus = 0;
  std::vector<std::int32_t> gpu_sms;  ///< per GPU: SMs to keep (0 = whole GPU)
  bool fine_partitions = false;
  bool isolated = false;
  std::string out;
  std::string samples;
  std::vector<std::string> esft;
  std::vector<std::int32_t> layers{10};
  std::vector<std::int32_t> tokens{256, 1024};
  std::int32_t slots = 18;
  std::string profile;
  std::vector<std::string> placements;
  std::int32_t reps = 5;
  std::int32_t mixes = 128;
  std::uint64_t seed = 1;
  gc::gemm_path path = gc::gemm_path::automatic;
};

std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, c)) out.push_back(item);
  return out;
}

options parse(int argc, char** argv) {
  if (argc < 2) throw gem::config_error("usage: moe_layer profile|compare [options] (see the header of main.cu)");
  options o;
  o.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw gem::config_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--partitions") o.partitions = gc::parse_sm_counts(value());
    else if (a == "--gpus") o.gpus = std::stoi(value());
    else if (a == "--gpu-sms") {
      const auto v = value();
      for (const auto& item : split(v, ',')) {
        std::size_t used = 0;
        int n = -1;
        try {
          n = std::stoi(item, &used);
        } catch (...) {
        }
        if (item.empty() || used != item.size() || n < 0)
          throw gem::config_error("--gpu-sms '" + v + "': '" + item + "' is not an SM count (0 = whole GPU)");
        o.gpu_sms.push_back(n);
      }
    }
    else if (a == "--fine-partitions") o.fine_partitions = true;
    else if (a == "--isolated") o.isolated = true;
    else if (a == "--out") o.out = value();
    else if (a == "--samples") o.samples = value();
    else if (a == "--esft") o.esft = split(value(), ',');
    else if (a == "--layers") o.layers = gc::parse_sm_counts(value());
    else if (a == "--tokens") o.tokens = gc::parse_sm_counts(value());
    else if (a == "--slots") o.slots = std::stoi(value());
    else if (a == "--profile") o.profile = value();
    else if (a == "--placement") o.placements.push_back(value());
    else if (a == "--reps") o.reps = std::stoi(value());
    else if (a == "--mixes") o.mixes = std::stoi(value());
    else if (a == "--seed") o.seed = std::stoull(value());
    else if (a == "--path") {
      const auto v = value();
      bool known = false;
      for (const auto p : {gc::gemm_path::automatic, gc::gemm_path::device_counts, gc::gemm_path::per_group,
                           gc::gemm_path::grouped, gc::gemm_path::bucketed, gc::gemm_path::chunked})
        if (v == gc::to_string(p)) {
          o.path = p;
          known = true;
        }
      if (!known)
        throw gem::config_error("--path must be automatic, device_counts, per_group, grouped, bucketed or chunked, got '" +
                                v + "'");
    }
    else throw gem::config_error("unknown option " + a);
  }
  if (o.partitions.empty() && o.gpus <= 0) o.gpus = 1;
  if (!o.partitions.empty() && o.gpus > 0) throw gem::config_error("--partitions and --gpus exclude each other");
  if (!o.gpu_sms.empty() && static_cast<std::int32_t>(o.gpu_sms.size()) != o.gpus)
    throw gem::config_error("--gpu-sms needs one count per GPU of --gpus (" + std::to_string(o.gpus) + "), got " +
                            std::to_string(o.gpu_sms.size()));
  if (o.reps < 1) throw gem::config_error("--reps must be >= 1");
  if (o.mixes < 0) throw gem::config_error("--mixes must be >= 0");
  return o;
}

std::vector<gc::exec_device> make_devices(const options& o) {
  if (!o.partitions.empty()) return gc::split_device(0, {.sm_counts = o.partitions});
  if (o.gpus > gc::device_count())
    throw gem::config_error("--gpus " + std::to_string(o.gpus) + ": this process sees " +
                            std::to_string(gc::device_count()) + " GPU(s)");
  std::vector<gc::exec_device> d;
  for (int g = 0; g < o.gpus; ++g) {
    const auto sms = o.gpu_sms.empty() ? 0 : o.gpu_sms[static_cast<std::size_t>(g)];
    if (sms == 0 || sms >= gc::partition_rules(g).sm_count)
      d.push_back(gc::whole_gpu(g));
    else
      d.push_back(std::move(gc::split_device(g, {.sm_counts = {sms}, .ignore_coscheduling = o.fine_partitions})[0]));
  }
  return d;
}

// The uniform samples and, beside them (-mixes.csv), every uneven mix with its measured and
// predicted seconds.
void write_samples(const gc::profile_measurement& m, const std::string& path) {
  gc::write_profile_samples(m, path);
  gc::write_profile_mixes(m, std::filesystem::path(path).replace_extension().string() + "-mixes.csv");
}

void print_fit(const gc::profile_measurement& m, const char* what) {
  for (std::size_t d = 0; d < m.fit.size(); ++d)
    std::printf("  %s profile, device %zu: table vs its %zu mixes: error median %.1f%% p95 %.1f%% max %.1f%%\n", what, d,
                m.mixes[d].size(), 100 * m.fit[d].median_error, 100 * m.fit[d].p95_error, 100 * m.fit[d].max_error);
}

/// Profiles `devs` with the table standing for `slots` active experts per device (the slots each
/// device holds in the comparison), measured at 1, 4, 8, slots and 2 x slots active experts. Steps
/// of up to `max_tokens` tokens: the row grid reaches 4x the mean rows of an expert (hot experts),
/// in steps of 256 past 512 rows, so that large steps are read off the table, not extrapolated.
gc::profile_measurement profile_devices(const std::vector<gc::exec_device>& devs, bool concurrent, gc::gemm_path path,
                                        std::int32_t slots, std::int32_t mixes, std::int32_t max_tokens = 0) {
  gc::profiler_config cfg{.concurrent = concurrent, .path = path, .mixes = mixes};
  if (slots > 8) {
    cfg.active = {1, 4, 8, slots, 2 * slots};
    cfg.reference_active = slots;
  }
  const auto hot = 4 * max_tokens * cfg.shape.top_k / std::max(cfg.shape.num_experts, 1);
  for (std::int32_t r = cfg.rows.back() + 256; cfg.rows.back() < std::min(hot, 2048); r += 256) cfg.rows.push_back(r);
  return gc::measure_profile(devs, cfg);
}

int cmd_profile(const options& o) {
  const auto devs = make_devices(o);
  const auto m = profile_devices(devs, !o.isolated, o.path, o.slots, o.mixes);
  if (!o.out.empty()) gem::write_profile(m.profile, o.out);
  if (!o.samples.empty()) write_samples(m, o.samples);
  std::printf("profiled %zu device(s) in %.2f s (%s)\n", devs.size(), m.wall_seconds, o.isolated ? "isolated" : "concurrent");
  for (const auto& g : m.profile.gpus)
    std::printf("  %-40s %3d SMs  per step %.2f us  per expert %.2f us  +%.2f us at %g rows\n", g.device.c_str(),
                g.sm_count, g.seconds_per_step * 1e6, g.seconds_per_active_expert * 1e6, g.points.back().seconds * 1e6,
                g.points.back().rows);
  print_fit(m, o.isolated ? "isolated" : "concurrent");
  return 0;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(pos);
  return i + 1 < v.size() ? v[i] + (pos - static_cast<double>(i)) * (v[i + 1] - v[i]) : v[i];
}

struct run_row {
  std::string config;  // task/layer/B
  std::int32_t tokens = 0;
  std::string strategy;
  std::int32_t step = 0;
  std::string mode;
  double measured = 0, predicted = 0;
  double dispatch = 0, combine = 0, wall = 0;  ///< several real GPUs (NCCL): phases of the step
  std::vector<double> device_seconds;
  std::vector<double> device_predicted;
};

int cmd_compare(const options& o) {
  if (o.esft.empty()) throw gem::config_error("compare needs --esft DIR[,DIR...]");
  if (o.out.empty()) throw gem::config_error("compare needs --out DIR");
  std::filesystem::create_directories(o.out);
  const auto devs = make_devices(o);
  auto coord = gc::whole_gpu(0);
  const auto G = static_cast<std::int32_t>(devs.size());
#if GEM_HAS_NCCL
  std::unique_ptr<gem::example::ep_comms> comms;
  if (o.partitions.empty()) comms = std::make_unique<gem::example::ep_comms>(devs);
#else
  if (o.partitions.empty() && G > 1)
    std::printf("built without NCCL: rows move between GPUs by copies through GPU 0 (not an engine's dispatch)\n");
#endif
  const gem::example::moe_shape shape{.max_tokens = *std::max_element(o.tokens.begin(), o.tokens.end())};
  const gem::layer_shape lshape = gem::shapes::deepseek_v2_lite;

  // Profiles: measured here (concurrent: what the layer does; isolated beside it) unless given.
  gem::profile prof_conc, prof_iso;
  if (!o.profile.empty()) {
    prof_conc = gem::read_profile(o.profile, lshape);
    prof_iso = prof_conc;
  } else {
    const auto mc = profile_devices(devs, true, o.path, o.slots, o.mixes, shape.max_tokens);
    const auto mi = profile_devices(devs, false, o.path, o.slots, o.mixes, shape.max_tokens);
    prof_conc = mc.profile;
    prof_iso = mi.profile;
    gem::write_profile(prof_conc, o.out + "/profile-concurrent.json");
    gem::write_profile(prof_iso, o.out + "/profile-isolated.json");
    write_samples(mc, o.out + "/profile-concurrent-samples.csv");
    write_samples(mi, o.out + "/profile-isolated-samples.csv");
    std::printf("profiles: concurrent %.2f s, isolated %.2f s\n", mc.wall_seconds, mi.wall_seconds);
    print_fit(mc, "concurrent");
    print_fit(mi, "isolated");
  }
  if (static_cast<std::int32_t>(prof_conc.gpus.size()) != G)
    throw gem::config_error("the profile holds " + std::to_string(prof_conc.gpus.size()) + " GPUs, " +
                            std::to_string(G) + " devices are in use");
  const auto model_conc = gem::to_table(prof_conc);
  const auto model_iso = gem::to_table(prof_iso);

  // The model's weights (one bank, every strategy reads the same experts) and activations, on the
  // coordinator's GPU (profiling several GPUs left another one current).
  gc::detail::runtime_check(cudaSetDevice(coord.ordinal()), "cudaSetDevice");
  const auto H = static_cast<std::size_t>(shape.hidden), I = static_cast<std::size_t>(shape.inter);
  const auto E = static_cast<std::size_t>(shape.num_experts), K = static_cast<std::size_t>(shape.top_k);
  gc::bf16 *w13 = nullptr, *w2 = nullptr, *x = nullptr, *out = nullptr, *ref = nullptr;
  std::int32_t* d_ids = nullptr;
  float* d_w = nullptr;
  const auto T = static_cast<std::size_t>(shape.max_tokens);
  for (auto [p, n] : {std::pair{&w13, E * 2 * I * H}, std::pair{&w2, E * H * I}, std::pair{&x, T * H}, std::pair{&out, T * H},
                      std::pair{&ref, T * H}})
    gc::detail::runtime_check(cudaMalloc(reinterpret_cast<void**>(p), n * 2), "cudaMalloc");
  gc::detail::runtime_check(cudaMalloc(reinterpret_cast<void**>(&d_ids), T * K * 4), "cudaMalloc");
  gc::detail::runtime_check(cudaMalloc(reinterpret_cast<void**>(&d_w), T * K * 4), "cudaMalloc");
  const float ws = 1.0f / std::sqrt(static_cast<float>(H));
  for (auto s : {gc::fill_uniform_async(w13, E * 2 * I * H, 11, -ws, ws, coord.stream()),
                 gc::fill_uniform_async(w2, E * H * I, 12, -ws, ws, coord.stream()),
                 gc::fill_uniform_async(x, T * H, 13, -1.0f, 1.0f, coord.stream())})
    if (!s) throw gem::cuda_error("random fill failed");
  gc::detail::runtime_check(cudaStreamSynchronize(coord.stream()), "fill");
  const gem::example::expert_bank bank{w13, w2};
  const auto single = gem::example::single_device_placement(shape.num_experts);

  std::vector<run_row> rows;
  std::ofstream csv(o.out + "/steps.csv");
  csv << "config,tokens,strategy,step,mode,measured_s,predicted_s,dispatch_s,combine_s,wall_s";
  for (std::int32_t g = 0; g < G; ++g) csv << ",dev" << g << "_s";
  for (std::int32_t g = 0; g < G; ++g) csv << ",dev" << g << "_pred_s";
  csv << '\n';
  int failures = 0;
  double worst_err = 0;

  for (const auto& dir : o.esft) {
    for (const auto layer : o.layers) {
      for (const auto B : o.tokens) {
        const gem::esft_options eo{.num_experts = shape.num_experts, .top_k = shape.top_k,
                                   .steps = {.tokens_per_step = B, .last_step = gem::partial_step::drop},
                                   .first_layer = layer, .num_layers = 1};
        const auto et = gem::read_esft(dir, eo);
        const auto& tr = et.trace;
        const auto& rt = *tr.tokens();
        const auto parts = gem::split_steps(tr, 0.5);
        const std::string config = std::filesystem::path(dir).filename().string() + "/L" + std::to_string(layer) + "/B" +
                                   std::to_string(B);
        gem::placement_problem problem{.cluster = {.num_gpus = G, .slots_per_gpu = {o.slots}},
                                       .num_experts = shape.num_experts};
        const gem::empirical_load lm{.first_step = parts.fit.first, .num_steps = parts.fit.count, .max_steps = 512,
                                     .seed = o.seed};
        problem.layers.push_back(lm.loads(tr, gem::layer_id{0}));
        problem.validate();
        std::vector<std::pair<std::string, gem::placement>> strategies;
        strategies.emplace_back("eplb", gem::eplb{}.place(problem, model_conc));
        strategies.emplace_back("speed_proportional", gem::speed_proportional{}.place(problem, model_conc));
        strategies.emplace_back("gem", gem::gem_search{.seed = o.seed}.place(problem, model_conc));
        // Extended: per-GPU slot counts and speed-weighted replica shares (same total slots).
        const auto ext = gem::slot_mode::extended;
        strategies.emplace_back("speed_proportional-extended", gem::speed_proportional{.mode = ext}.place(problem, model_conc));
        strategies.emplace_back("gem-extended", gem::gem_search{.mode = ext, .seed = o.seed}.place(problem, model_conc));
        for (const auto& f : o.placements) {
          auto doc = gem::io::read_placement_file(f);
          if (doc.placement.num_gpus() != G || doc.placement.num_experts() != shape.num_experts) {
            std::printf("skipping %s: %d GPUs x %d experts\n", f.c_str(), doc.placement.num_gpus(), doc.placement.num_experts());
            continue;
          }
          // A multi-layer file gives this run the layer whose model layer id is L (layer_ids, or
          // ESFT numbering 1..L when the file carries none); a one-layer file is used as it is.
          std::int32_t l = 0;
          const auto& ids = doc.metadata.layer_ids;
          if (const auto it = std::find(ids.begin(), ids.end(), layer); it != ids.end())
            l = static_cast<std::int32_t>(it - ids.begin());
          else if (doc.placement.num_layers() > 1)
            l = std::clamp(layer - 1, 0, doc.placement.num_layers() - 1);
          std::vector<gem::layer_placement> one{doc.placement.layer(gem::layer_id{l})};
          strategies.emplace_back("file:" + std::filesystem::path(f).filename().string(),
                                  gem::placement(doc.placement.cluster(), doc.placement.num_experts(), std::move(one)));
        }
        // Steps to run: the held-out half.
        std::vector<std::int32_t> steps;
        for (std::int32_t s = parts.held_out.first; s < parts.held_out.first + parts.held_out.count; ++s) steps.push_back(s);
        const auto upload_step = [&](std::int32_t s) {
          const auto t0 = rt.step_offsets[s], t1 = rt.step_offsets[s + 1];
          const auto n = static_cast<std::size_t>(t1 - t0) * K;
          gc::detail::runtime_check(cudaMemcpy(d_ids, rt.ids.data() + t0 * K, n * 4, cudaMemcpyHostToDevice), "upload ids");
          gc::detail::runtime_check(cudaMemcpy(d_w, rt.weights.data() + t0 * K, n * 4, cudaMemcpyHostToDevice), "upload weights");
          return static_cast<std::int32_t>(t1 - t0);
        };
        // The single-device reference outputs of every held-out step.
        std::vector<std::vector<gc::bf16>> refs;
        {
          moe_layer one(std::span<const gc::exec_device>(&coord, 1), coord, single, gem::layer_id{0}, shape, bank);
          for (const auto s : steps) {
            const auto n = upload_step(s);
            (void)one.run_step(d_ids, d_w, n, x, ref, run_mode::concurrent);
            refs.emplace_back(static_cast<std::size_t>(n) * H);
            gc::detail::runtime_check(cudaMemcpy(refs.back().data(), ref, refs.back().size() * 2, cudaMemcpyDeviceToHost),
                                      "download reference");
          }
        }
        // One measured (step, mode): its CSV line and summary row.
        const auto record = [&](run_row row) {
          csv << row.config << ',' << B << ',' << row.strategy << ',' << row.step << ',' << row.mode << ',' << row.measured
              << ',' << row.predicted << ',' << row.dispatch << ',' << row.combine << ',' << row.wall;
          for (auto v : row.device_seconds) csv << ',' << v;
          for (auto v : row.device_predicted) csv << ',' << v;
          csv << '\n';
          rows.push_back(std::move(row));
        };
        // Output equality with the single-device reference (bf16 tolerance).
        const auto check_output = [&](const std::vector<gc::bf16>& got, std::size_t k, const std::string& name) {
          double num = 0, den = 0;
          for (std::size_t i = 0; i < got.size(); ++i) {
            const double a = __bfloat162float(got[i]), b = __bfloat162float(refs[k][i]);
            num += (a - b) * (a - b);
            den += b * b;
          }
          const double err = std::isfinite(num) && den > 0 && got.size() == refs[k].size() ? std::sqrt(num / den) : INFINITY;
          worst_err = std::max(worst_err, err);
          if (!(err <= 1e-2)) {
            ++failures;
            std::printf("OUTPUT MISMATCH %s %s step %d: relative L2 error %.3g\n", config.c_str(), name.c_str(), steps[k], err);
          }
        };
        const auto median_row = [&](const std::string& name, std::int32_t s, const char* mode,
                                    const std::vector<std::vector<double>>& dev, const std::vector<double>& lat,
                                    const std::vector<double>& pred) {
          run_row row{config, B, name, s, mode};
          row.measured = gc::median_of(lat);
          row.predicted = *std::max_element(pred.begin(), pred.end());
          for (std::int32_t g = 0; g < G; ++g) row.device_seconds.push_back(gc::median_of(dev[g]));
          row.device_predicted = pred;
          return row;
        };
        for (const auto& [name, pl] : strategies) {
          const auto& lp = pl.layer(gem::layer_id{0});
#if GEM_HAS_NCCL
          if (comms) {  // several real GPUs, rows moved by NCCL
            gem::example::ep_layer L(devs, *comms, pl, gem::layer_id{0}, shape, bank, o.path);
            for (std::size_t k = 0; k < steps.size(); ++k) {
              const auto s = steps[k];
              const auto t0 = rt.step_offsets[s], t1 = rt.step_offsets[s + 1];
              const auto n = static_cast<std::int32_t>(t1 - t0);
              L.stage(std::span(rt.ids).subspan(t0 * K, n * K), std::span(rt.weights).subspan(t0 * K, n * K), n, x);
              const auto c = tr.step_counts(gem::layer_id{0}, s);
              const auto pred = gem::gpu_seconds(lp, G, std::vector<double>(c.begin(), c.end()), model_conc);
              if (k == 0) (void)L.run_step();  // warm-up
              std::vector<std::vector<double>> dev(static_cast<std::size_t>(G));
              std::vector<double> lat, disp, comb, wall;
              for (std::int32_t r = 0; r < o.reps; ++r) {
                const auto t = L.run_step();
                lat.push_back(t.latency);
                disp.push_back(t.dispatch);
                comb.push_back(t.combine);
                wall.push_back(t.wall);
                for (std::int32_t g = 0; g < G; ++g) dev[g].push_back(t.device_seconds[g]);
              }
              auto row = median_row(name, s, "concurrent", dev, lat, pred);
              row.dispatch = gc::median_of(disp);
              row.combine = gc::median_of(comb);
              row.wall = gc::median_of(wall);
              record(std::move(row));
              check_output(L.output(), k, name);
            }
            continue;
          }
#endif
          moe_layer L(devs, coord, pl, gem::layer_id{0}, shape, bank, o.path);
          for (std::size_t k = 0; k < steps.size(); ++k) {
            const auto s = steps[k];
            const auto n = upload_step(s);
            const auto c = tr.step_counts(gem::layer_id{0}, s);
            const std::vector<double> counts(c.begin(), c.end());
            const auto pred_c = gem::gpu_seconds(lp, G, counts, model_conc);
            const auto pred_i = gem::gpu_seconds(lp, G, counts, model_iso);
            if (k == 0) (void)L.run_step(d_ids, d_w, n, x, out, run_mode::concurrent);  // warm-up
            for (const auto mode : {run_mode::concurrent, run_mode::isolated}) {
              std::vector<std::vector<double>> dev(static_cast<std::size_t>(G));
              std::vector<double> lat;
              for (std::int32_t r = 0; r < o.reps; ++r) {
                const auto t = L.run_step(d_ids, d_w, n, x, out, mode);
                lat.push_back(t.latency);
                for (std::int32_t g = 0; g < G; ++g) dev[g].push_back(t.device_seconds[g]);
              }
              const bool conc = mode == run_mode::concurrent;
              record(median_row(name, s, conc ? "concurrent" : "isolated", dev, lat, conc ? pred_c : pred_i));
            }
            std::vector<gc::bf16> got(static_cast<std::size_t>(n) * H);
            gc::detail::runtime_check(cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost), "download");
            check_output(got, k, name);
          }
        }
        csv.flush();
        std::printf("%s: %zu held-out steps, %zu strategies\n", config.c_str(), steps.size(), strategies.size());
        std::fflush(stdout);
      }
    }
  }
  for (void* p : {static_cast<void*>(w13), static_cast<void*>(w2), static_cast<void*>(x), static_cast<void*>(out),
                  static_cast<void*>(ref), static_cast<void*>(d_ids), static_cast<void*>(d_w)})
    (void)cudaFree(p);

  // Summary: per tokens-per-step and mode, mean lock-step latency per strategy, ratios of gem, and
  // prediction errors (|predicted - measured| / measured per step).
  std::ofstream sum(o.out + "/summary.txt");
  const auto both = [&](const std::string& s) {
    std::cout << s;
    sum << s;
  };
  char buf[512];
  std::snprintf(buf, sizeof buf, "devices:");
  both(buf);
  for (const auto& d : devs) both(" [" + d.name() + "]");
  both("\n");
  std::snprintf(buf, sizeof buf, "output equality vs single device: worst relative L2 error %.3g, %d mismatches\n",
                worst_err, failures);
  both(buf);
  std::vector<std::string> names;
  for (const auto& r : rows)
    if (std::find(names.begin(), names.end(), r.strategy) == names.end()) names.push_back(r.strategy);
  for (const auto B : o.tokens) {
    for (const std::string mode : {"concurrent", "isolated"}) {
      std::map<std::string, std::vector<double>> meas, err, disp, comb, wall;
      for (const auto& r : rows) {
        if (r.tokens != B || r.mode != mode) continue;
        meas[r.strategy].push_back(r.measured);
        err[r.strategy].push_back(std::abs(r.predicted - r.measured) / r.measured);
        disp[r.strategy].push_back(r.dispatch);
        comb[r.strategy].push_back(r.combine);
        wall[r.strategy].push_back(r.wall);
      }
      if (meas.empty()) continue;
      std::vector<double> all_err;
      for (const auto& [k, v] : err) all_err.insert(all_err.end(), v.begin(), v.end());
      std::snprintf(buf, sizeof buf, "B=%d %s: %zu step measurements, prediction error median %.1f%% p95 %.1f%%\n", B,
                    mode.c_str(), all_err.size(), 100 * percentile(all_err, 0.5), 100 * percentile(all_err, 0.95));
      both(buf);
      const auto mean_of = [](const std::vector<double>& v) {
        double s = 0;
        for (double t : v) s += t;
        return v.empty() ? 0.0 : s / static_cast<double>(v.size());
      };
      const auto mean = [&](const std::string& n) { return mean_of(meas[n]); };
      for (const auto& n : names) {
        std::snprintf(buf, sizeof buf, "  %-28s mean %8.1f us  p50 %8.1f us  pred err med %5.1f%% p95 %5.1f%%", n.c_str(),
                      1e6 * mean(n), 1e6 * percentile(meas[n], 0.5), 100 * percentile(err[n], 0.5),
                      100 * percentile(err[n], 0.95));
        both(buf);
        if (n != "eplb" && mean("eplb") > 0) {
          std::snprintf(buf, sizeof buf, "  %.3fx eplb", mean(n) / mean("eplb"));
          both(buf);
        }
        if (n.rfind("gem", 0) == 0) {
          const auto sp = "speed_proportional" + n.substr(3);
          if (mean(sp) > 0) {
            std::snprintf(buf, sizeof buf, "  %.3fx %s", mean(n) / mean(sp), sp.c_str());
            both(buf);
          }
        }
        both("\n");
        if (mean_of(wall[n]) > 0) {  // several real GPUs: the step's phases (host wall clock between barriers)
          std::snprintf(buf, sizeof buf,
                        "  %-28s   dispatch %7.1f us + combine %7.1f us beside the expert phase; whole step %8.1f us",
                        "", 1e6 * mean_of(disp[n]), 1e6 * mean_of(comb[n]), 1e6 * mean_of(wall[n]));
          both(buf);
          if (n != "eplb" && mean_of(wall["eplb"]) > 0) {
            std::snprintf(buf, sizeof buf, "  %.3fx eplb", mean_of(wall[n]) / mean_of(wall["eplb"]));
            both(buf);
          }
          both("\n");
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto o = parse(argc, argv);
    if (o.command == "profile") return cmd_profile(o);
    if (o.command == "compare") return cmd_compare(o);
    throw gem::config_error("unknown command '" + o.command + "' (profile, compare)");
  } catch (const gem::cuda_error& e) {
    std::cerr << "moe_layer: " << e.what() << '\n';
    return 3;
  } catch (const gem::config_error& e) {
    std::cerr << "moe_layer: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "moe_layer: " << e.what() << '\n';
    return 3;
  }
}
