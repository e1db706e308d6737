// gem/place/detail/straggler_search.hpp — the local search behind `gem_search`: items (expert
// replicas with a fixed share) on GPUs, objective = sum over sampled steps of the straggler's
// seconds under a speed model; moves and swaps that take work away from the GPU that straggles.
// Depends on gem/speed/speed_model.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "gem/speed/speed_model.hpp"

namespace gem::detail {

/// One resident copy of an expert and the share of the expert's tokens it receives.
struct search_item {
  std::int32_t expert = 0;
  double share = 1.0;
};

/// Straggler-driven local search over the assignment of items to GPUs for one layer.
///
/// Exactness and speed. The objective is evaluated with the real speed model; a candidate changes
/// two GPUs, and only in steps where one of its experts has tokens. In such a step the new
/// straggler is max(rest, T_a', T_b'), where `rest` is the largest time of the other GPUs (kept as
/// the top three per step). T_a' and T_b' are computed by the model only when a cheap upper bound
/// exceeds the running maximum: removing rows never adds time (monotone model) and adding an
/// expert with r rows adds at most seconds(g, [ceil r]) (sub-additive model). For models that
/// break sub-additivity the pruning may misjudge a candidate, but the state is always recomputed exactly after a move, so the objective reported stays exact.
template <speed_model M>
class straggler_search {
 public:
  struct options {
    bool allow_moves = false;                 ///< items may change GPU alone (per-GPU counts change)
    std::vector<std::int32_t> cap{};          ///< most items per GPU
    std::vector<std::int32_t> expert_node{};  ///< node each expert is confined to (-1 / empty: any)
    std::int32_t gpus_per_node = 1;
    std::int64_t max_step_evals = 0;          ///< budget in (candidate x step) evaluations; 0 = none
    std::int32_t max_targets = 0;             ///< GPUs (most slack first) tried per item; 0 = all
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  };

  straggler_search(const M& model, std::int32_t num_gpus, const std::vector<std::vector<double>>& steps,
                   std::vector<search_item> items, options opt)
      : model_(&model), G_(num_gpus), S_(static_cast<std::int32_t>(steps.size())), items_(std::move(items)),
        opt_(std::move(opt)) {
    E_ = steps.empty() ? 0 : static_cast<std::int32_t>(steps[0].size());
    // The steps' loads in one block (step-major), and per expert the steps where it has tokens
    // (one block, expert-major): the search reads both in its innermost loops.
    const auto E = static_cast<std::size_t>(E_);
    loads_.resize(static_cast<std::size_t>(S_) * E);
    for (std::int32_t s = 0; s < S_; ++s)
      std::copy(steps[s].begin(), steps[s].end(), loads_.begin() + static_cast<std::ptrdiff_t>(s) * E_);
    active_begin_.assign(E + 1, 0);
    active_.reserve(loads_.size());
    for (std::size_t e = 0; e < E; ++e) {
      const double* col = loads_.data() + e;
      for (std::int32_t s = 0; s < S_; ++s)
        if (col[static_cast<std::size_t>(s) * E] > 0) active_.push_back(s);
      active_begin_[e + 1] = static_cast<std::int32_t>(active_.size());
    }
    T_.assign(static_cast<std::size_t>(S_) * G_, 0.0);
    top_.assign(static_cast<std::size_t>(S_), {});
    holds_.assign(static_cast<std::size_t>(G_) * E_, 0);
    members_.assign(static_cast<std::size_t>(G_), {});
    rows_of_.assign(static_cast<std::size_t>(G_), {});
  }

  /// Puts item i on GPU gpu_of[i] and computes every step exactly.
  void assign(const std::vector<std::int32_t>& gpu_of) {
    gpu_of_ = gpu_of;
    for (auto& m : members_) m.clear();
    std::fill(holds_.begin(), holds_.end(), 0);
    for (std::size_t i = 0; i < gpu_of_.size(); ++i) {
      members_[gpu_of_[i]].push_back(static_cast<std::int32_t>(i));
      ++holds_[static_cast<std::size_t>(gpu_of_[i]) * E_ + items_[i].expert];
    }
    for (std::int32_t g = 0; g < G_; ++g) rebuild_rows(g);
    sum_max_ = 0;
    for (std::int32_t s = 0; s < S_; ++s) {
      for (std::int32_t g = 0; g < G_; ++g) T_[idx(s, g)] = seconds_now(g, s);
      refresh_top(s);
      sum_max_ += top_[s].v[0];
    }
  }

  /// Mean over steps of the straggler's seconds.
  [[nodiscard]] double objective() const { return S_ > 0 ? sum_max_ / S_ : 0.0; }
  [[nodiscard]] const std::vector<std::int32_t>& gpu_of() const { return gpu_of_; }
  [[nodiscard]] std::int64_t step_evals() const { return evals_; }
  /// Starts the evaluation budget afresh (a new start searched with this instance).
  void reset_budget() { evals_ = 0; }
  [[nodiscard]] bool budget_left() const {
    if (opt_.max_step_evals > 0 && evals_ >= opt_.max_step_evals) return false;
    if (opt_.deadline != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() > opt_.deadline)
      return false;
    return true;
  }

  /// Local search until no candidate from a straggling GPU improves the objective or the budget
  /// runs out. Candidates: for a GPU a that is the straggler in some step (most straggling first),
  /// each of its items i (largest load in a's straggling steps first), each other GPU b (most slack
  /// first): move i to b (when moves are allowed and b has room) and swap i with each item of b.
  /// The best candidate of an item is applied when it lowers the objective.
  void run() {
    dont_look_.assign(items_.size(), 0);
    descend(true);
  }

  /// Perturbs the assignment with `swaps` random swaps of items between two GPUs (drawn from
  /// `rng`; swaps that would break a constraint are skipped) and searches again from there, looking
  /// only at the items of the GPUs the swaps touched until a move touches others.
  template <class Rng>
  void kick_and_descend(Rng& rng, std::int32_t swaps) {
    dont_look_.assign(items_.size(), 1);
    for (std::int32_t k = 0; k < swaps && G_ > 1; ++k) {
      const auto a = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(G_)));
      auto b = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(G_ - 1)));
      if (b >= a) ++b;
      if (members_[a].empty() || members_[b].empty()) continue;
      const auto i = members_[a][rng.below(members_[a].size())];
      const auto j = members_[b][rng.below(members_[b].size())];
      const auto e = items_[i].expert, f = items_[j].expert;
      if (e == f || holds(b, e) || holds(a, f) || !allowed(e, b) || !allowed(f, a)) continue;
      apply(i, a, j, b);
      for (const auto x : members_[a]) dont_look_[x] = 0;
      for (const auto x : members_[b]) dont_look_[x] = 0;
    }
    descend(false);
  }

 private:
  /// The descent behind run(): with `confirm`, a pass with every don't-look bit cleared checks a
  /// local optimum before returning.
  void descend(bool confirm) {
    std::vector<double> weight(static_cast<std::size_t>(G_));
    std::vector<std::int32_t> sources, targets, order;
    std::vector<double> contrib, slack(static_cast<std::size_t>(G_));
    // Don't-look bits: an item whose neighbourhood gave nothing is skipped until a move touches its
    // GPU; when nothing improves, one pass with every bit cleared confirms the local optimum.
    bool confirming = !confirm;
    while (budget_left()) {
      std::fill(weight.begin(), weight.end(), 0.0);
      for (std::int32_t s = 0; s < S_; ++s)
        if (top_[s].v[0] > 0) weight[top_[s].g[0]] += top_[s].v[0] - top_[s].v[1] + 1e-3 * top_[s].v[0];
      sources.clear();
      for (std::int32_t g = 0; g < G_; ++g)
        if (weight[g] > 0) sources.push_back(g);
      std::stable_sort(sources.begin(), sources.end(), [&](auto x, auto y) { return weight[x] > weight[y]; });
      for (std::int32_t g = 0; g < G_; ++g) {
        slack[g] = 0;
        for (std::int32_t s = 0; s < S_; ++s) slack[g] += top_[s].v[0] - T_[idx(s, g)];
      }
      targets.resize(static_cast<std::size_t>(G_));
      std::iota(targets.begin(), targets.end(), 0);
      std::stable_sort(targets.begin(), targets.end(), [&](auto x, auto y) { return slack[x] > slack[y]; });
      const double tol = 1e-7 * std::max(sum_max_, 1e-300);  // ignore float-noise gains
      bool improved = false;
      for (const auto a : sources) {
        order = members_[a];
        contrib.assign(items_.size(), 0.0);
        for (const auto i : order)
          for (const auto s : active(items_[i].expert))
            if (top_[s].g[0] == a) contrib[i] += load(s, items_[i].expert) * items_[i].share;
        std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) { return contrib[x] > contrib[y]; });
        for (const auto i : order) {
          if (dont_look_[i]) continue;
          const auto e = items_[i].expert;
          double best = -tol;
          std::int32_t best_b = -1, best_j = -1;
          std::int32_t tried = 0;
          without(a, i);
          for (const auto b : targets) {
            if (b == a || !allowed(e, b) || holds(b, e)) continue;
            if (opt_.max_targets > 0 && tried++ >= opt_.max_targets) break;
            if (opt_.allow_moves && static_cast<std::int32_t>(members_[b].size()) < opt_.cap[b]) {
              const double d = delta(i, a, -1, b);
              if (d < best) best = d, best_b = b, best_j = -1;
            }
            for (const auto j : members_[b]) {
              const auto f = items_[j].expert;
              if (f == e || holds(a, f) || !allowed(f, a)) continue;
              const double d = delta(i, a, j, b);
              if (d < best) best = d, best_b = b, best_j = j;
            }
            if (!budget_left()) break;
          }
          if (best_b >= 0) {
            apply(i, a, best_j, best_b);
            for (const auto k : members_[a]) dont_look_[k] = 0;
            for (const auto k : members_[best_b]) dont_look_[k] = 0;
            improved = true;
            break;
          }
          dont_look_[i] = 1;
          if (!budget_left()) return;
        }
        if (improved) break;
      }
      if (improved) {
        confirming = false;
        continue;
      }
      if (confirming) return;
      std::fill(dont_look_.begin(), dont_look_.end(), 0);
      confirming = true;
    }
  }

  struct top3 {
    double v[3] = {0, 0, 0};
    std::int32_t g[3] = {-1, -1, -1};
  };

  [[nodiscard]] std::size_t idx(std::int32_t s, std::int32_t g) const {
    return static_cast<std::size_t>(s) * G_ + static_cast<std::size_t>(g);
  }
  [[nodiscard]] double load(std::int32_t s, std::int32_t e) const {
    return loads_[static_cast<std::size_t>(s) * E_ + static_cast<std::size_t>(e)];
  }
  /// The steps where expert e has tokens, in increasing order.
  [[nodiscard]] std::span<const std::int32_t> active(std::int32_t e) const {
    return {active_.data() + active_begin_[e], active_.data() + active_begin_[e + 1]};
  }
  [[nodiscard]] bool holds(std::int32_t g, std::int32_t e) const { return holds_[static_cast<std::size_t>(g) * E_ + e] > 0; }
  [[nodiscard]] bool allowed(std::int32_t e, std::int32_t g) const {
    return opt_.expert_node.empty() || opt_.expert_node[e] < 0 || g / opt_.gpus_per_node == opt_.expert_node[e];
  }

  /// GPU g's rows in every step, kept with its members: rows_of_[g][s * n + k] is the load of
  /// item members_[g][k] in step s (n = members_[g].size()), exactly the value the model sees.
  void rebuild_rows(std::int32_t g) {
    const auto& m = members_[g];
    const std::size_t n = m.size();
    auto& out = rows_of_[g];
    out.resize(static_cast<std::size_t>(S_) * n);
    if (rows_.size() < n + 1) rows_.resize(n + 1);
    double* o = out.data();
    for (std::int32_t s = 0; s < S_; ++s) {
      const double* c = loads_.data() + static_cast<std::size_t>(s) * E_;
      for (std::size_t k = 0; k < n; ++k) *o++ = c[items_[m[k]].expert] * items_[m[k]].share;
    }
  }

  /// Seconds of GPU g in step s as it is.
  double seconds_now(std::int32_t g, std::int32_t s) const {
    const std::size_t n = members_[g].size();
    if (n == 0) return 0.0;
    const double* r = rows_of_[g].data() + static_cast<std::size_t>(s) * n;
    return static_cast<double>(model_->seconds(gpu_id{g}, work{std::span<const double>(r, n)}));
  }

  /// Seconds of GPU g in step s with the member at position `skip` of members_[g] removed (-1:
  /// none) and `add_rows` rows of one more item appended (`add`: whether there is one). The rows
  /// are the members' in index order, then the added item's: what the model would see after the
  /// change (apply() appends and re-sorts, but a GPU's rows are only ever read in this order).
  double exact(std::int32_t g, std::int32_t s, std::int32_t skip, bool add, double add_rows) {
    const std::size_t n = members_[g].size();
    const double* r = rows_of_[g].data() + static_cast<std::size_t>(s) * n;
    double* out = rows_.data();
    std::size_t k = 0;
    for (std::size_t q = 0; q < n; ++q)
      if (static_cast<std::int32_t>(q) != skip) out[k++] = r[q];
    if (add) out[k++] = add_rows;
    return k == 0 ? 0.0 : static_cast<double>(model_->seconds(gpu_id{g}, work{std::span<const double>(out, k)}));
  }

  /// An upper bound on the seconds one expert with r rows adds to GPU g: seconds(g, [ceil r]).
  /// (Computed each time: every model here answers one row in a few operations, cheaper than a
  /// memo's cache misses.)
  double single(std::int32_t g, double r) const {
    if (r <= 0) return 0.0;
    const double row[1] = {std::ceil(r)};
    return static_cast<double>(model_->seconds(gpu_id{g}, work{row}));
  }

  /// Prepares source_seconds() for item i leaving GPU a: a's rows in every step without i's, each
  /// step's block followed by a free slot for the item that may come in.
  void without(std::int32_t a, std::int32_t i) {
    const std::size_t n = members_[a].size();
    const auto pos = static_cast<std::size_t>(position(a, i));
    const double* r = rows_of_[a].data();
    source_rows_.resize(static_cast<std::size_t>(S_) * n);
    for (std::int32_t s = 0; s < S_; ++s) {
      const double* from = r + static_cast<std::size_t>(s) * n;
      double* to = source_rows_.data() + static_cast<std::size_t>(s) * n;
      std::copy(from, from + pos, to);
      std::copy(from + pos + 1, from + n, to + pos);
    }
  }

  /// exact(a, s, position of i, add, add_rows) for the GPU and item of the last without(a, i).
  double source_seconds(std::int32_t a, std::int32_t s, bool add, double add_rows) {
    const std::size_t n = members_[a].size();
    double* r = source_rows_.data() + static_cast<std::size_t>(s) * n;
    const std::size_t k = add ? n : n - 1;
    if (add) r[n - 1] = add_rows;
    return k == 0 ? 0.0 : static_cast<double>(model_->seconds(gpu_id{a}, work{std::span<const double>(r, k)}));
  }

  /// Position of item i in members_[g].
  [[nodiscard]] std::int32_t position(std::int32_t g, std::int32_t i) const {
    const auto& m = members_[g];
    return static_cast<std::int32_t>(std::find(m.begin(), m.end(), i) - m.begin());
  }

  [[nodiscard]] double rest_max(std::int32_t s, std::int32_t a, std::int32_t b) const {
    const auto& t = top_[s];
    for (int k = 0; k < 3; ++k)
      if (t.g[k] >= 0 && t.g[k] != a && t.g[k] != b) return t.v[k];
    return 0.0;
  }

  /// Visits the steps where expert e or f (f may be -1) has tokens, in increasing order.
  template <class F>
  void for_union(std::int32_t e, std::int32_t f, F&& fn) const {
    const auto x = active(e);
    if (f < 0) {
      for (const auto s : x) fn(s);
      return;
    }
    const auto y = active(f);
    std::size_t i = 0, j = 0;
    while (i < x.size() || j < y.size()) {
      if (j == y.size() || (i < x.size() && x[i] < y[j])) fn(x[i++]);
      else if (i == x.size() || y[j] < x[i]) fn(y[j++]);
      else fn(x[i++]), ++j;
    }
  }

  /// Change of the summed straggler seconds if item i leaves GPU a for b and (j >= 0) item j
  /// leaves b for a.
  double delta(std::int32_t i, std::int32_t a, std::int32_t j, std::int32_t b) {
    const auto e = items_[i].expert;
    const auto f = j >= 0 ? items_[j].expert : -1;
    const auto pos_j = j >= 0 ? position(b, j) : -1;
    const auto x = active(e);
    const auto y = f >= 0 ? active(f) : std::span<const std::int32_t>{};
    std::size_t p = 0, q = 0;
    double d = 0;
    while (p < x.size() || q < y.size()) {  // the steps of x and y, merged
      std::int32_t s;
      if (q == y.size() || (p < x.size() && x[p] < y[q])) s = x[p++];
      else if (p == x.size() || y[q] < x[p]) s = y[q++];
      else s = x[p++], ++q;
      ++evals_;
      const double* c = &loads_[static_cast<std::size_t>(s) * E_];
      const double ci = c[e] * items_[i].share, cj = j >= 0 ? c[f] * items_[j].share : 0.0;
      double nm = rest_max(s, a, b);
      // The bound T + single(...) exceeds nm whenever T does (seconds are non-negative), so
      // single() is only computed when T alone does not decide.
      const double T_a = T_[idx(s, a)];
      if (T_a > nm || (cj > 0 && T_a + single(a, cj) > nm)) nm = std::max(nm, source_seconds(a, s, j >= 0, cj));
      const double T_b = T_[idx(s, b)];
      if (T_b > nm || (ci > 0 && T_b + single(b, ci) > nm)) nm = std::max(nm, exact(b, s, pos_j, true, ci));
      d += nm - top_[s].v[0];
    }
    return d;
  }

  void apply(std::int32_t i, std::int32_t a, std::int32_t j, std::int32_t b) {
    const auto e = items_[i].expert;
    const auto f = j >= 0 ? items_[j].expert : -1;
    auto& ma = members_[a];
    auto& mb = members_[b];
    ma.erase(std::find(ma.begin(), ma.end(), i));
    mb.push_back(i);
    gpu_of_[i] = b;
    --holds_[static_cast<std::size_t>(a) * E_ + e];
    ++holds_[static_cast<std::size_t>(b) * E_ + e];
    if (j >= 0) {
      mb.erase(std::find(mb.begin(), mb.end(), j));
      ma.push_back(j);
      gpu_of_[j] = a;
      --holds_[static_cast<std::size_t>(b) * E_ + f];
      ++holds_[static_cast<std::size_t>(a) * E_ + f];
    }
    // Keep each GPU's items in index order so that the rows a model sees do not depend on history.
    std::sort(ma.begin(), ma.end());
    std::sort(mb.begin(), mb.end());
    rebuild_rows(a);
    rebuild_rows(b);
    for_union(e, f, [&](std::int32_t s) {
      sum_max_ -= top_[s].v[0];
      T_[idx(s, a)] = seconds_now(a, s);
      T_[idx(s, b)] = seconds_now(b, s);
      refresh_top(s);
      sum_max_ += top_[s].v[0];
    });
  }

  void refresh_top(std::int32_t s) {
    top3 t;
    for (std::int32_t g = 0; g < G_; ++g) {
      const double v = T_[idx(s, g)];
      if (t.g[0] < 0 || v > t.v[0]) {
        t.v[2] = t.v[1], t.g[2] = t.g[1], t.v[1] = t.v[0], t.g[1] = t.g[0], t.v[0] = v, t.g[0] = g;
      } else if (t.g[1] < 0 || v > t.v[1]) {
        t.v[2] = t.v[1], t.g[2] = t.g[1], t.v[1] = v, t.g[1] = g;
      } else if (t.g[2] < 0 || v > t.v[2]) {
        t.v[2] = v, t.g[2] = g;
      }
    }
    top_[s] = t;
  }

  const M* model_;
  std::int32_t G_, S_, E_ = 0;
  std::vector<search_item> items_;
  options opt_;
  std::vector<double> loads_;                ///< [S][E]
  std::vector<std::int32_t> active_begin_;  ///< [E + 1]: expert e's steps are active_[begin[e], begin[e + 1])
  std::vector<std::int32_t> active_;
  std::vector<double> T_;
  std::vector<top3> top_;
  std::vector<std::int32_t> holds_;
  std::vector<std::vector<std::int32_t>> members_;
  std::vector<std::vector<double>> rows_of_;  ///< per GPU: [S][members] rows (see rebuild_rows)
  std::vector<std::int32_t> gpu_of_;
  std::vector<double> rows_;
  std::vector<double> source_rows_;  ///< see without()
  std::vector<char> dont_look_;
  double sum_max_ = 0;
  std::int64_t evals_ = 0;
};

}  // namespace gem::detail
