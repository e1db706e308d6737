// examples/moe_layer/rank_threads.hpp: every rank's job runs at once on its own persistent thread,
// exceptions come back from the lowest rank, and the threads serve run after run.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/moe_layer/rank_threads.hpp"

using gem::example::detail::rank_threads;

TEST_CASE("rank_threads runs every rank's job at the same time, each on its own thread") {
  for (const std::int32_t n : {1, 2, 5}) {
    rank_threads pool(n);
    // Each job waits (up to 10 s) until every rank has started: only possible if they all run at once.
    std::atomic<std::int32_t> started{0};
    std::vector<char> saw_all(static_cast<std::size_t>(n), 0);
    std::vector<std::thread::id> ids(static_cast<std::size_t>(n));
    pool.run([&](std::int32_t r) {
      ids[static_cast<std::size_t>(r)] = std::this_thread::get_id();
      started.fetch_add(1);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (started.load() < n && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      saw_all[static_cast<std::size_t>(r)] = started.load() == n;
    });
    for (std::int32_t r = 0; r < n; ++r) CHECK(saw_all[static_cast<std::size_t>(r)]);
    const std::set<std::thread::id> distinct(ids.begin(), ids.end());
    CHECK(distinct.size() == static_cast<std::size_t>(n));
    CHECK(distinct.count(std::this_thread::get_id()) == 0);

    // The same thread serves rank r on every run, and no job is lost or run twice.
    std::vector<std::int64_t> sums(static_cast<std::size_t>(n), 0);
    std::vector<char> same_thread(static_cast<std::size_t>(n), 1);
    for (int k = 1; k <= 500; ++k)
      pool.run([&](std::int32_t r) {
        const auto i = static_cast<std::size_t>(r);
        sums[i] += k;
        same_thread[i] = same_thread[i] && ids[i] == std::this_thread::get_id();
      });
    for (std::int32_t r = 0; r < n; ++r) {
      CHECK(same_thread[static_cast<std::size_t>(r)]);
      CHECK(sums[static_cast<std::size_t>(r)] == 500 * 501 / 2);
    }
  }
}

TEST_CASE("rank_threads rethrows the lowest failing rank's exception and keeps serving") {
  rank_threads pool(4);
  std::atomic<std::int32_t> ran{0};
  const auto failing = [&](std::int32_t r) {
    ran.fetch_add(1);
    if (r == 1 || r == 3) throw std::runtime_error("rank " + std::to_string(r));
  };
  CHECK_THROWS_WITH_AS(pool.run(failing), "rank 1", std::runtime_error);
  CHECK(ran.load() == 4);  // the other ranks' jobs still ran
  // The errors were consumed: the next run succeeds, and a later failure reports itself.
  ran = 0;
  CHECK_NOTHROW(pool.run([&](std::int32_t) { ran.fetch_add(1); }));
  CHECK(ran.load() == 4);
  CHECK_THROWS_WITH_AS(pool.run([](std::int32_t r) {
    if (r == 3) throw std::logic_error("only rank 3");
  }),
                       "only rank 3", std::logic_error);
}

TEST_CASE("rank_threads of no ranks returns at once") {
  rank_threads pool(0);
  bool called = false;
  pool.run([&](std::int32_t) { called = true; });
  CHECK_FALSE(called);
}
