// Shared pieces of the `gem` command (see cli.hpp).
#include "cli.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "gem/io/csv_counts.hpp"
#include "gem/io/esft.hpp"
#include "gem/io/trace_file.hpp"
#include "gem/load/empirical_load.hpp"
#include "gem/place/baselines.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/profile.hpp"
#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/variability.hpp"
#include "gem/trace/batching.hpp"

namespace gem::cli {

std::vector<double> parse_number_list(const std::string& list, const std::string& what) {
  std::vector<double> out;
  std::stringstream ss(list);
  for (std::string tok; std::getline(ss, tok, ',');) {
    double v = 0;
    const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (ec != std::errc{} || p != tok.data() + tok.size() || tok.empty() || !std::isfinite(v))
      throw config_error(what + ": '" + tok + "' is not a number");
    out.push_back(v);
  }
  if (out.empty()) throw config_error(what + ": no values");
  return out;
}

std::string format_seconds(double s, double scale_s) {
  char buf[48];
  if (scale_s >= 1.0)
    std::snprintf(buf, sizeof buf, "%.3f s", s);
  else if (scale_s >= 1e-3)
    std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
  return buf;
}

// ---- speed -------------------------------------------------------------------------------------------

void add_speed_options(CLI::App& app, speed_options& o) {
  auto* sp = app.add_option("--speeds", o.speeds,
                            "Relative speed of each GPU, comma separated (1 = nominal, 0.8 = 20% slower); one per GPU")
                 ->group("Speed");
  auto* pr = app.add_option("--profile", o.profile, "Measured per-GPU latency profile (JSON, format gem.speed_profile); one GPU stands for all; --speeds or --variability scale it")->group("Speed");
  auto* va = app.add_option("--variability", o.variability,
                            "Named GPU variability: homogeneous, low (+-3%), high (one GPU 27.7% slower), degraded "
                            "(one GPU 2.2x slower), sampled[:workload] (drawn from measured fleets, seeded)")
                 ->group("Speed");
  sp->excludes(va);
  (void)pr;
  app.add_option("--shape", o.shape,
                 "Expert shape for the H200 roofline model: deepseek-v2-lite, deepseek-v3, mixtral-8x7b, qwen3-30b-a3b, olmoe")
      ->capture_default_str()
      ->group("Speed");
  app.add_option("--slow-gpu", o.slow_gpu, "The slow GPU of `high` and `degraded`")->capture_default_str()->group("Speed");
  app.add_option("--gpu-data", o.gpu_data,
                 "Folder of the measured GPU data for `sampled` (default: ../shared/gpu-variability/pal-tacc-longhorn-frontera-ls6 "
                 "beside the source tree, or $GEM_GPU_DATA)")
      ->group("Speed");
}

any_speed make_speed(const speed_options& o, std::int32_t num_gpus, std::uint64_t seed) {
  std::vector<double> factors(static_cast<std::size_t>(num_gpus), 1.0);
  std::optional<table> measured;
  std::string what;
  if (!o.profile.empty()) {
    const auto p = read_profile(o.profile);  // parse_error names the file and field
    try {
      measured = to_table(p, num_gpus);
    } catch (const config_error& e) {
      throw config_error("--profile " + o.profile + ": " + e.what());
    }
    what = "measured profile " + o.profile + " (" + std::to_string(p.gpus.size()) + " GPU" + (p.gpus.size() == 1 ? "" : "s") +
           ", " + (p.gpus.empty() ? std::string("?") : p.gpus.front().device) + ")";
  } else {
    what = "H200 roofline (" + o.shape + ")";
  }
  if (!o.speeds.empty()) {
    const auto s = parse_number_list(o.speeds, "--speeds");
    if (s.size() != static_cast<std::size_t>(num_gpus))
      throw config_error("--speeds holds " + std::to_string(s.size()) + " values for " + std::to_string(num_gpus) + " GPUs");
    for (std::size_t g = 0; g < s.size(); ++g) {
      if (!(s[g] > 0)) throw config_error("--speeds: GPU " + std::to_string(g) + " has speed " + std::to_string(s[g]) + " (must be > 0)");
      factors[g] = 1.0 / s[g];
    }
    what += ", speeds from --speeds";
  } else if (!o.variability.empty()) {
    variability::setup_options so{.num_gpus = num_gpus, .seed = seed, .slow_gpu = gpu_id{o.slow_gpu}};
    if (o.slow_gpu < 0 || o.slow_gpu >= num_gpus)
      throw config_error("--slow-gpu " + std::to_string(o.slow_gpu) + " is not a GPU of " + std::to_string(num_gpus));
    if (o.variability.starts_with("sampled")) {
      if (!o.gpu_data.empty()) {
        so.dataset_dir = o.gpu_data;
      } else if (const char* env = std::getenv("GEM_GPU_DATA"); env && *env) {
        so.dataset_dir = env;
      } else {
        so.dataset_dir = std::filesystem::path(GEM_SOURCE_DIR) / ".." / "shared" / "gpu-variability" / "pal-tacc-longhorn-frontera-ls6";
      }
    }
    factors = variability::setup(o.variability, so);
    what += ", variability " + o.variability;
  } else {
    what += ", identical GPUs";
  }
  if (measured) return any_speed::of(scale(*measured, factors), what, factors);
  return any_speed::of(scale(h200_roofline(layer_shape_by_name(o.shape), num_gpus), factors), what, factors);
}

// ---- traces ------------------------------------------------------------------------------------------

void add_trace_options(CLI::App& app, trace_options& o, bool required) {
  auto* t = app.add_option("--trace", o.path,
                           "Routing trace: an ESFT task folder (expert_weights_<L>.txt), long CSV counts "
                           "(layer,step,expert,count), or a gem-trace file")
                ->group("Trace");
  if (required) t->required();
  app.add_option("--trace-format", o.format, "esft, csv or gem (default: folder -> esft, *.csv -> csv, else gem)")
      ->check(CLI::IsMember({"esft", "csv", "gem"}))
      ->group("Trace");
  app.add_option_function<std::int64_t>(
         "--batch", [&o](std::int64_t b) { o.batch = b, o.batch_given = true; },
         "Tokens per step when cutting per-token routing into steps (default 256)")
      ->check(CLI::PositiveNumber)
      ->group("Trace");
  app.add_option("--select", o.select, "CSV only: keep rows where column=value (repeatable), e.g. --select task=intent")
      ->group("Trace");
  app.add_option("--count-column", o.count_column, "CSV only: the column holding counts (ESFT's expert_counts.csv: token_count)")
      ->capture_default_str()
      ->group("Trace");
  app.add_option("--experts", o.experts, "Experts per layer (ESFT: 64; CSV: largest id + 1 when 0)")->group("Trace");
  app.add_option("--top-k", o.top_k, "ESFT only: experts per token")->capture_default_str()->group("Trace");
}

loaded_trace load_trace(const trace_options& o) {
  namespace fs = std::filesystem;
  if (!fs::exists(o.path)) throw io_error("--trace " + o.path + ": no such file or folder");
  std::string format = o.format;
  if (format.empty()) format = fs::is_directory(o.path) ? "esft" : fs::path(o.path).extension() == ".csv" ? "csv" : "gem";
  loaded_trace out;
  if (format == "esft") {
    esft_options eo{.num_experts = o.experts > 0 ? o.experts : 64, .top_k = o.top_k, .steps = {.tokens_per_step = o.batch}};
    auto t = read_esft(o.path, eo);
    out.trace = std::move(t.trace);
    out.source_layers = std::move(t.source_layers);
    out.description = "ESFT routing log " + o.path + ", " + std::to_string(o.batch) + " tokens per step";
  } else if (format == "csv") {
    csv_counts_options co{.count_column = o.count_column, .num_experts = o.experts};
    for (const auto& s : o.select) {
      const auto eq = s.find('=');
      if (eq == std::string::npos || eq == 0) throw config_error("--select '" + s + "': expected column=value");
      co.select.push_back({s.substr(0, eq), s.substr(eq + 1)});
    }
    auto t = read_csv_counts(o.path, co);
    if (o.batch_given) std::cerr << "gem: note: --batch does not apply to CSV counts (steps come from the file)\n";
    out.trace = std::move(t.trace);
    out.source_layers = std::move(t.source_layers);
    out.description = "CSV counts " + o.path + (t.has_step_column ? "" : " (one step: no step column)");
  } else {
    auto t = read_trace_file(o.path);
    if (o.batch_given) {
      if (!t.tokens()) throw config_error("--batch: trace " + o.path + " holds counts only and cannot be re-cut into steps");
      t = rebatch(t, batching{.tokens_per_step = o.batch});
    }
    out.trace = std::move(t);
    out.description = "gem trace " + o.path;
  }
  out.description += ": " + std::to_string(out.trace.num_layers()) + " layers, " + std::to_string(out.trace.num_experts()) +
                     " experts, " + std::to_string(out.trace.num_steps()) + " steps";
  return out;
}

// ---- cluster and strategies --------------------------------------------------------------------------

void add_cluster_options(CLI::App& app, cluster_options& o) {
  app.add_option("--gpus", o.gpus, "Number of GPUs (EP size)")->capture_default_str()->check(CLI::PositiveNumber)->group("Cluster");
  app.add_option("--replicas", o.replicas,
                 "Physical expert slots in total, P = experts + redundant (default: experts, rounded up to a multiple of --gpus)")
      ->group("Cluster");
  app.add_option("--groups", o.groups, "Expert groups (EPLB's hierarchical policy; DeepSeek-V3: 8)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group("Cluster");
  app.add_option("--nodes", o.nodes, "Nodes the GPUs are split into")->capture_default_str()->check(CLI::PositiveNumber)->group("Cluster");
}

cluster_spec make_cluster(const cluster_options& o, std::int32_t num_experts) {
  std::int32_t P = o.replicas;
  if (P == 0) P = (num_experts + o.gpus - 1) / o.gpus * o.gpus;
  if (P < num_experts)
    throw config_error("--replicas " + std::to_string(P) + " is below the " + std::to_string(num_experts) + " experts");
  if (P % o.gpus != 0)
    throw config_error("--replicas " + std::to_string(P) + " does not divide over --gpus " + std::to_string(o.gpus) +
                       " (engines need equal slots per GPU)");
  std::int32_t nodes = o.nodes;
  if (o.gpus % nodes != 0) {
    // EPLB accepts this when it falls back to its global policy (groups % nodes != 0), which treats
    // the GPUs as one node; so does gem. Otherwise EPLB itself would refuse.
    if (o.groups % nodes == 0)
      throw config_error("--nodes " + std::to_string(nodes) + " does not divide --gpus " + std::to_string(o.gpus));
    std::cerr << "gem: note: --nodes " << nodes << " does not divide --gpus " << o.gpus
              << "; the GPUs are taken as one node (EPLB's global policy does the same)\n";
    nodes = 1;
  }
  return cluster_spec::equal(o.gpus, P / o.gpus, nodes);
}

std::int32_t problem_groups(const cluster_options& o) { return o.groups % o.nodes == 0 ? o.groups : 1; }

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names{"linear", "round_robin", "eplb", "speed_proportional", "gem"};
  return names;
}

std::vector<std::string> strategy_names_available() { return strategy_names(); }

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw io_error("cannot open " + path + " for writing");
  out << text;
  out.close();
  if (!out) throw io_error("cannot write " + path);
}

std::vector<std::string> parse_strategy_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string tok; std::getline(ss, tok, ',');) {
    const auto& known = strategy_names();
    if (std::find(known.begin(), known.end(), tok) == known.end())
      throw config_error("--strategies: unknown strategy '" + tok + "' (known: linear, round_robin, eplb, speed_proportional, gem)");
    if (std::find(out.begin(), out.end(), tok) != out.end()) throw config_error("--strategies: '" + tok + "' given twice");
    out.push_back(tok);
  }
  if (out.empty()) throw config_error("--strategies: no strategy given");
  return out;
}

void add_slot_mode_option(CLI::App& app, bool& extended) {
  app.add_option_function<std::string>(
         "--slot-mode", [&extended](const std::string& m) { extended = m == "extended"; },
         "engine (default): every GPU keeps P/G slots and replicas split evenly, what engines load today; "
         "extended: speed_proportional and gem choose per-GPU slot counts and speed-weighted replica shares "
         "(write --format gem; sglang carries the shares only with equal slots)")
      ->check(CLI::IsMember({"engine", "extended"}));
}

void add_window_option(CLI::App& app, std::int32_t& window_tokens) {
  app.add_option("--window-tokens", window_tokens,
                 "Cut the fitted tokens into windows of about N tokens (needs a per-token trace, e.g. ESFT); with fewer "
                 "than 64 fitted steps gem then searches 64 steps drawn as windows with replacement (a block bootstrap: "
                 "better on held-out steps, slower). 0 = off")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

placement run_strategy(const std::string& name, const placement_problem& problem, const any_speed& speed, const strategy_options& so) {
  if (name == "linear") return linear{}.place(problem, speed);
  if (name == "round_robin") return round_robin{}.place(problem, speed);
  if (name == "eplb") return eplb{}.place(problem, speed);
  const auto mode = so.extended ? slot_mode::extended : slot_mode::engine_compatible;
  if (name == "speed_proportional") return speed_proportional{.mode = mode}.place(problem, speed);
  if (name == "gem") {
    const auto threads = so.threads > 0 ? so.threads : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    gem_search g{.mode = mode, .seed = so.seed, .max_steps = so.max_steps, .threads = threads};
    if (so.max_step_evals >= 0) g.max_step_evals = so.max_step_evals;
    return g.place(problem, speed);
  }
  throw config_error("strategy '" + name + "' is not available in this build");
}

placement_problem problem_from_trace(const routing_trace& t, const cluster_spec& c, std::int32_t groups, std::int32_t first_step,
                                     std::int32_t num_steps, std::uint64_t seed, std::int32_t window_tokens) {
  placement_problem p{.cluster = c, .num_experts = t.num_experts(), .num_groups = groups};
  const empirical_load model{
      .first_step = first_step, .num_steps = num_steps, .max_steps = 512, .seed = seed, .window_tokens = window_tokens};
  for (std::int32_t l = 0; l < t.num_layers(); ++l) p.layers.push_back(model.loads(t, layer_id{l}));
  p.validate();
  return p;
}

placement_problem problem_from_loads(const io::expert_loads& loads, const cluster_spec& c, std::int32_t groups) {
  placement_problem p{.cluster = c, .num_experts = loads.num_experts(), .num_groups = groups};
  for (const auto& row : loads.weight) p.layers.push_back(layer_loads{.mean = row});
  p.validate();
  return p;
}

std::vector<std::vector<double>> predicted_gpu_seconds(const placement& p, const placement_problem& problem, const any_speed& speed) {
  std::vector<std::vector<double>> out;
  for (std::int32_t l = 0; l < p.num_layers(); ++l) {
    const auto& lp = p.layer(layer_id{l});
    const auto& mean = problem.layers[static_cast<std::size_t>(l)].mean;
    std::vector<std::vector<double>> rows(static_cast<std::size_t>(p.num_gpus()));
    for (std::size_t s = 0; s < lp.phy2log.size(); ++s)
      rows[static_cast<std::size_t>(lp.slot_gpu[s])].push_back(mean[static_cast<std::size_t>(lp.phy2log[s])] * lp.share[s]);
    auto& g_out = out.emplace_back();
    for (std::int32_t g = 0; g < p.num_gpus(); ++g) g_out.push_back(speed.seconds(gpu_id{g}, work{rows[static_cast<std::size_t>(g)]}));
  }
  return out;
}

}  // namespace gem::cli
