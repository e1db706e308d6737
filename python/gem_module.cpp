// gem._gem — the C++ side of gem's Python package: EPLB's rebalance_experts contract, gem's
// variability-aware strategies, and the evaluator, on numpy arrays. gem/__init__.py wraps it
// (keyword defaults, torch tensors). Depends on pybind11 and gem's host API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gem/eval/evaluator.hpp"
#include "gem/place/baselines.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/speed_proportional.hpp"
#include "gem/speed/layer_shape.hpp"
#include "gem/speed/profile.hpp"
#include "gem/speed/roofline.hpp"
#include "gem/speed/scaled.hpp"
#include "gem/speed/table.hpp"
#include "gem/version.hpp"

namespace py = pybind11;

namespace {

using f64_array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using i64_array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

/// weight [L][E] as rows of doubles; throws gem::config_error naming the argument.
std::vector<std::vector<double>> rows_2d(const f64_array& a, const char* name) {
  if (a.ndim() != 2)
    throw gem::config_error(std::string(name) + " must be 2-D [layers, experts], got " + std::to_string(a.ndim()) + "-D");
  const auto L = a.shape(0), E = a.shape(1);
  std::vector<std::vector<double>> out(static_cast<std::size_t>(L));
  const double* p = a.data();
  for (py::ssize_t l = 0; l < L; ++l) out[l].assign(p + l * E, p + (l + 1) * E);
  return out;
}

/// The EPLB triple of a placement: phy2log [L][P], log2phy [L][E][R], logcnt [L][E] (needs the
/// same slot count in every layer).
py::tuple eplb_triple(const gem::placement& pl) {
  const auto L = pl.num_layers(), E = pl.num_experts(), R = pl.max_replicas();
  const auto P = pl.num_slots(gem::layer_id{0});
  py::array_t<std::int64_t> phy2log({static_cast<py::ssize_t>(L), static_cast<py::ssize_t>(P)});
  py::array_t<std::int64_t> log2phy({static_cast<py::ssize_t>(L), static_cast<py::ssize_t>(E), static_cast<py::ssize_t>(R)});
  py::array_t<std::int64_t> logcnt({static_cast<py::ssize_t>(L), static_cast<py::ssize_t>(E)});
  auto p2l = phy2log.mutable_unchecked<2>();
  auto l2p = log2phy.mutable_unchecked<3>();
  auto cnt = logcnt.mutable_unchecked<2>();
  for (std::int32_t l = 0; l < L; ++l) {
    const auto& lp = pl.layer(gem::layer_id{l});
    if (static_cast<std::int32_t>(lp.phy2log.size()) != P)
      throw gem::config_error("the placement uses a different slot count in layer " + std::to_string(l));
    for (std::int32_t p = 0; p < P; ++p) p2l(l, p) = lp.phy2log[p];
    const auto lg = pl.log2phy(gem::layer_id{l}, R);
    for (std::int32_t e = 0; e < E; ++e)
      for (std::int32_t r = 0; r < R; ++r) l2p(l, e, r) = lg[static_cast<std::size_t>(e) * R + r];
    const auto c = pl.logcnt(gem::layer_id{l});
    for (std::int32_t e = 0; e < E; ++e) cnt(l, e) = c[e];
  }
  return py::make_tuple(phy2log, log2phy, logcnt);
}

/// weight as a C-contiguous float32 or float64 array, without a copy when it already is one
/// (other dtypes and layouts are converted to float64). Dtypes are told apart with numpy's own
/// EquivTypes (py::array_t checks), not py::array::itemsize(): pybind11 2.10 reads the item size
/// from numpy 1's descriptor layout, which numpy 2 changed.
py::array weight_array(const py::array& a) {
  if (py::isinstance<py::array_t<float, py::array::c_style>>(a) || py::isinstance<py::array_t<double, py::array::c_style>>(a))
    return a;
  return f64_array::ensure(a);
}

/// EPLB's call shape for a 2-D weight, validated.
gem::detail::eplb_shape eplb_call(const py::array& w, int num_replicas, int num_groups, int num_nodes, int num_gpus) {
  if (w.ndim() != 2)
    throw gem::config_error("weight must be 2-D [layers, experts], got " + std::to_string(w.ndim()) + "-D");
  const gem::detail::eplb_shape s{.num_layers = static_cast<std::int32_t>(w.shape(0)),
                                  .num_experts = static_cast<std::int32_t>(w.shape(1)),
                                  .num_replicas = num_replicas,
                                  .num_groups = num_groups,
                                  .num_nodes = num_nodes,
                                  .num_gpus = num_gpus};
  s.validate();
  return s;
}

/// The data of an array from weight_array, read without the GIL.
struct weight_view {
  const void* data = nullptr;
  bool f32 = false;

  explicit weight_view(const py::array& w) : data(w.data()), f32(py::isinstance<py::array_t<float>>(w)) {}

  /// Runs `f(const T* weight)` with T = float or double, as the array holds.
  template <class F>
  decltype(auto) visit(F&& f) const {
    if (f32) return f(static_cast<const float*>(data));
    return f(static_cast<const double*>(data));
  }
};

/// DeepSeek EPLB's contract on numpy: the C++ steps write straight into numpy-owned int64 arrays,
/// with the GIL released around them.
py::tuple rebalance_experts(const py::array& weight_in, int num_replicas, int num_groups, int num_nodes, int num_gpus) {
  const py::array w = weight_array(weight_in);
  const auto s = eplb_call(w, num_replicas, num_groups, num_nodes, num_gpus);
  const auto L = static_cast<py::ssize_t>(s.num_layers), E = static_cast<py::ssize_t>(s.num_experts),
             P = static_cast<py::ssize_t>(s.num_replicas);
  py::array_t<std::int64_t> phy2log({L, P}), logcnt({L, E});
  std::vector<std::int32_t> rank(static_cast<std::size_t>(L * P));
  std::int64_t* p2l = phy2log.mutable_data();
  std::int64_t* cnt = logcnt.mutable_data();
  const weight_view wv(w);
  std::int32_t R = 0;
  {
    py::gil_scoped_release nogil;
    R = wv.visit([&](const auto* p) {
      gem::detail::eplb_check_weights(p, s);
      return gem::detail::eplb_rebalance_into(p, s, p2l, rank.data(), cnt);
    });
  }
  py::array_t<std::int64_t> log2phy({L, E, static_cast<py::ssize_t>(R)});
  std::int64_t* l2p = log2phy.mutable_data();
  {
    py::gil_scoped_release nogil;
    gem::detail::eplb_log2phy_into(p2l, rank.data(), s, R, l2p);
  }
  return py::make_tuple(std::move(phy2log), std::move(log2phy), std::move(logcnt));
}

/// This thread's CPU time in seconds (not counting time the scheduler gave to other processes).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Medians of `repeats` timings of `f`: (wall seconds, this thread's CPU seconds).
template <class F>
py::tuple median_seconds(int repeats, F&& f) {
  std::vector<double> wall, cpu;
  {
    py::gil_scoped_release nogil;
    for (int i = 0; i < std::max(repeats, 1); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = thread_cpu_seconds();
      f();
      cpu.push_back(thread_cpu_seconds() - c0);
      wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
  }
  return py::make_tuple(wall[wall.size() / 2], cpu[cpu.size() / 2]);
}

/// Median (wall, CPU) seconds of `repeats` calls of the public C++ gem::rebalance_experts alone
/// (nested vectors in, int32 vectors out; weight already converted): the benchmark's anchor.
py::tuple time_rebalance_cpp(const f64_array& weight, int num_replicas, int num_groups, int num_nodes, int num_gpus,
                          int repeats) {
  const auto w = rows_2d(weight, "weight");
  return median_seconds(repeats, [&] {
    const auto r = gem::rebalance_experts(w, num_replicas, num_groups, num_nodes, num_gpus);
    if (r.phy2log.empty()) throw gem::placement_error("rebalance_experts returned no layers");
  });
}

/// Median (wall, CPU) seconds of `repeats` runs of the binding's C++ core without Python: checks,
/// EPLB into int64 buffers allocated per call, log2phy. The second anchor.
py::tuple time_rebalance_core(const py::array& weight_in, int num_replicas, int num_groups, int num_nodes, int num_gpus,
                           int repeats) {
  const py::array w = weight_array(weight_in);
  const auto s = eplb_call(w, num_replicas, num_groups, num_nodes, num_gpus);
  const auto LP = static_cast<std::size_t>(s.num_layers) * static_cast<std::size_t>(s.num_replicas);
  const auto LE = static_cast<std::size_t>(s.num_layers) * static_cast<std::size_t>(s.num_experts);
  const weight_view wv(w);
  return median_seconds(repeats, [&] {
    // Uninitialized, as numpy's arrays are (every element is written).
    const std::unique_ptr<std::int64_t[]> p2l(new std::int64_t[LP]), cnt(new std::int64_t[LE]);
    std::vector<std::int32_t> rank(LP);
    const auto R = wv.visit([&](const auto* p) {
      gem::detail::eplb_check_weights(p, s);
      return gem::detail::eplb_rebalance_into(p, s, p2l.get(), rank.data(), cnt.get());
    });
    const std::unique_ptr<std::int64_t[]> l2p(new std::int64_t[LE * static_cast<std::size_t>(R)]);
    gem::detail::eplb_log2phy_into(p2l.get(), rank.data(), s, R, l2p.get());
  });
}

using model_variant = std::variant<gem::scaled<gem::roofline>, gem::scaled<gem::table>>;

/// The speed model of the keyword arguments: a profile's table (if given) or the H200 roofline
/// for `shape`, each scaled by the per-GPU time multipliers `gpu_time`.
model_variant make_model(int num_gpus, const std::vector<double>& gpu_time, const std::string& shape,
                         const std::optional<std::string>& profile) {
  std::vector<double> factors = gpu_time.empty() ? std::vector<double>(static_cast<std::size_t>(num_gpus), 1.0) : gpu_time;
  if (static_cast<int>(factors.size()) != num_gpus)
    throw gem::config_error("gpu_speed holds " + std::to_string(factors.size()) + " values for " +
                            std::to_string(num_gpus) + " GPUs");
  if (profile) return gem::scale(gem::to_table(gem::read_profile(*profile), num_gpus), factors);
  return gem::scale(gem::h200_roofline(gem::layer_shape_by_name(shape), num_gpus), factors);
}

/// Steps [T][L][E] regrouped per layer [L][T][E].
std::vector<std::vector<std::vector<double>>> steps_per_layer(const f64_array& t, py::ssize_t L, py::ssize_t E) {
  if (t.ndim() != 3 || t.shape(1) != L || t.shape(2) != E)
    throw gem::config_error("trace must be 3-D [steps, layers, experts] with " + std::to_string(L) + " layers and " +
                            std::to_string(E) + " experts");
  const auto T = t.shape(0);
  std::vector<std::vector<std::vector<double>>> out(static_cast<std::size_t>(L));
  const double* p = t.data();
  for (py::ssize_t l = 0; l < L; ++l) {
    out[l].resize(static_cast<std::size_t>(T));
    for (py::ssize_t s = 0; s < T; ++s) out[l][s].assign(p + (s * L + l) * E, p + (s * L + l + 1) * E);
  }
  return out;
}

gem::placement run_strategy(const std::string& strategy, const std::string& mode, const gem::placement_problem& prob,
                            const model_variant& model, std::uint64_t seed) {
  const auto slot = mode == "extended" ? gem::slot_mode::extended : gem::slot_mode::engine_compatible;
  if (mode != "engine" && mode != "extended")
    throw gem::config_error("mode must be 'engine' or 'extended', got '" + mode + "'");
  return std::visit(
      [&](const auto& m) -> gem::placement {
        if (strategy == "eplb") return gem::eplb{}.place(prob, m);
        if (strategy == "linear") return gem::linear{}.place(prob, m);
        if (strategy == "round_robin") return gem::round_robin{}.place(prob, m);
        if (strategy == "speed_proportional") return gem::speed_proportional{.mode = slot}.place(prob, m);
        if (strategy == "gem") return gem::gem_search{.mode = slot, .seed = seed}.place(prob, m);
        throw gem::config_error("strategy must be one of eplb, linear, round_robin, speed_proportional, gem; got '" +
                                strategy + "'");
      },
      model);
}

py::dict place(const f64_array& weight, int num_gpus, int num_slots, int num_groups, int num_nodes,
               const std::string& strategy, const std::string& mode, const std::vector<double>& gpu_time,
               const std::string& shape, const std::optional<std::string>& profile,
               const std::optional<f64_array>& trace, std::uint64_t seed) {
  const auto w = rows_2d(weight, "weight");
  const auto L = weight.shape(0), E = weight.shape(1);
  if (num_gpus <= 0 || num_slots % num_gpus != 0)
    throw gem::config_error("num_replicas (" + std::to_string(num_slots) + ") must be a positive multiple of num_gpus (" +
                            std::to_string(num_gpus) + ")");
  gem::placement_problem prob{.cluster = gem::cluster_spec::equal(num_gpus, num_slots / num_gpus, num_nodes),
                              .num_experts = static_cast<std::int32_t>(E),
                              .layers = {},
                              .num_groups = num_groups};
  std::vector<std::vector<std::vector<double>>> steps;
  if (trace) steps = steps_per_layer(*trace, L, E);
  for (py::ssize_t l = 0; l < L; ++l)
    prob.layers.push_back(gem::layer_loads{.mean = w[l], .steps = trace ? steps[l] : std::vector<std::vector<double>>{}, .groups = {}});
  const auto model = make_model(num_gpus, gpu_time, shape, profile);
  const auto pl = run_strategy(strategy, mode, prob, model, seed);
  py::dict out;
  const auto triple = eplb_triple(pl);
  out["phy2log"] = triple[0];
  out["log2phy"] = triple[1];
  out["logcnt"] = triple[2];
  std::vector<std::vector<std::int64_t>> slot_gpu;
  std::vector<std::vector<double>> share;
  for (const auto& lp : pl.layers()) {
    slot_gpu.emplace_back(lp.slot_gpu.begin(), lp.slot_gpu.end());
    share.push_back(lp.share);
  }
  out["slot_gpu"] = py::cast(slot_gpu);
  out["replica_share"] = py::cast(share);
  return out;
}

py::dict evaluate(const i64_array& phy2log, const std::vector<std::vector<std::int64_t>>& slot_gpu,
                  const std::vector<std::vector<double>>& share, const f64_array& trace, int num_gpus,
                  const std::vector<double>& gpu_time, const std::string& shape,
                  const std::optional<std::string>& profile) {
  if (phy2log.ndim() != 2) throw gem::config_error("phy2log must be 2-D [layers, slots]");
  const auto L = phy2log.shape(0), P = phy2log.shape(1);
  if (trace.ndim() != 3 || trace.shape(1) != L) throw gem::config_error("trace must be 3-D [steps, layers, experts]");
  const auto E = trace.shape(2);
  std::vector<gem::layer_placement> layers(static_cast<std::size_t>(L));
  for (py::ssize_t l = 0; l < L; ++l) {
    for (py::ssize_t p = 0; p < P; ++p) layers[l].phy2log.push_back(static_cast<std::int32_t>(phy2log.at(l, p)));
    if (!slot_gpu.empty()) {
      if (slot_gpu.size() != static_cast<std::size_t>(L)) throw gem::config_error("slot_gpu must hold one row per layer");
      for (auto g : slot_gpu[l]) layers[l].slot_gpu.push_back(static_cast<std::int32_t>(g));
    } else {
      for (py::ssize_t p = 0; p < P; ++p) layers[l].slot_gpu.push_back(static_cast<std::int32_t>(p / (P / num_gpus)));
    }
    if (!share.empty()) layers[l].share = share.at(static_cast<std::size_t>(l));
  }
  std::vector<std::int32_t> per_gpu(static_cast<std::size_t>(num_gpus), 0);
  for (const auto& lp : layers) {
    std::vector<std::int32_t> used(static_cast<std::size_t>(num_gpus), 0);
    for (auto g : lp.slot_gpu)
      if (g >= 0 && g < num_gpus) ++used[g];
    for (int g = 0; g < num_gpus; ++g) per_gpu[g] = std::max(per_gpu[g], used[g]);
  }
  const gem::placement pl(gem::cluster_spec{.num_gpus = num_gpus, .slots_per_gpu = per_gpu, .num_nodes = 1},
                          static_cast<std::int32_t>(E), std::move(layers));
  const auto steps = steps_per_layer(trace, L, E);
  const auto model = make_model(num_gpus, gpu_time, shape, profile);
  const auto ev = std::visit([&](const auto& m) { return gem::evaluate(pl, steps, m); }, model);
  py::dict out;
  out["mean"] = ev.summary.mean;
  out["p50"] = ev.summary.p50;
  out["p99"] = ev.summary.p99;
  out["fluid_bound"] = ev.mean_bound;
  out["ratio_to_bound"] = ev.ratio_to_bound;
  out["straggler"] = py::array_t<double>(static_cast<py::ssize_t>(ev.straggler.size()), ev.straggler.data());
  return out;
}

}  // namespace

PYBIND11_MODULE(_gem, m) {
  m.doc() = "gem: GPU-variability-aware expert placement (C++ core)";
  py::register_exception<gem::error>(m, "GemError", PyExc_ValueError);
  m.def("rebalance_experts", &rebalance_experts, py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"),
        py::arg("num_nodes"), py::arg("num_gpus"),
        "DeepSeek EPLB's rebalance_experts: returns (phy2log [L,P], log2phy [L,E,R], logcnt [L,E]) as int64 arrays.");
  m.def("time_rebalance_cpp", &time_rebalance_cpp, py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"),
        py::arg("num_nodes"), py::arg("num_gpus"), py::arg("repeats"),
        "Median (wall, CPU) seconds of the public C++ gem::rebalance_experts alone (the binding benchmark's anchor).");
  m.def("time_rebalance_core", &time_rebalance_core, py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"),
        py::arg("num_nodes"), py::arg("num_gpus"), py::arg("repeats"),
        "Median (wall, CPU) seconds of the binding's C++ core (int64 buffers, no Python) alone: the second anchor.");
  m.def("rebalance_experts_reference", [](const f64_array& weight, int num_replicas, int num_groups, int num_nodes,
                                           int num_gpus) {
          const auto r = gem::rebalance_experts(rows_2d(weight, "weight"), num_replicas, num_groups, num_nodes, num_gpus);
          return py::make_tuple(r.phy2log, r.log2phy_nested(), r.logcnt);
        }, py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"), py::arg("num_nodes"), py::arg("num_gpus"),
        "gem::rebalance_experts as nested lists (the tests' reference for the binding's own core).");
  m.def("place", &place, py::arg("weight"), py::arg("num_gpus"), py::arg("num_slots"), py::arg("num_groups"),
        py::arg("num_nodes"), py::arg("strategy"), py::arg("mode"), py::arg("gpu_time"), py::arg("shape"),
        py::arg("profile"), py::arg("trace"), py::arg("seed"));
  m.def("evaluate", &evaluate, py::arg("phy2log"), py::arg("slot_gpu"), py::arg("replica_share"), py::arg("trace"),
        py::arg("num_gpus"), py::arg("gpu_time"), py::arg("shape"), py::arg("profile"));
  m.attr("__version__") = gem::version_string;
}
