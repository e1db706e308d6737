// `gem stats`: per-layer skew, classes and co-activation concentration of a trace.
#include <iostream>

#include "cli.hpp"
#include "gem/trace/stats.hpp"

namespace gem::cli {

namespace {

struct stats_cli_options {
  trace_options trace{};
  double hot = 0;
  double consistent = 0;
  double temporal = 0;
};

void run_stats(const stats_cli_options& o) {
  const auto t = load_trace(o.trace);
  stats_options so;
  if (o.hot > 0) so.classes.hot_factor = o.hot;
  if (o.consistent > 0) so.classes.consistent_min = o.consistent;
  if (o.temporal > 0) so.classes.temporal_min = o.temporal;
  const auto st = compute_stats(t.trace, so);
  std::cout << t.description << "\n"
            << "classes: hot = at least " << so.classes.hot_factor << "x the step's uniform share; consistent = hot in >= "
            << so.classes.consistent_min * 100 << "% of steps; temporal = hot in >= " << so.classes.temporal_min * 100
            << "%; cold = the rest\n"
            << "top-pairs: share of co-activation pair counts held by the top " << so.top_pair_fraction * 100
            << "% of pairs; strong-pairs: share of pairs with score >= " << so.strong_pair_score
            << " (both need per-token routing; nan otherwise)\n\n";
  write_stats(std::cout, st, t.source_layers);
}

}  // namespace

void register_stats(CLI::App& app) {
  auto o = std::make_shared<stats_cli_options>();
  auto* sub = app.add_subcommand("stats", "Per-layer load skew, expert classes and co-activation of a trace");
  sub->footer(
      "Example:\n"
      "  gem stats --trace ../shared/traces/esft-deepseek-v2-lite/results/expert_scores/intent --batch 256\n"
      "Columns: max/mean and min/mean expert load, Zipf exponent of the sorted loads, experts per class\n"
      "(consistent, temporal, cold) and the load share they carry, hot experts per step, persistence of\n"
      "the hot set between consecutive steps (Jaccard), co-activation pair concentration.");
  add_trace_options(*sub, o->trace, true);
  sub->add_option("--hot", o->hot, "Hot threshold: multiple of the step's uniform share (default 1.5)")->group("Classes");
  sub->add_option("--consistent", o->consistent, "Consistent: hot in at least this fraction of steps (default 0.75)")->group("Classes");
  sub->add_option("--temporal", o->temporal, "Temporal: hot in at least this fraction of steps (default 0.10)")->group("Classes");
  sub->callback([o] { run_stats(*o); });
}

}  // namespace gem::cli
