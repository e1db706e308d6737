// `gem demo`: the main job on built-in data — a seeded synthetic trace calibrated to real routing
// (ESFT, DeepSeek-V2-Lite), 8 H200s with one 27.7% slower, every strategy fitted on half the steps
// and replayed on the other half. Prints what it did, then the comparison table.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "gem/trace/synthetic.hpp"

namespace gem::cli {

namespace {

struct demo_options {
  std::uint64_t seed = 1;
  std::string svg{};
  std::string json{};
  bool extended = true;
  std::int64_t budget = 100000;
};

void run_demo(const demo_options& o) {
  const auto start = std::chrono::steady_clock::now();
  synthetic_config cfg{};
  cfg.num_layers = 8;
  cfg.num_steps = 256;
  cfg.tokens_per_step = 256;
  cfg.seed = o.seed;
  const auto trace = generate_synthetic(cfg).trace;
  const cluster_options co{.gpus = 8, .replicas = cfg.num_experts + 8, .groups = 1, .nodes = 1};
  const auto cluster = make_cluster(co, cfg.num_experts);
  speed_options so;
  so.variability = "high";
  so.shape = "deepseek-v2-lite";
  const auto speed = make_speed(so, co.gpus, o.seed);
  std::cout << "gem demo: the main job on built-in data (no files needed)\n"
            << "  trace    synthetic routing calibrated to the ESFT logs of DeepSeek-V2-Lite (seed " << o.seed << "):\n"
            << "           " << cfg.num_layers << " MoE layers, " << cfg.num_experts << " experts, top-" << cfg.top_k << ", "
            << cfg.num_steps << " steps of " << cfg.tokens_per_step << " tokens\n"
            << "  cluster  " << co.gpus << " GPUs, " << cluster.total_slots() << " expert slots (" << cfg.num_experts << " experts + "
            << cluster.total_slots() - cfg.num_experts << " redundant, " << cluster.slots(gpu_id{0}) << " per GPU)\n"
            << "  speed    H200 roofline for DeepSeek-V2-Lite experts (bf16), variability `high`: GPU 0 is 27.7% slower\n"
            << "  method   each strategy places on the first half of the steps; the other half is replayed;\n"
            << "           step latency = sum over layers of the slowest GPU's time (lock-step); gem searches\n"
            << "           64 sampled fit steps per layer; the same seed prints the same table\n"
            << "  rows     engine-compatible placements (equal slots, even replica splits: what engines load today)"
            << (o.extended ? ",\n           then (extended): per-GPU slot counts and speed-weighted replica shares\n" : "\n");
  auto cmp = compare(trace, strategy_names_available(), cluster, 1, speed, 0.5, {.seed = o.seed, .max_steps = 64, .max_step_evals = o.budget});
  if (o.extended) {
    // What a engine that takes per-GPU slot counts and replica shares could run (SGLang's LP path
    // takes the shares today); appended as extra rows.
    std::vector<std::string> more;
    for (const auto& n : strategy_names_available())
      if (n == "speed_proportional" || n == "gem") more.push_back(n);
    if (!more.empty()) {
      const auto ext = compare(trace, more, cluster, 1, speed, 0.5, {.seed = o.seed, .extended = true, .max_steps = 64, .max_step_evals = o.budget});
      for (std::size_t k = 0; k < ext.names.size(); ++k) {
        cmp.names.push_back(ext.names[k] + " (extended)");
        cmp.placements.push_back(ext.placements[k]);
        cmp.mean.push_back(ext.mean[k]);
        cmp.p50.push_back(ext.p50[k]);
        cmp.p99.push_back(ext.p99[k]);
        cmp.latencies.push_back(ext.latencies[k]);
        cmp.layer_gpu_seconds.push_back(ext.layer_gpu_seconds[k]);
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout.flush();
  std::fprintf(stderr, "gem demo: done in %.1f s\n", secs);
  if (!o.json.empty()) write_text_file(o.json, json_summary(cmp)), std::cout << "  wrote " << o.json << "\n";
  if (!o.svg.empty()) write_text_file(o.svg, svg_summary(cmp, "gem demo: 8 H200s, one 27.7% slower")), std::cout << "  wrote " << o.svg << "\n";
  std::cout << "\n";
  print_table(std::cout, cmp);
}

}  // namespace

void register_demo(CLI::App& app) {
  auto o = std::make_shared<demo_options>();
  auto* sub = app.add_subcommand("demo", "Run the main job on built-in data and print the comparison table");
  sub->footer(
      "Examples:\n"
      "  gem demo\n"
      "  gem demo --seed 7 --svg demo.svg\n"
      "Built-in data: a seeded synthetic trace calibrated to real routing, 8 H200s with one 27.7% slower.");
  sub->add_option("--seed", o->seed, "Seed of the synthetic trace")->capture_default_str();
  sub->add_option("--svg", o->svg, "Also write the SVG picture");
  sub->add_option("--budget", o->budget, "gem's search budget per layer and start (candidate x step evaluations)")
      ->capture_default_str();
  sub->add_flag("!--engine-only", o->extended, "Leave out the extended rows (per-GPU slot counts and replica shares)");
  sub->add_option("--json", o->json, "Also write the JSON summary");
  sub->callback([o] { run_demo(*o); });
}

}  // namespace gem::cli
