// `gem place` (one strategy -> a placement file an engine loads) and `gem evaluate` (strategies side
// by side on held-out trace steps: table, JSON summary, SVG picture).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

#include "cli.hpp"
#include "gem/eval/evaluator.hpp"
#include "gem/io/placement_formats.hpp"
#include "gem/report/svg_report.hpp"

namespace gem::cli {

// ---- comparison --------------------------------------------------------------------------------------

comparison compare(const routing_trace& t, const std::vector<std::string>& names, const cluster_spec& c, std::int32_t groups,
                   const any_speed& speed, double split, const strategy_options& so) {
  const auto parts = split_steps(t, split);
  const auto problem = problem_from_trace(t, c, groups, parts.fit.first, parts.fit.count, so.seed, so.window_tokens);
  comparison cmp;
  cmp.names = names;
  cmp.num_gpus = c.num_gpus;
  cmp.fit_steps = parts.fit.count;
  cmp.held_out_steps = parts.held_out.count;
  progress prog("placing and replaying", static_cast<std::int64_t>(names.size()));
  for (std::size_t k = 0; k < names.size(); ++k) {
    prog.tick(static_cast<std::int64_t>(k));
    auto pl = run_strategy(names[k], problem, speed, so);
    const auto ev = evaluate(pl, t, speed, parts.held_out);
    cmp.mean.push_back(ev.summary.mean);
    cmp.p50.push_back(ev.summary.p50);
    cmp.p99.push_back(ev.summary.p99);
    cmp.latencies.push_back(ev.straggler);
    auto& per_layer = cmp.layer_gpu_seconds.emplace_back();
    for (const auto& lr : ev.layers) per_layer.push_back(lr.gpu_seconds);
    if (k == 0) {
      cmp.bound_per_step = ev.bound;
      cmp.mean_bound = ev.mean_bound;
      for (const auto& lr : ev.layers) cmp.layer_bound.push_back(lr.bound);
    }
    cmp.placements.push_back(std::move(pl));
  }
  return cmp;
}

void print_table(std::ostream& os, const comparison& cmp) {
  const auto eplb_it = std::find(cmp.names.begin(), cmp.names.end(), "eplb");
  const bool has_eplb = eplb_it != cmp.names.end();
  const double eplb_mean = has_eplb ? cmp.mean[static_cast<std::size_t>(eplb_it - cmp.names.begin())] : 0;
  const double scale = *std::max_element(cmp.mean.begin(), cmp.mean.end());
  char line[256];
  std::snprintf(line, sizeof line, "%-30s %12s %12s %12s %9s %9s\n", "strategy", "mean", "p50", "p99", "vs eplb", "vs bound");
  os << line << std::string(89, '-') << "\n";
  for (std::size_t k = 0; k < cmp.names.size(); ++k) {
    char vs_eplb[16] = "-";
    if (has_eplb && eplb_mean > 0) std::snprintf(vs_eplb, sizeof vs_eplb, "%.3f", cmp.mean[k] / eplb_mean);
    std::snprintf(line, sizeof line, "%-30s %12s %12s %12s %9s %9.3f\n", cmp.names[k].c_str(), format_seconds(cmp.mean[k], scale).c_str(),
                  format_seconds(cmp.p50[k], scale).c_str(), format_seconds(cmp.p99[k], scale).c_str(), vs_eplb,
                  cmp.mean_bound > 0 ? cmp.mean[k] / cmp.mean_bound : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-30s %12s\n", "fluid bound", format_seconds(cmp.mean_bound, scale).c_str());
  os << line;
}

std::string json_summary(const comparison& cmp) {
  nlohmann::ordered_json j;
  j["strategies"] = nlohmann::ordered_json::object();
  for (std::size_t k = 0; k < cmp.names.size(); ++k)
    j["strategies"][cmp.names[k]] = {{"mean", cmp.mean[k]}, {"p50", cmp.p50[k]}, {"p99", cmp.p99[k]}};
  j["fluid_bound"] = {{"mean", cmp.mean_bound}};
  return j.dump(2) + "\n";
}

std::string svg_summary(const comparison& cmp, const std::string& title) {
  // Representative step: the (layer, step) whose straggler under the baseline (eplb when compared,
  // else the first strategy) is the median over all layers and held-out steps.
  const auto it = std::find(cmp.names.begin(), cmp.names.end(), "eplb");
  const auto base = it != cmp.names.end() ? static_cast<std::size_t>(it - cmp.names.begin()) : 0;
  const auto G = static_cast<std::size_t>(cmp.num_gpus);
  std::vector<std::pair<double, std::pair<std::size_t, std::size_t>>> all;
  for (std::size_t l = 0; l < cmp.layer_gpu_seconds[base].size(); ++l) {
    const auto& gs = cmp.layer_gpu_seconds[base][l];
    for (std::size_t s = 0; s * G < gs.size(); ++s)
      all.push_back({*std::max_element(gs.begin() + static_cast<std::ptrdiff_t>(s * G), gs.begin() + static_cast<std::ptrdiff_t>((s + 1) * G)),
                     {l, s}});
  }
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2), all.end());
  const auto [l, s] = all[all.size() / 2].second;
  std::vector<report::strategy_series> series;
  for (std::size_t k = 0; k < cmp.names.size(); ++k) {
    const auto& gs = cmp.layer_gpu_seconds[k][l];
    series.push_back({.name = cmp.names[k],
                      .gpu_seconds = std::vector<double>(gs.begin() + static_cast<std::ptrdiff_t>(s * G),
                                                         gs.begin() + static_cast<std::ptrdiff_t>((s + 1) * G)),
                      .latencies = cmp.latencies[k]});
  }
  const report::svg_options opt{.title = title,
                                .step_label = "median step of " + cmp.names[base] + " (layer " + std::to_string(l) +
                                              ", held-out step " + std::to_string(s) + ")",
                                .latency_label = "step latency, all layers (" + std::to_string(cmp.held_out_steps) + " held-out steps)",
                                .bound_seconds = cmp.layer_bound[l][s]};
  return report::svg_report(series, opt);
}

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw io_error("cannot open " + path + " for writing");
  out << text;
  out.close();
  if (!out) throw io_error("cannot write " + path);
}

// ---- place -------------------------------------------------------------------------------------------

struct place_options {
  trace_options trace{};
  std::string loads{};
  cluster_options cluster{};
  speed_options speed{};
  std::string strategy = "gem";
  std::string format = "gem";
  std::string output{};
  std::uint64_t seed = 0;
  std::int32_t first_layer = -1;
  std::int32_t window_tokens = 0;
  bool extended = false;
};

void run_place(const place_options& o) {
  const auto names = parse_strategy_list(o.strategy);
  if (names.size() != 1) throw config_error("--strategy takes one name (evaluate compares several)");
  const auto format = io::placement_format_from_name(o.format);
  placement_problem problem;
  std::vector<std::int32_t> source_layers;
  if (!o.loads.empty()) {
    if (o.window_tokens > 0) throw config_error("--window-tokens needs --trace: expected loads (--loads) have no tokens to cut into windows");
    const auto loads = io::read_loads_file(o.loads);
    problem = problem_from_loads(loads, make_cluster(o.cluster, loads.num_experts()), problem_groups(o.cluster));
  } else {
    const auto t = load_trace(o.trace);
    problem = problem_from_trace(t.trace, make_cluster(o.cluster, t.trace.num_experts()), problem_groups(o.cluster), 0, 0, o.seed,
                                 o.window_tokens);
    source_layers = t.source_layers;
  }
  const auto speed = make_speed(o.speed, o.cluster.gpus, o.seed);
  const auto pl = run_strategy(names[0], problem, speed, {.seed = o.seed, .extended = o.extended});
  io::placement_metadata meta{.strategy = names[0], .layer_ids = source_layers,
                              .predicted_gpu_seconds = predicted_gpu_seconds(pl, problem, speed)};
  if (o.first_layer >= 0) {
    meta.layer_ids.clear();
    for (std::int32_t l = 0; l < pl.num_layers(); ++l) meta.layer_ids.push_back(o.first_layer + l);
  }
  for (const auto& loss : io::format_losses(pl, meta, format))
    if (loss.find("predicted") == std::string::npos && loss.find("strategy") == std::string::npos && loss.find("layer ids") == std::string::npos)
      std::cerr << "gem: note: " << io::format_name(format) << ": " << loss << "\n";
  const auto files = io::write_placement_file(o.output, format, pl, meta);
  double worst = 0, sum = 0;
  for (const auto& row : meta.predicted_gpu_seconds) {
    const double m = *std::max_element(row.begin(), row.end());
    worst = std::max(worst, m);
    sum += m;
  }
  std::cout << names[0] << ": " << pl.num_layers() << " layers, " << pl.num_experts() << " experts, "
            << pl.cluster().total_slots() << " slots on " << pl.num_gpus() << " GPUs (" << speed.description << ")\n";
  std::cout << "predicted straggler at the mean load: " << format_seconds(sum, sum) << " per step over all layers\n";
  for (const auto& f : files) std::cout << "wrote " << f.string() << " (" << io::format_name(format) << ")\n";
}

// ---- evaluate ----------------------------------------------------------------------------------------

struct evaluate_options {
  trace_options trace{};
  cluster_options cluster{};
  speed_options speed{};
  std::string strategies = "linear,round_robin,eplb,speed_proportional,gem";
  double split = 0.5;
  std::string json{}, svg{};
  std::uint64_t seed = 0;
  std::int32_t window_tokens = 0;
  bool extended = false;
};

void run_evaluate(const evaluate_options& o) {
  const auto names = parse_strategy_list(o.strategies);
  const auto t = load_trace(o.trace);
  const auto c = make_cluster(o.cluster, t.trace.num_experts());
  const auto speed = make_speed(o.speed, o.cluster.gpus, o.seed);
  const auto cmp = compare(t.trace, names, c, problem_groups(o.cluster), speed, o.split, {.seed = o.seed, .extended = o.extended, .window_tokens = o.window_tokens});
  std::cout << t.description << "\n" << c.num_gpus << " GPUs, " << c.total_slots() << " slots; " << speed.description << "\n"
            << "fitted on " << cmp.fit_steps << " steps, replayed " << cmp.held_out_steps
            << " held-out steps; latency per step = sum over layers of the straggler GPU's time\n\n";
  print_table(std::cout, cmp);
  if (!o.json.empty()) write_text(o.json, json_summary(cmp)), std::cout << "wrote " << o.json << "\n";
  if (!o.svg.empty()) write_text(o.svg, svg_summary(cmp, "gem evaluate: " + std::to_string(c.num_gpus) + " GPUs, " + o.speed.variability)),
      std::cout << "wrote " << o.svg << "\n";
}

}  // namespace

void register_place(CLI::App& app) {
  auto o = std::make_shared<place_options>();
  auto* sub = app.add_subcommand("place", "Place experts with one strategy and write a file an engine loads");
  sub->footer(
      "Examples:\n"
      "  gem place --trace ../shared/traces/esft-deepseek-v2-lite/results/expert_scores/intent --gpus 8 --replicas 72 \\\n"
      "      --variability high --strategy gem --format sglang -o expert_location.json\n"
      "  gem place --loads ../shared/eplb-vectors/small_hier.json --gpus 4 --replicas 24 --groups 4 --nodes 2 \\\n"
      "      --strategy eplb --format eplb -o eplb.json\n"
      "Formats: gem (full placement + predicted per-GPU seconds), eplb ({phy2log, log2phy, logcnt}),\n"
      "sglang (--init-expert-location file + <stem>.lp.json with log2phy_prob), trtllm (load-balancer YAML).");
  add_trace_options(*sub, o->trace, false);
  auto* loads = sub->add_option("--loads", o->loads,
                                "Expected loads instead of a trace: JSON {\"weight\": [[...]]} (as in the EPLB vectors) or CSV "
                                "layer,expert,load")
                    ->group("Trace");
  loads->excludes(sub->get_option("--trace"));
  add_cluster_options(*sub, o->cluster);
  add_speed_options(*sub, o->speed);
  sub->add_option("--strategy", o->strategy, "linear, round_robin, eplb, speed_proportional or gem")
      ->capture_default_str()
      ->check(CLI::IsMember(strategy_names()));
  sub->add_option("--format", o->format, "Output format: gem, eplb, sglang, trtllm")
      ->capture_default_str()
      ->check(CLI::IsMember({"gem", "eplb", "sglang", "trtllm"}));
  sub->add_option("-o,--output", o->output, "File to write")->required();
  sub->add_option("--seed", o->seed, "Seed for sampled steps, sampled variability and randomized strategies")->capture_default_str();
  add_window_option(*sub, o->window_tokens);
  add_slot_mode_option(*sub, o->extended);
  sub->add_option("--first-layer", o->first_layer, "Model layer index of the first MoE layer (TRT-LLM keys)")->check(CLI::NonNegativeNumber);
  sub->callback([o, sub] {
    if (o->loads.empty() && o->trace.path.empty()) throw CLI::RequiredError("--trace or --loads");
    (void)sub;
    run_place(*o);
  });
}

void register_evaluate(CLI::App& app) {
  auto o = std::make_shared<evaluate_options>();
  auto* sub = app.add_subcommand("evaluate", "Compare strategies side by side on held-out trace steps");
  sub->footer(
      "Example:\n"
      "  gem evaluate --trace ../shared/traces/esft-deepseek-v2-lite/results/expert_scores/law --gpus 8 \\\n"
      "      --variability high --strategies linear,eplb,gem --json summary.json --svg report.svg\n"
      "Strategies are fitted on the first --split of the steps and replayed on the rest; the table gives\n"
      "mean, p50 and p99 step latency (sum over layers of the straggler), the ratio to eplb and to the\n"
      "fluid bound (no placement can beat it).");
  add_trace_options(*sub, o->trace, true);
  add_cluster_options(*sub, o->cluster);
  add_speed_options(*sub, o->speed);
  sub->add_option("--strategies", o->strategies, "Comma-separated strategies to compare")->capture_default_str();
  sub->add_option("--split", o->split, "Fraction of steps to fit on (the rest is replayed)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  add_slot_mode_option(*sub, o->extended);
  sub->add_option("--json", o->json, "Write a JSON summary {strategies: {name: {mean, p50, p99}}, fluid_bound: {mean}}");
  sub->add_option("--svg", o->svg, "Write an SVG picture: per-GPU finish times of a representative step, latency CDFs");
  sub->add_option("--seed", o->seed, "Seed for sampled steps, sampled variability and randomized strategies")->capture_default_str();
  add_window_option(*sub, o->window_tokens);
  sub->callback([o] { run_evaluate(*o); });
}

}  // namespace gem::cli
