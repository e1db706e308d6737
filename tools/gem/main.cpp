// The `gem` command: operators' entry point to gem's placement library.
// Exit codes: 0 ok, 2 bad usage or input (message on stderr naming the file or option), 1 a CUDA failure
// (no device, a failed launch) or an internal error.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "cli.hpp"
#include "gem/gem.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gem: GPU-variability-aware expert placement for Mixture-of-Experts inference.\n"
               "Places experts so that every GPU finishes each MoE layer at the same time, even when GPUs run at\n"
               "different speeds, and writes placements that DeepSeek EPLB/vLLM, SGLang and TensorRT-LLM load."};
  app.set_version_flag("--version,-V", std::string("gem ") + gem::version_string);
  app.footer(
      "Examples:\n"
      "  gem demo                                   the main job on built-in data, in seconds\n"
      "  gem stats --trace TRACE                    skew, classes and co-activation per layer\n"
      "  gem evaluate --trace TRACE --gpus 8 --variability high --svg report.svg\n"
      "  gem place --trace TRACE --gpus 8 --variability high --format sglang -o location.json\n"
      "  gem convert location.json --to trtllm -o moe_load_balancer.yaml\n"
      "  gem profile --partitions 40,32,32,24 -o parts.json   measure this machine's GPUs (CUDA build)\n"
      "Run `gem <command> --help` for each command's options.");
  app.require_subcommand(0, 1);
  gem::cli::register_stats(app);
  gem::cli::register_place(app);
  gem::cli::register_evaluate(app);
  gem::cli::register_convert(app);
  gem::cli::register_demo(app);
  gem::cli::register_profile(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help / version to stdout, errors to stderr
    return rc == 0 ? 0 : 2;
  } catch (const gem::cuda_error& e) {
    std::cerr << "gem: CUDA error: " << e.what() << '\n';
    return 1;
  } catch (const gem::error& e) {
    std::cerr << "gem: error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "gem: internal error: " << e.what() << '\n';
    return 1;
  }
}
