// The ESFT reader rejects every malformed input with a gem::parse_error that names the file, the
// line and the field; nothing is skipped.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <unistd.h>

#include "gem/io/esft.hpp"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp folder, removed when the test ends.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("gem_esft_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

// Two sequences (2 tokens, 1 token), top-2 of 4 experts.
const std::string good_layer = "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\t0.75\t0.25\n";
const gem::esft_options small{.num_experts = 4, .top_k = 2, .steps = {.tokens_per_step = 2}};

void write_good(const temp_dir& d, int layers) {
  for (int L = 1; L <= layers; ++L) d.write("expert_weights_" + std::to_string(L) + ".txt", good_layer);
}

// Runs `read` and checks it throws parse_error at (file name, line, field).
void expect_error(const std::function<void()>& read, const std::string& file_name, std::size_t line,
                  const std::string& field) {
  bool thrown = false;
  try {
    read();
  } catch (const gem::parse_error& e) {
    thrown = true;
    CHECK(fs::path(e.file()).filename().string() == file_name);
    CHECK(e.line() == line);
    CHECK(e.field() == field);
    const std::string what = e.what();
    CHECK(what.find(file_name) != std::string::npos);
    CHECK(what.find(":" + std::to_string(line) + ":") != std::string::npos);
    CHECK(what.find("'" + field + "'") != std::string::npos);
  }
  CHECK_MESSAGE(thrown, "expected a parse_error at " << file_name << ":" << line << " field " << field);
}

}  // namespace

TEST_CASE("a well-formed small ESFT directory reads back its ids, weights and counts") {
  temp_dir d;
  write_good(d, 2);
  const auto r = gem::read_esft(d.path, small);
  const auto& tr = r.trace;
  CHECK(tr.num_layers() == 2);
  CHECK(tr.num_steps() == 2);
  CHECK(r.source_layers == std::vector<std::int32_t>{1, 2});
  CHECK(r.sequence_offsets == std::vector<std::int64_t>{0, 2, 3});
  CHECK(tr.tokens()->ids == std::vector<std::int32_t>{0, 1, 2, 3, 3, 1, 0, 1, 2, 3, 3, 1});
  CHECK(tr.tokens()->weights[3] == 0.0625f);
  // step 0 = tokens 0,1 (sequence 0); step 1 = token 2 (sequence 1), kept as a partial step.
  CHECK(tr.count(gem::layer_id{1}, 0, gem::expert_id{2}) == 1);
  CHECK(tr.count(gem::layer_id{1}, 1, gem::expert_id{3}) == 1);
  CHECK(tr.count(gem::layer_id{1}, 1, gem::expert_id{0}) == 0);
}

TEST_CASE("an ESFT line cut short is rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 2);
  SUBCASE("no separator between ids and weights") {
    d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 2, "weights");
  }
  SUBCASE("an id count that is not a multiple of top_k") {
    d.write("expert_weights_1.txt", "0\t1\t2\t\t0.5\t0.25\t0.125\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 1, "ids");
  }
  SUBCASE("fewer weights than ids") {
    d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\t0.75");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 2, "weights");
  }
}

TEST_CASE("an ESFT expert id >= num_experts is rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 2);
  d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t4\t\t0.75\t0.25\n");
  expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 2, "ids[token 0, slot 1]");
}

TEST_CASE("an ESFT token naming one expert twice is rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 1);
  d.write("expert_weights_1.txt", "0\t1\t2\t2\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\t0.75\t0.25\n");
  expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 1, "ids[token 1, slot 1]");
}

TEST_CASE("ESFT layer files with different token counts are rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 3);
  SUBCASE("a line with another token count") {
    d.write("expert_weights_3.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t0\t2\t\t0.75\t0.25\t0.1\t0.1\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_3.txt", 2, "tokens");
  }
  SUBCASE("a file with fewer lines") {
    d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 2, "sequence");
  }
  SUBCASE("a file with more lines") {
    d.write("expert_weights_2.txt", good_layer + "1\t2\t\t0.5\t0.5\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 3, "sequence");
  }
}

TEST_CASE("a non-numeric ESFT id or weight is rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 2);
  SUBCASE("id") {
    d.write("expert_weights_1.txt", "0\t1\t2\tx3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\t0.75\t0.25\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 1, "ids[token 1, slot 1]");
  }
  SUBCASE("negative id") {
    d.write("expert_weights_1.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n-3\t1\t\t0.75\t0.25\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 2, "ids[token 0, slot 0]");
  }
  SUBCASE("weight") {
    d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.1a25\t0.0625\n3\t1\t\t0.75\t0.25\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 1, "weights[token 1, slot 0]");
  }
  SUBCASE("non-finite weight") {
    d.write("expert_weights_2.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n3\t1\t\tnan\t0.25\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 2, "weights[token 0, slot 0]");
  }
}

TEST_CASE("an empty ESFT file or an empty line is rejected naming the file, line and field") {
  temp_dir d;
  write_good(d, 2);
  SUBCASE("empty file") {
    d.write("expert_weights_2.txt", "");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 1, "ids");
  }
  SUBCASE("empty line") {
    d.write("expert_weights_1.txt", "0\t1\t2\t3\t\t0.5\t0.25\t0.125\t0.0625\n\n3\t1\t\t0.75\t0.25\n");
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 2, "ids");
  }
}

TEST_CASE("a missing ESFT layer file is rejected naming the file, line and field") {
  temp_dir d;
  SUBCASE("a gap in the layer numbers") {
    d.write("expert_weights_1.txt", good_layer);
    d.write("expert_weights_3.txt", good_layer);
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_2.txt", 1, "layer");
  }
  SUBCASE("fewer files than the layers asked for") {
    write_good(d, 3);
    auto o = small;
    o.num_layers = 4;
    expect_error([&] { (void)gem::read_esft(d.path, o); }, "expert_weights_4.txt", 1, "layer");
  }
  SUBCASE("no layer file at all") {
    expect_error([&] { (void)gem::read_esft(d.path, small); }, "expert_weights_1.txt", 1, "layer");
  }
}
