// Replays files through a fuzz harness without libFuzzer: `<harness> FILE_OR_DIR...` feeds each
// file (every file of a directory) to LLVMFuzzerTestOneInput. The test suite runs every harness over
// its seed corpus and the crashes found so far (tests/fuzz/corpus/<harness>/), so a crash once found
// stays a regression test, with g++ and under AddressSanitizer/UndefinedBehaviorSanitizer.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int run_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    if (std::filesystem::is_directory(arg)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) run_file(f), ++n;
    } else {
      run_file(arg), ++n;
    }
  }
  std::printf("replayed %zu inputs without a crash\n", n);
  return n > 0 ? 0 : 1;
}
