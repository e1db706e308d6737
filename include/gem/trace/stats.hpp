// gem/trace/stats.hpp — per-layer statistics of a routing trace, the ones `gem stats` prints and
// the synthetic generator is calibrated to: load skew, expert classes and the load share they carry,
// persistence of the hot set between consecutive steps, and concentration of co-activation pairs.
// Depends on gem/trace.hpp, gem/load/classes.hpp, gem/load/coactivation.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/load/classes.hpp"
#include "gem/load/coactivation.hpp"
#include "gem/trace.hpp"

namespace gem {

/// What the statistics use.
struct stats_options {
  class_thresholds classes{};          ///< the hot rule and class thresholds.
  double top_pair_fraction = 0.05;     ///< pair concentration: share of pair mass in this top share of pairs.
  double strong_pair_score = 0.5;      ///< a pair is "strong" when its token_pair_coactivation score reaches this.
  double prior_tokens = 16.0;          ///< token_pair_coactivation's shrinkage.
};

/// Statistics of one layer (all over the whole trace).
struct layer_stats {
  std::int32_t layer = 0;               ///< layer_id value.
  double max_over_mean = 0;             ///< hottest expert's tokens / mean tokens per expert.
  double min_over_mean = 0;             ///< coldest expert's tokens / mean.
  double zipf_exponent = 0;             ///< s of a least-squares fit load ~ rank^-s (experts with load > 0).
  std::array<std::int32_t, 3> class_count{};  ///< experts per class (consistent, temporal, cold).
  std::array<double, 3> class_share{};        ///< share of the tokens per class.
  double hot_per_step = 0;              ///< mean number of hot experts per step.
  double hot_set_persistence = 0;       ///< mean Jaccard of the hot sets of consecutive steps.
  std::optional<double> top_pair_share;       ///< token routing only: share of co-activation pair counts
                                              ///< (sum over i<j of n_ij) held by the top_pair_fraction of pairs.
  std::optional<double> strong_pair_fraction; ///< token routing only: share of pairs scoring >= strong_pair_score.
};

/// Per-layer statistics and their mean over layers (`mean.layer` is -1).
struct trace_stats {
  std::vector<layer_stats> layers{};
  layer_stats mean{};
};

/// Statistics of layer `l`. Throws config_error on a bad layer or options, or a trace without steps.
[[nodiscard]] inline layer_stats compute_layer_stats(const routing_trace& t, layer_id l, const stats_options& o = {}) {
  o.classes.validate();
  if (!(o.top_pair_fraction > 0 && o.top_pair_fraction <= 1))
    throw config_error("stats_options.top_pair_fraction must be in (0, 1]");
  detail::check_layer(t, l, "compute_layer_stats");
  layer_stats st;
  st.layer = l.value;
  const auto E = static_cast<std::size_t>(t.num_experts());
  const auto totals = t.layer_totals(l);
  double sum = 0;
  for (auto x : totals) sum += static_cast<double>(x);
  const double mean = sum / static_cast<double>(E);
  if (mean > 0) {
    st.max_over_mean = static_cast<double>(*std::max_element(totals.begin(), totals.end())) / mean;
    st.min_over_mean = static_cast<double>(*std::min_element(totals.begin(), totals.end())) / mean;
  }
  {
    auto sorted = totals;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
    for (std::size_t r = 0; r < E; ++r) {
      if (sorted[r] <= 0) break;
      const double x = std::log(static_cast<double>(r + 1)), y = std::log(static_cast<double>(sorted[r]));
      sx += x, sy += y, sxx += x * x, sxy += x * y, n += 1;
    }
    if (n >= 2 && n * sxx - sx * sx > 0) st.zipf_exponent = -(n * sxy - sx * sy) / (n * sxx - sx * sx);
  }
  const auto cls = classify(t, l, o.classes);
  st.class_count = cls.count;
  st.class_share = cls.load_share;
  {
    const auto hot = hot_steps(t, l, o.classes.hot_factor);
    const auto S = hot.size() / E;
    double hot_total = 0, jac = 0;
    std::size_t pairs = 0;
    for (std::size_t s = 0; s < S; ++s) {
      std::size_t on = 0, inter = 0, uni = 0;
      for (std::size_t e = 0; e < E; ++e) {
        on += hot[s * E + e];
        if (s + 1 < S) {
          inter += hot[s * E + e] & hot[(s + 1) * E + e];
          uni += hot[s * E + e] | hot[(s + 1) * E + e];
        }
      }
      hot_total += static_cast<double>(on);
      if (s + 1 < S && uni > 0) {
        jac += static_cast<double>(inter) / static_cast<double>(uni);
        ++pairs;
      }
    }
    st.hot_per_step = S ? hot_total / static_cast<double>(S) : 0.0;
    st.hot_set_persistence = pairs ? jac / static_cast<double>(pairs) : 0.0;
  }
  if (t.tokens() && t.tokens()->top_k >= 2 && t.tokens()->num_tokens > 0) {
    const auto pc = token_pair_counts(t, l);
    std::vector<std::int64_t> v;
    v.reserve(E * (E - 1) / 2);
    for (std::size_t i = 0; i < E; ++i)
      for (std::size_t j = i + 1; j < E; ++j) v.push_back(pc[i * E + j]);
    std::sort(v.begin(), v.end(), std::greater<>());
    const auto top = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(o.top_pair_fraction * static_cast<double>(v.size()))));
    double all = 0, head = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      all += static_cast<double>(v[i]);
      if (i < top) head += static_cast<double>(v[i]);
    }
    st.top_pair_share = all > 0 ? head / all : 0.0;
    const auto sc = token_pair_coactivation{.prior_tokens = o.prior_tokens}.scores(t, l);
    std::size_t strong = 0;
    for (std::size_t i = 0; i < E; ++i)
      for (std::size_t j = i + 1; j < E; ++j) strong += sc.score[i * E + j] >= o.strong_pair_score;
    st.strong_pair_fraction = static_cast<double>(strong) / static_cast<double>(v.size());
  }
  return st;
}

/// Statistics of every layer and their mean.
[[nodiscard]] inline trace_stats compute_stats(const routing_trace& t, const stats_options& o = {}) {
  trace_stats out;
  for (std::int32_t l = 0; l < t.num_layers(); ++l) out.layers.push_back(compute_layer_stats(t, layer_id{l}, o));
  auto& m = out.mean;
  m.layer = -1;
  const double n = static_cast<double>(out.layers.size());
  bool pairs = !out.layers.empty();
  for (const auto& s : out.layers) pairs = pairs && s.top_pair_share.has_value();
  if (pairs) m.top_pair_share = 0.0, m.strong_pair_fraction = 0.0;
  for (const auto& s : out.layers) {
    m.max_over_mean += s.max_over_mean / n;
    m.min_over_mean += s.min_over_mean / n;
    m.zipf_exponent += s.zipf_exponent / n;
    for (std::size_t c = 0; c < 3; ++c) m.class_share[c] += s.class_share[c] / n;
    for (std::size_t c = 0; c < 3; ++c) m.class_count[c] += s.class_count[c];
    m.hot_per_step += s.hot_per_step / n;
    m.hot_set_persistence += s.hot_set_persistence / n;
    if (pairs) {
      *m.top_pair_share += *s.top_pair_share / n;
      *m.strong_pair_fraction += *s.strong_pair_fraction / n;
    }
  }
  return out;
}

/// Prints one row per layer and a "mean" row (class counts in that row are totals over layers).
/// `source_layers[l]`, when given, names layer l (e.g. ESFT's 1..26).
inline void write_stats(std::ostream& out, const trace_stats& st, std::span<const std::int32_t> source_layers = {}) {
  char buf[256];
  out << "layer  max/mean  min/mean   zipf  consistent  temporal  cold  cons.share  temp.share  hot/step  persist  "
         "top-pairs  strong-pairs\n";
  auto row = [&](const layer_stats& s, const std::string& name) {
    auto opt = [](const std::optional<double>& v) { return v ? *v : std::nan(""); };
    std::snprintf(buf, sizeof buf, "%5s  %8.2f  %8.3f  %5.2f  %10d  %8d  %4d  %10.3f  %10.3f  %8.2f  %7.3f  %9.3f  %12.3f\n",
                  name.c_str(), s.max_over_mean, s.min_over_mean, s.zipf_exponent, s.class_count[0], s.class_count[1],
                  s.class_count[2], s.class_share[0], s.class_share[1], s.hot_per_step, s.hot_set_persistence,
                  opt(s.top_pair_share), opt(s.strong_pair_fraction));
    out << buf;
  };
  for (std::size_t i = 0; i < st.layers.size(); ++i)
    row(st.layers[i], std::to_string(i < source_layers.size() ? source_layers[i] : st.layers[i].layer));
  row(st.mean, "mean");
}

}  // namespace gem
