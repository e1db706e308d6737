// `gem profile` in a gem built without CUDA: the command exists, says why it cannot run, exits 1.
#include "cli.hpp"

namespace gem::cli {

void register_profile(CLI::App& app) {
  auto* sub = app.add_subcommand("profile", "Measure a speed profile of this machine's GPUs (needs a CUDA build of gem)");
  sub->allow_extras();
  sub->callback([] {
    throw cuda_error(
        "this gem was built without CUDA; configure with -DGEM_ENABLE_CUDA=ON on a machine with the CUDA Toolkit "
        "(nvcc) to profile GPUs");
  });
}

}  // namespace gem::cli
