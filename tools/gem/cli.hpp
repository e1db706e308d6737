// What the `gem` subcommands share: trace, cluster and speed options, the strategy registry, the
// type-erased speed model the command runs with, and progress on stderr.
// Exit codes: gem::error (bad input or options) -> 2, a CUDA failure or anything else -> 1 (see main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/ids.hpp"
#include "gem/io/loads.hpp"
#include "gem/place/problem.hpp"
#include "gem/placement.hpp"
#include "gem/speed/speed_model.hpp"
#include "gem/trace.hpp"

namespace gem::cli {

// ---- progress ----------------------------------------------------------------------------------------

/// Shows "what: i/n" on stderr, rewritten in place, once the run has taken more than a second and
/// only when stderr is a terminal; erases itself when done.
class progress {
 public:
  progress(std::string what, std::int64_t total)
      : what_(std::move(what)), total_(total), start_(std::chrono::steady_clock::now()), tty_(::isatty(2) == 1) {}
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;
  }
  void tick(std::int64_t done) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - start_ < std::chrono::seconds(1) || now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    shown_ = true;
    std::cerr << "\r\033[K" << what_ << ": " << done << "/" << total_ << std::flush;
  }

 private:
  std::string what_;
  std::int64_t total_;
  std::chrono::steady_clock::time_point start_, last_{};
  bool tty_;
  bool shown_ = false;
};

// ---- speed -------------------------------------------------------------------------------------------

/// The speed model the command runs with: any gem speed model behind one type, plus a description.
struct any_speed {
  std::shared_ptr<const std::function<double(gpu_id, const work&)>> fn{};
  std::string description{};
  std::vector<double> time_factors{};  ///< per-GPU slowdown applied (1 = nominal), for reports

  [[nodiscard]] double seconds(gpu_id g, const work& w) const { return (*fn)(g, w); }

  template <speed_model M>
  [[nodiscard]] static any_speed of(M model, std::string description, std::vector<double> factors) {
    return {std::make_shared<const std::function<double(gpu_id, const work&)>>(
                [m = std::move(model)](gpu_id g, const work& w) { return static_cast<double>(m.seconds(g, w)); }),
            std::move(description), std::move(factors)};
  }
};
static_assert(speed_model<any_speed>);

/// Options that choose the speed model.
struct speed_options {
  std::string speeds{};       ///< "1,0.8,1,..." relative speeds (higher is faster)
  std::string profile{};      ///< measured profile JSON
  std::string variability{};  ///< named setup
  std::string shape = "deepseek-v2-lite";
  std::int32_t slow_gpu = 0;
  std::string gpu_data{};     ///< folder of the measured GPU data for `sampled`
};
void add_speed_options(CLI::App& app, speed_options& o);
/// Builds the speed model for `num_gpus` GPUs (seed for `sampled`). Throws config_error.
any_speed make_speed(const speed_options& o, std::int32_t num_gpus, std::uint64_t seed);

// ---- traces and loads --------------------------------------------------------------------------------

struct trace_options {
  std::string path{};
  std::string format{};  ///< esft | csv | gem; empty = from the path (folder: esft, .csv: csv, else gem)
  std::int64_t batch = 256;
  bool batch_given = false;
  std::vector<std::string> select{};  ///< csv: column=value filters
  std::string count_column = "count";
  std::int32_t experts = 0;
  std::int32_t top_k = 6;
};
/// Adds --trace, --trace-format, --batch, --select, --count-column, --experts, --top-k.
void add_trace_options(CLI::App& app, trace_options& o, bool required);

struct loaded_trace {
  routing_trace trace;
  std::vector<std::int32_t> source_layers{};
  std::string description{};
};
loaded_trace load_trace(const trace_options& o);

// ---- cluster and strategies --------------------------------------------------------------------------

struct cluster_options {
  std::int32_t gpus = 8;
  std::int32_t replicas = 0;  ///< total physical slots P; 0 = E rounded up to a multiple of the GPUs
  std::int32_t groups = 1;
  std::int32_t nodes = 1;
};
void add_cluster_options(CLI::App& app, cluster_options& o);
/// The cluster for `num_experts` experts (P / G slots per GPU). Throws config_error.
cluster_spec make_cluster(const cluster_options& o, std::int32_t num_experts);

/// Expert groups for the problem: EPLB uses its groups only when they split evenly over the nodes
/// (hierarchical policy); otherwise its global policy, which is the same as one group.
std::int32_t problem_groups(const cluster_options& o);

/// The strategies the command knows, in table order.
const std::vector<std::string>& strategy_names();
/// The strategies this build can run (strategy_names() minus any whose header is missing).
std::vector<std::string> strategy_names_available();
/// Writes `text` to `path`; throws io_error naming the path.
void write_text_file(const std::string& path, const std::string& text);
/// Splits "a,b,c" and checks each name. Throws config_error naming an unknown one.
std::vector<std::string> parse_strategy_list(const std::string& list);
/// How strategies run: seed for randomized ones; `extended` lets speed_proportional and gem choose
/// per-GPU slot counts and speed-weighted replica shares (only the gem format carries unequal slots).
struct strategy_options {
  std::uint64_t seed = 0;
  bool extended = false;
  std::int32_t max_steps = 0;  ///< gem: optimise over at most this many fit steps (0 = all)
  std::int32_t threads = 0;    ///< gem: layers searched in parallel (0 = every core); same output for any count
  std::int64_t max_step_evals = -1;  ///< gem: search budget per layer and start (-1 = the strategy's default)
  std::int32_t window_tokens = 0;    ///< fitted tokens cut into windows of about this many (gem's block bootstrap); 0 = none
};
/// Adds --slot-mode engine|extended.
void add_slot_mode_option(CLI::App& app, bool& extended);
/// Adds --window-tokens N (strategy_options::window_tokens).
void add_window_option(CLI::App& app, std::int32_t& window_tokens);
/// Runs strategy `name` on `problem` under `speed`.
placement run_strategy(const std::string& name, const placement_problem& problem, const any_speed& speed, const strategy_options& so);

/// Problem from trace steps [first, first+count): mean and (up to 512 sampled) steps per layer, and
/// windows of about `window_tokens` fitted tokens when > 0 (config_error on a trace without per-token routing).
placement_problem problem_from_trace(const routing_trace& t, const cluster_spec& c, std::int32_t groups,
                                     std::int32_t first_step, std::int32_t num_steps, std::uint64_t seed,
                                     std::int32_t window_tokens = 0);
/// Problem from expected loads (one "step": the loads themselves).
placement_problem problem_from_loads(const io::expert_loads& loads, const cluster_spec& c, std::int32_t groups);

/// Predicted per-GPU seconds [L][G] of `p` for per-layer expert loads `mean[l]`.
std::vector<std::vector<double>> predicted_gpu_seconds(const placement& p, const placement_problem& problem,
                                                       const any_speed& speed);

/// Splits "a,b,c" into numbers; throws config_error naming `what`.
std::vector<double> parse_number_list(const std::string& list, const std::string& what);

/// Formats seconds with a unit chosen for `scale_s`.
std::string format_seconds(double s, double scale_s);

// ---- comparison (evaluate, demo) -------------------------------------------------------------------

/// Strategies fitted on one part of a trace and replayed on the other.
struct comparison {
  std::vector<std::string> names{};
  std::vector<placement> placements{};
  std::vector<double> mean{}, p50{}, p99{};           ///< per strategy, seconds per step (all layers)
  std::vector<std::vector<double>> latencies{};       ///< per strategy, per held-out step
  std::vector<std::vector<std::vector<double>>> layer_gpu_seconds{};  ///< [strategy][layer][S*G]
  std::vector<double> bound_per_step{};               ///< fluid bound per held-out step
  std::vector<std::vector<double>> layer_bound{};     ///< [layer][S]
  double mean_bound = 0;
  std::int32_t num_gpus = 0, fit_steps = 0, held_out_steps = 0;
};

/// Fits each strategy on the first `split` of the steps and replays the rest.
comparison compare(const routing_trace& t, const std::vector<std::string>& names, const cluster_spec& c, std::int32_t groups,
                   const any_speed& speed, double split, const strategy_options& so);
/// The side-by-side table (mean, p50, p99, ratio to eplb, ratio to the fluid bound).
void print_table(std::ostream& os, const comparison& cmp);
/// {"strategies": {"<name>": {"mean": s, "p50": s, "p99": s}}, "fluid_bound": {"mean": s}}
std::string json_summary(const comparison& cmp);
/// The SVG picture (gem/report/svg_report.hpp) of `cmp`.
std::string svg_summary(const comparison& cmp, const std::string& title);

// ---- subcommands -------------------------------------------------------------------------------------

void register_convert(CLI::App& app);
void register_place(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_stats(CLI::App& app);
void register_demo(CLI::App& app);
/// `gem profile` (cmd_profile.cu with CUDA; otherwise a stub that says it needs a CUDA build).
void register_profile(CLI::App& app);

}  // namespace gem::cli
