// The `gem` command: operators' entry point to gem's placement library.
// Exit codes: 0 ok, 2 bad usage or input (message on stderr), 1 internal error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>

#include "gem/gem.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gem: GPU-variability-aware expert placement for Mixture-of-Experts inference.\n"
               "Example: gem --version"};
  app.set_version_flag("--version,-V", std::string("gem ") + gem::version_string);
  app.require_subcommand(0);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
    }
    return 0;
  } catch (const gem::error& e) {
    std::cerr << "gem: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "gem: internal error: " << e.what() << '\n';
    return 1;
  }
}
