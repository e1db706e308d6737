// gem/report/svg_report.hpp — a self-contained SVG picture comparing placement strategies: per-GPU
// finish times of one representative step per strategy (bars, with the straggler and the fluid
// bound marked), and each strategy's latency distribution over steps (empirical CDF).
// Plain SVG 1.1 text, no script, no external resource. Depends on the standard library only.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "gem/error.hpp"

namespace gem::report {

/// One strategy's numbers for the picture (seconds).
/// - `gpu_seconds[g]`: GPU g's seconds in the representative step (its finish time: the step
///   starts on every GPU at once).
/// - `latencies`: straggler latency of every evaluated step (the distribution panel).
struct strategy_series {
  std::string name{};
  std::vector<double> gpu_seconds{};
  std::vector<double> latencies{};
};

/// Labels of the picture. `bound_seconds` > 0 draws the fluid bound of the representative step.
struct svg_options {
  std::string title = "gem: straggler latency by placement strategy";
  std::string step_label = "representative step";
  std::string latency_label = "step latency";
  double bound_seconds = 0;
};

namespace detail_svg {

inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// Picks a time unit for values up to `max_s`: (scale, suffix).
inline std::pair<double, const char*> time_unit(double max_s) {
  if (max_s >= 1.0) return {1.0, "s"};
  if (max_s >= 1e-3) return {1e3, "ms"};
  return {1e6, "\xC2\xB5s"};
}

// A "nice" upper axis limit and tick step for values up to v.
inline std::pair<double, double> nice_axis(double v) {
  if (!(v > 0)) return {1.0, 0.25};
  const double mag = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= v) return {m * mag, m * mag / (m == 2.5 || m == 5.0 ? 5.0 : 4.0)};
  return {10 * mag, 2.5 * mag};
}

inline constexpr std::array<const char*, 8> palette{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

}  // namespace detail_svg

/// The SVG document (UTF-8 text). Throws config_error when `series` is empty, a strategy has no GPU
/// or no latency, GPU counts differ, or a value is negative or not finite.
[[nodiscard]] inline std::string svg_report(std::span<const strategy_series> series, const svg_options& opt = {}) {
  using namespace detail_svg;
  if (series.empty()) throw config_error("svg_report: no strategies");
  const auto G = series.front().gpu_seconds.size();
  double max_gpu = opt.bound_seconds, max_lat = 0, min_lat = 1e300;
  for (const auto& s : series) {
    if (s.gpu_seconds.empty() || s.gpu_seconds.size() != G)
      throw config_error("svg_report: strategy '" + s.name + "' has " + std::to_string(s.gpu_seconds.size()) +
                         " GPUs, expected " + std::to_string(G));
    if (s.latencies.empty()) throw config_error("svg_report: strategy '" + s.name + "' has no latencies");
    for (double v : s.gpu_seconds) {
      if (!std::isfinite(v) || v < 0) throw config_error("svg_report: strategy '" + s.name + "' has a bad GPU time");
      max_gpu = std::max(max_gpu, v);
    }
    for (double v : s.latencies) {
      if (!std::isfinite(v) || v < 0) throw config_error("svg_report: strategy '" + s.name + "' has a bad latency");
      max_lat = std::max(max_lat, v);
      min_lat = std::min(min_lat, v);
    }
  }
  const double W = 960, panel_h = 150, top = 60, left = 70, right = 30, gap = 26;
  const double bars_h = static_cast<double>(series.size()) * (panel_h + gap);
  const double cdf_top = top + bars_h + 40, cdf_h = 300;
  const double H = cdf_top + cdf_h + 80 + 18 * static_cast<double>((series.size() - 1) / 4);
  const double plot_w = W - left - right;
  std::string out;
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" viewBox=\"0 0 " +
         num(W) + " " + num(H) + "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"white\"/>\n";
  out += "<text x=\"" + num(W / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"18\" font-weight=\"bold\">" +
         escape(opt.title) + "</text>\n";
  out += "<text x=\"" + num(W / 2) + "\" y=\"46\" text-anchor=\"middle\" fill=\"#555\">Per-GPU finish time in the " +
         escape(opt.step_label) + " (dashed: straggler" + (opt.bound_seconds > 0 ? "; dotted: fluid bound" : "") +
         ")</text>\n";

  // Panel 1: one bar chart per strategy, shared time axis.
  const auto [gscale, gunit] = time_unit(max_gpu);
  const auto [gmax, gstep] = nice_axis(max_gpu * gscale);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const double y0 = top + static_cast<double>(k) * (panel_h + gap), base = y0 + panel_h - 18;
    const double ph = panel_h - 30;
    const auto y_of = [&](double sec) { return base - ph * (sec * gscale) / gmax; };
    const char* color = palette[k % palette.size()];
    const double straggler = *std::max_element(s.gpu_seconds.begin(), s.gpu_seconds.end());
    out += "<g>\n<text x=\"" + num(left) + "\" y=\"" + num(y0 + 4) + "\" font-weight=\"bold\" fill=\"" + color + "\">" +
           escape(s.name) + "</text>\n";
    out += "<text x=\"" + num(W - right) + "\" y=\"" + num(y0 + 4) + "\" text-anchor=\"end\" fill=\"#333\">straggler " +
           num(straggler * gscale) + " " + gunit + "</text>\n";
    for (double t = 0; t <= gmax + 1e-9; t += gstep) {
      const double y = base - ph * t / gmax;
      out += "<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(y) +
             "\" stroke=\"#e5e5e5\"/>\n<text x=\"" + num(left - 6) + "\" y=\"" + num(y + 4) +
             "\" text-anchor=\"end\" fill=\"#555\" font-size=\"10\">" + num(t) + "</text>\n";
    }
    out += "<text x=\"14\" y=\"" + num(base - ph / 2) + "\" transform=\"rotate(-90 14 " + num(base - ph / 2) +
           ")\" text-anchor=\"middle\" fill=\"#555\" font-size=\"10\">" + gunit + "</text>\n";
    const double slot = plot_w / static_cast<double>(G), bw = std::max(1.0, slot * 0.7);
    for (std::size_t g = 0; g < G; ++g) {
      const double x = left + slot * static_cast<double>(g) + (slot - bw) / 2, y = y_of(s.gpu_seconds[g]);
      out += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(bw) + "\" height=\"" + num(base - y) +
             "\" fill=\"" + color + "\" fill-opacity=\"" + (s.gpu_seconds[g] == straggler ? "1" : "0.55") +
             "\"><title>" + escape(s.name) + ", GPU " + std::to_string(g) + ": " + num(s.gpu_seconds[g] * gscale) + " " +
             gunit + "</title></rect>\n";
      if (G <= 32)
        out += "<text x=\"" + num(x + bw / 2) + "\" y=\"" + num(base + 12) + "\" text-anchor=\"middle\" font-size=\"9\" fill=\"#555\">" +
               std::to_string(g) + "</text>\n";
    }
    out += "<line x1=\"" + num(left) + "\" y1=\"" + num(y_of(straggler)) + "\" x2=\"" + num(W - right) + "\" y2=\"" +
           num(y_of(straggler)) + "\" stroke=\"#000\" stroke-dasharray=\"6 4\"/>\n";
    if (opt.bound_seconds > 0)
      out += "<line x1=\"" + num(left) + "\" y1=\"" + num(y_of(opt.bound_seconds)) + "\" x2=\"" + num(W - right) + "\" y2=\"" +
             num(y_of(opt.bound_seconds)) + "\" stroke=\"#2ca02c\" stroke-width=\"1.5\" stroke-dasharray=\"2 3\"/>\n";
    out += "<line x1=\"" + num(left) + "\" y1=\"" + num(base) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(base) +
           "\" stroke=\"#333\"/>\n</g>\n";
  }
  out += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(top + bars_h + 4) +
         "\" text-anchor=\"middle\" fill=\"#555\">GPU</text>\n";

  // Panel 2: empirical CDF of step latency per strategy.
  const auto [lscale, lunit] = time_unit(max_lat);
  double lo = min_lat * lscale, hi = max_lat * lscale;
  if (hi - lo < 1e-12 * std::max(1.0, hi)) lo -= 0.5, hi += 0.5;
  const double pad = (hi - lo) * 0.05;
  lo = std::max(0.0, lo - pad), hi += pad;
  const double cb = cdf_top + cdf_h;
  const auto x_of = [&](double v) { return left + plot_w * (v * lscale - lo) / (hi - lo); };
  const auto yc = [&](double f) { return cb - cdf_h * f; };
  out += "<g>\n<text x=\"" + num(W / 2) + "\" y=\"" + num(cdf_top - 14) +
         "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">Distribution of " + escape(opt.latency_label) +
         " (fraction of steps at or below)</text>\n";
  for (int i = 0; i <= 4; ++i) {
    const double f = i / 4.0;
    out += "<line x1=\"" + num(left) + "\" y1=\"" + num(yc(f)) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(yc(f)) +
           "\" stroke=\"#e5e5e5\"/>\n<text x=\"" + num(left - 6) + "\" y=\"" + num(yc(f) + 4) +
           "\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">" + num(f) + "</text>\n";
  }
  for (int i = 0; i <= 6; ++i) {
    const double v = lo + (hi - lo) * i / 6.0, x = left + plot_w * i / 6.0;
    out += "<line x1=\"" + num(x) + "\" y1=\"" + num(cb) + "\" x2=\"" + num(x) + "\" y2=\"" + num(cb + 4) +
           "\" stroke=\"#333\"/>\n<text x=\"" + num(x) + "\" y=\"" + num(cb + 16) +
           "\" text-anchor=\"middle\" font-size=\"10\" fill=\"#555\">" + num(v) + "</text>\n";
  }
  out += "<line x1=\"" + num(left) + "\" y1=\"" + num(cb) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(cb) +
         "\" stroke=\"#333\"/>\n<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(cb + 34) +
         "\" text-anchor=\"middle\" fill=\"#555\">" + escape(opt.latency_label) + " (" + lunit + ")</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    auto v = series[k].latencies;
    std::sort(v.begin(), v.end());
    const char* color = palette[k % palette.size()];
    std::string pts = num(x_of(v.front())) + "," + num(yc(0));
    const double n = static_cast<double>(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      pts += " " + num(x_of(v[i])) + "," + num(yc(static_cast<double>(i) / n));
      pts += " " + num(x_of(v[i])) + "," + num(yc(static_cast<double>(i + 1) / n));
    }
    out += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    // Legend in a row under the axis, where it cannot hide a curve.
    const double lx = left + 215.0 * static_cast<double>(k % 4), ly = cb + 58 + 18 * static_cast<double>(k / 4);
    out += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" + num(lx + 24) + "\" y2=\"" + num(ly - 4) +
           "\" stroke=\"" + color + "\" stroke-width=\"3\"/>\n<text x=\"" + num(lx + 30) + "\" y=\"" + num(ly) + "\">" +
           escape(series[k].name) + "</text>\n";
  }
  out += "</g>\n</svg>\n";
  return out;
}

}  // namespace gem::report
