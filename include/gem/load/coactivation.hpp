// gem/load/coactivation.hpp — which experts of a layer are activated together: the
// `coactivation_model` concept (trace, layer -> E x E scores in [0, 1]) with three models (none,
// token-level pair counts from top-k ids, step-level co-hotness), clustering of the scores into
// anti-affinity groups, and `grouped_load`, a load_model that fills layer_loads::groups.
// Depends on gem/load/load_model.hpp, gem/load/classes.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "gem/detail/trace_access.hpp"
#include "gem/load/classes.hpp"
#include "gem/load/empirical_load.hpp"
#include "gem/load/mean_load.hpp"
#include "gem/load/load_model.hpp"

namespace gem {

/// Symmetric co-activation scores of one layer: score[i * E + j] in [0, 1], 0 on the diagonal;
/// higher means experts i and j are loaded together more than chance would give.
struct coactivation_matrix {
  std::int32_t num_experts = 0;
  std::vector<double> score{};

  /// Score of experts i and j; both must be in [0, num_experts).
  [[nodiscard]] double operator()(std::int32_t i, std::int32_t j) const {
    return score[static_cast<std::size_t>(i) * static_cast<std::size_t>(num_experts) + static_cast<std::size_t>(j)];
  }
};

/// A co-activation model: a small copyable value whose `scores(trace, layer)` is a deterministic
/// coactivation_matrix of that layer.
template <class M>
concept coactivation_model = std::copy_constructible<M> && requires(const M& m, const routing_trace& t, layer_id l) {
  { m.scores(t, l) } -> std::same_as<coactivation_matrix>;
};

/// No co-activation: all scores 0 (strategies then form no anti-affinity groups).
struct no_coactivation {
  [[nodiscard]] coactivation_matrix scores(const routing_trace& t, layer_id l) const {
    detail::check_layer(t, l, "no_coactivation");
    const auto E = static_cast<std::size_t>(t.num_experts());
    return {t.num_experts(), std::vector<double>(E * E, 0.0)};
  }
};
static_assert(coactivation_model<no_coactivation>);

/// Token-level pair counts of layer `l`: pairs[i * E + j] = tokens whose top-k holds both i and j
/// (i != j; diagonal: tokens that chose i). Tokens [first_token, end_token) (end -1: all).
/// Throws config_error when the trace has no token routing.
[[nodiscard]] inline std::vector<std::int64_t> token_pair_counts(const routing_trace& t, layer_id l,
                                                                 std::int64_t first_token = 0,
                                                                 std::int64_t end_token = -1) {
  detail::check_layer(t, l, "token_pair_counts");
  if (!t.tokens()) throw config_error("token_pair_counts: the trace has no per-token routing (top-k ids)");
  const auto& tok = *t.tokens();
  if (end_token < 0) end_token = tok.num_tokens;
  if (first_token < 0 || first_token > end_token || end_token > tok.num_tokens)
    throw config_error("token_pair_counts: token range out of bounds");
  const auto E = static_cast<std::size_t>(t.num_experts());
  const auto k = static_cast<std::size_t>(tok.top_k);
  std::vector<std::int64_t> pairs(E * E, 0);
  const auto* ids = tok.ids.data() + static_cast<std::size_t>(l.value) * static_cast<std::size_t>(tok.num_tokens) * k;
  for (auto i = static_cast<std::size_t>(first_token); i < static_cast<std::size_t>(end_token); ++i) {
    const auto* row = ids + i * k;
    for (std::size_t a = 0; a < k; ++a) {
      const auto ea = static_cast<std::size_t>(row[a]);
      ++pairs[ea * E + ea];
      for (std::size_t b = a + 1; b < k; ++b) {
        const auto eb = static_cast<std::size_t>(row[b]);
        ++pairs[ea * E + eb];
        ++pairs[eb * E + ea];
      }
    }
  }
  return pairs;
}

namespace detail {

// max(0, (n - expected) / (n + prior)): the share of the joint observations that chance does not
// explain, shrunk toward 0 by `prior` pseudo-observations so that one or two chance coincidences of
// rare experts do not look like co-activation.
inline double trace_excess_score(double n, double expected, double prior) {
  if (n <= 0) return 0.0;
  return std::max(0.0, (n - expected) / (n + prior));
}

}  // namespace detail

/// Token-level co-activation from top-k ids. With n_i tokens choosing i, n_ij choosing both, T
/// tokens and top-k routing, chance gives e_ij = n_i n_j (k - 1) / (T k) joint tokens (independent
/// choice, corrected for k distinct picks per token); score(i, j) = max(0, (n_ij - e_ij) /
/// (n_ij + prior_tokens)). Two always-hot experts score ~0; experts routed together score toward 1.
/// Needs token routing (config_error otherwise). Raw counts: token_pair_counts. Only the tokens of
/// steps [first_step, first_step + num_steps) count (num_steps = 0: to the last step).
struct token_pair_coactivation {
  double prior_tokens = 16.0;  ///< pseudo-tokens of shrinkage (>= 0).
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;

  [[nodiscard]] coactivation_matrix scores(const routing_trace& t, layer_id l) const {
    if (!(prior_tokens >= 0)) throw config_error("token_pair_coactivation.prior_tokens must be >= 0");
    detail::check_layer(t, l, "token_pair_coactivation");
    if (!t.tokens()) throw config_error("token_pair_coactivation: the trace has no per-token routing (top-k ids)");
    const auto [s0, s1] = detail::step_range(t, first_step, num_steps, "token_pair_coactivation");
    const auto tok0 = t.tokens()->step_offsets[static_cast<std::size_t>(s0)];
    const auto tok1 = t.tokens()->step_offsets[static_cast<std::size_t>(s1)];
    const auto pairs = token_pair_counts(t, l, tok0, tok1);
    const auto E = static_cast<std::size_t>(t.num_experts());
    const double T = static_cast<double>(tok1 - tok0);
    const double k = t.tokens()->top_k;
    coactivation_matrix m{t.num_experts(), std::vector<double>(E * E, 0.0)};
    if (T == 0 || k < 2) return m;
    for (std::size_t i = 0; i < E; ++i)
      for (std::size_t j = i + 1; j < E; ++j) {
        const double expected = static_cast<double>(pairs[i * E + i]) * static_cast<double>(pairs[j * E + j]) * (k - 1) / (T * k);
        const double s = detail::trace_excess_score(static_cast<double>(pairs[i * E + j]), expected, prior_tokens);
        m.score[i * E + j] = m.score[j * E + i] = s;
      }
    return m;
  }
};
static_assert(coactivation_model<token_pair_coactivation>);

/// How step-level co-hotness is scored.
enum class cohot_measure {
  excess,   ///< max(0, (n_ij - |H_i||H_j|/S) / (n_ij + prior_steps)): co-hot beyond chance (default).
  jaccard,  ///< |H_i ∩ H_j| / |H_i ∪ H_j| (two always-hot experts score 1: pair with candidates).
};

/// Step-level co-hotness: H_e is the set of steps in which e is hot (class_thresholds' rule:
/// count >= hot_factor x the step's uniform share), n_ij = |H_i ∩ H_j|, S the number of steps.
/// Works on counts alone (no token routing needed). Steps [first_step, first_step + num_steps).
struct step_cohot_coactivation {
  double hot_factor = 1.5;
  cohot_measure measure = cohot_measure::excess;
  double prior_steps = 2.0;  ///< pseudo-steps of shrinkage for `excess` (>= 0).
  std::int32_t first_step = 0;
  std::int32_t num_steps = 0;

  [[nodiscard]] coactivation_matrix scores(const routing_trace& t, layer_id l) const {
    if (!(hot_factor > 0)) throw config_error("step_cohot_coactivation.hot_factor must be positive");
    if (!(prior_steps >= 0)) throw config_error("step_cohot_coactivation.prior_steps must be >= 0");
    const auto hot = hot_steps(t, l, hot_factor, first_step, num_steps);
    const auto E = static_cast<std::size_t>(t.num_experts());
    const auto S = hot.size() / E;
    std::vector<std::int64_t> both(E * E, 0), n(E, 0);
    std::vector<std::size_t> on;
    for (std::size_t s = 0; s < S; ++s) {
      on.clear();
      for (std::size_t e = 0; e < E; ++e)
        if (hot[s * E + e]) on.push_back(e);
      for (std::size_t a = 0; a < on.size(); ++a) {
        ++n[on[a]];
        for (std::size_t b = a + 1; b < on.size(); ++b) ++both[on[a] * E + on[b]];
      }
    }
    coactivation_matrix m{t.num_experts(), std::vector<double>(E * E, 0.0)};
    for (std::size_t i = 0; i < E; ++i)
      for (std::size_t j = i + 1; j < E; ++j) {
        const auto nij = static_cast<double>(both[i * E + j]);
        double s = 0.0;
        if (measure == cohot_measure::jaccard) {
          const double uni = static_cast<double>(n[i] + n[j]) - nij;
          s = uni > 0 ? nij / uni : 0.0;
        } else {
          s = detail::trace_excess_score(nij, static_cast<double>(n[i]) * static_cast<double>(n[j]) / static_cast<double>(S),
                                         prior_steps);
        }
        m.score[i * E + j] = m.score[j * E + i] = s;
      }
    return m;
  }
};
static_assert(coactivation_model<step_cohot_coactivation>);

/// Clustering of scores into anti-affinity groups.
/// Average-linkage agglomeration among `candidates` (empty: every expert): repeatedly merge the two
/// clusters with the highest mean pairwise score while that mean is >= `min_score` and the merged
/// size is <= `max_group_size` (0: no limit). Ties go to the lowest expert ids.
struct cluster_options {
  double min_score = 0.3;
  std::int32_t max_group_size = 0;
  std::vector<std::int32_t> candidates{};
};

/// Groups of >= 2 co-activated experts (each increasing, groups ordered by their first expert).
/// Experts left alone belong to no group. O(C^3) for C candidates.
[[nodiscard]] inline std::vector<std::vector<std::int32_t>> cluster_groups(const coactivation_matrix& m,
                                                                          const cluster_options& o = {}) {
  const auto E = m.num_experts;
  if (E < 0 || m.score.size() != static_cast<std::size_t>(E) * static_cast<std::size_t>(E))
    throw config_error("cluster_groups: the score matrix is not num_experts x num_experts");
  if (!std::isfinite(o.min_score)) throw config_error("cluster_options.min_score must be finite");
  if (o.max_group_size < 0) throw config_error("cluster_options.max_group_size must be >= 0 (0 = no limit)");
  std::vector<std::int32_t> cand = o.candidates;
  if (cand.empty())
    for (std::int32_t e = 0; e < E; ++e) cand.push_back(e);
  std::sort(cand.begin(), cand.end());
  for (std::size_t i = 0; i < cand.size(); ++i) {
    if (cand[i] < 0 || cand[i] >= E)
      throw config_error("cluster_options.candidates: expert " + std::to_string(cand[i]) + " is not in [0, " +
                         std::to_string(E) + ")");
    if (i && cand[i] == cand[i - 1])
      throw config_error("cluster_options.candidates: expert " + std::to_string(cand[i]) + " is listed twice");
  }
  const auto C = cand.size();
  std::vector<std::vector<std::int32_t>> cl(C);
  for (std::size_t i = 0; i < C; ++i) cl[i] = {cand[i]};
  // sum[a * C + b]: sum of pairwise scores between clusters a and b.
  std::vector<double> sum(C * C, 0.0);
  for (std::size_t a = 0; a < C; ++a)
    for (std::size_t b = 0; b < C; ++b) sum[a * C + b] = a == b ? 0.0 : m(cand[a], cand[b]);
  std::vector<bool> alive(C, true);
  for (;;) {
    double best = -1.0;
    std::size_t ba = C, bb = C;
    for (std::size_t a = 0; a < C; ++a) {
      if (!alive[a]) continue;
      for (std::size_t b = a + 1; b < C; ++b) {
        if (!alive[b]) continue;
        const auto size = cl[a].size() + cl[b].size();
        if (o.max_group_size > 0 && size > static_cast<std::size_t>(o.max_group_size)) continue;
        const double avg = sum[a * C + b] / static_cast<double>(cl[a].size() * cl[b].size());
        if (avg > best) {
          best = avg;
          ba = a;
          bb = b;
        }
      }
    }
    if (ba == C || best < o.min_score) break;
    cl[ba].insert(cl[ba].end(), cl[bb].begin(), cl[bb].end());
    std::sort(cl[ba].begin(), cl[ba].end());
    cl[bb].clear();
    alive[bb] = false;
    for (std::size_t c = 0; c < C; ++c) {
      sum[ba * C + c] += sum[bb * C + c];
      sum[c * C + ba] = sum[ba * C + c];
    }
    sum[ba * C + ba] = 0.0;
  }
  std::vector<std::vector<std::int32_t>> groups;
  for (std::size_t a = 0; a < C; ++a)
    if (alive[a] && cl[a].size() >= 2) groups.push_back(cl[a]);
  std::sort(groups.begin(), groups.end());
  return groups;
}

/// A load_model that adds anti-affinity groups to another model's loads: groups =
/// cluster_groups(coactivation.scores(trace, layer), clustering), where with `temporal_only` the
/// candidates are the layer's temporal experts (classify with `classes`; consistent experts are
/// hot together by definition and are balanced by their mean instead). Classes and scores use the
/// whole trace given (and the co-activation model's own step range): to keep held-out steps out of
/// a fit, pass the fitting steps only (gem::slice_steps in gem/trace/batching.hpp).
template <load_model LoadModel, coactivation_model CoactivationModel>
struct grouped_load {
  LoadModel base{};
  CoactivationModel coactivation{};
  cluster_options clustering{};
  bool temporal_only = false;
  class_thresholds classes{};

  [[nodiscard]] layer_loads loads(const routing_trace& t, layer_id l) const {
    auto out = base.loads(t, l);
    auto opts = clustering;
    if (temporal_only) {
      opts.candidates = classify(t, l, classes).members(expert_class::temporal);
      if (opts.candidates.size() < 2) return out;
    }
    out.groups = cluster_groups(coactivation.scores(t, l), opts);
    return out;
  }
};
static_assert(load_model<grouped_load<mean_load, token_pair_coactivation>>);
static_assert(load_model<grouped_load<empirical_load, step_cohot_coactivation>>);

}  // namespace gem
