// `gem demo`: the main job on built-in data.
#include "cli.hpp"

namespace gem::cli {

void register_demo(CLI::App& app) {
  auto* sub = app.add_subcommand("demo", "Run the main job on built-in data and print the comparison table");
  sub->footer("Example:\n  gem demo");
  sub->callback([] { throw config_error("demo is not available in this build yet"); });
}

}  // namespace gem::cli
