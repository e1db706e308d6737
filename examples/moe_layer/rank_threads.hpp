// examples/moe_layer/rank_threads.hpp — one persistent host thread per rank, so that a layer
// driven from one process enqueues each GPU's work from its own thread, as a process per GPU
// would (ep_layer.cuh). Plain C++20, no CUDA.
#pragma once

#include <atomic>
#include <barrier>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

namespace gem::example::detail {

/// One persistent host thread per rank: run(job) calls job(r) on thread r for every rank at once
/// and returns when all are done, rethrowing the lowest rank's exception.
class rank_threads {
 public:
  explicit rank_threads(std::int32_t n) : start_(n + 1), done_(n + 1), errors_(static_cast<std::size_t>(n)) {
    try {
      for (std::int32_t r = 0; r < n; ++r) threads_.emplace_back([this, r] { loop(r); });
    } catch (...) {  // no thread for some ranks: release the ones made, then rethrow
      stop_ = true;
      for (auto r = threads_.size(); r < static_cast<std::size_t>(n); ++r) start_.arrive_and_drop();
      (void)start_.arrive_and_wait();
      for (auto& t : threads_) t.join();
      throw;
    }
  }
  rank_threads(const rank_threads&) = delete;
  rank_threads& operator=(const rank_threads&) = delete;
  ~rank_threads() {
    stop_ = true;
    (void)start_.arrive_and_wait();
    for (auto& t : threads_) t.join();
  }
  void run(const std::function<void(std::int32_t)>& job) {
    job_ = &job;
    (void)start_.arrive_and_wait();
    (void)done_.arrive_and_wait();
    std::exception_ptr first = nullptr;
    for (auto& e : errors_)
      if (auto x = std::exchange(e, nullptr); x && !first) first = x;
    if (first) std::rethrow_exception(first);
  }

 private:
  void loop(std::int32_t r) {
    for (;;) {
      (void)start_.arrive_and_wait();
      if (stop_) return;
      try {
        (*job_)(r);
      } catch (...) {
        errors_[static_cast<std::size_t>(r)] = std::current_exception();
      }
      (void)done_.arrive_and_wait();
    }
  }
  std::barrier<> start_, done_;
  std::vector<std::exception_ptr> errors_;
  const std::function<void(std::int32_t)>* job_ = nullptr;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_{};
};

}  // namespace gem::example::detail
