// `gem stats`: per-layer skew, classes and co-activation concentration of a trace.
#include "cli.hpp"

namespace gem::cli {

void register_stats(CLI::App& app) {
  auto o = std::make_shared<trace_options>();
  auto* sub = app.add_subcommand("stats", "Per-layer load skew, expert classes and co-activation of a trace");
  sub->footer("Example:\n  gem stats --trace ../shared/traces/esft-deepseek-v2-lite/results/expert_scores/intent --batch 256");
  add_trace_options(*sub, *o, true);
  sub->callback([o] { throw config_error("stats is not available in this build yet"); });
}

}  // namespace gem::cli
