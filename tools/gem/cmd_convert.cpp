// `gem convert`: between placement formats (gem, eplb, sglang, trtllm) and between trace formats
// (ESFT logs, long CSV counts, gem-trace).
#include <fstream>
#include <iostream>

#include "cli.hpp"
#include "gem/io/csv_counts.hpp"
#include "gem/io/placement_formats.hpp"
#include "gem/io/trace_file.hpp"

namespace gem::cli {

namespace {

struct convert_options {
  std::string input{};
  std::string output{};
  std::string from{};
  std::string to{};
  std::int32_t gpus = 0, nodes = 0, experts = 0;
  std::int32_t first_layer = -1;
  trace_options trace{};
};

void run_convert(const convert_options& o) {
  namespace fs = std::filesystem;
  if (!o.trace.path.empty()) {
    if (!o.input.empty()) throw config_error("convert: give either a placement file or --trace, not both");
    const auto t = load_trace(o.trace);
    std::string to = o.to.empty() ? (fs::path(o.output).extension() == ".csv" ? "csv" : "gem") : o.to;
    if (to != "gem" && to != "csv") throw config_error("--to " + to + ": traces convert to gem (gem-trace) or csv");
    std::ofstream out(o.output, std::ios::binary | std::ios::trunc);
    if (!out) throw io_error("cannot open " + o.output + " for writing");
    if (to == "gem")
      write_trace(out, t.trace);
    else
      write_csv_counts(out, t.trace, t.source_layers);
    out.close();
    if (!out) throw io_error("cannot write " + o.output);
    std::cout << "wrote " << o.output << " (" << (to == "gem" ? "gem-trace" : "CSV counts") << "): " << t.description << "\n";
    if (to == "gem" && !t.source_layers.empty())
      std::cout << "note: gem-trace numbers layers 0.." << t.trace.num_layers() - 1 << " (source layers " << t.source_layers.front()
                << ".." << t.source_layers.back() << ")\n";
    return;
  }
  if (o.input.empty()) throw config_error("convert: give a placement file to convert, or --trace");
  const io::placement_read_options ro{.num_gpus = o.gpus, .num_nodes = o.nodes, .num_experts = o.experts};
  const auto in_text = io::detail_formats::slurp(o.input);
  const auto from = o.from.empty() ? io::detect_placement_format(in_text, o.input) : io::placement_format_from_name(o.from);
  auto doc = io::read_placement_file(o.input, from, ro);
  io::placement_format to;
  if (!o.to.empty()) {
    to = io::placement_format_from_name(o.to);
  } else {
    const auto ext = fs::path(o.output).extension();
    if (ext == ".yaml" || ext == ".yml")
      to = io::placement_format::trtllm;
    else
      throw config_error("convert: say the output format with --to gem|eplb|sglang|trtllm");
  }
  if (o.first_layer >= 0) {
    doc.metadata.layer_ids.clear();
    for (std::int32_t l = 0; l < doc.placement.num_layers(); ++l) doc.metadata.layer_ids.push_back(o.first_layer + l);
  }
  for (const auto& loss : io::format_losses(doc.placement, doc.metadata, to)) std::cerr << "gem: note: " << io::format_name(to) << ": " << loss << "\n";
  const auto files = io::write_placement_file(o.output, to, doc.placement, doc.metadata);
  std::cout << "read " << o.input << " (" << io::format_name(from) << "): " << doc.placement.num_layers() << " layers, "
            << doc.placement.num_experts() << " experts, " << doc.placement.num_gpus() << " GPUs\n";
  for (const auto& f : files) std::cout << "wrote " << f.string() << " (" << io::format_name(to) << ")\n";
}

}  // namespace

void register_convert(CLI::App& app) {
  auto o = std::make_shared<convert_options>();
  auto* sub = app.add_subcommand("convert", "Convert a placement between engine formats, or a trace between trace formats");
  sub->footer(
      "Examples:\n"
      "  gem convert placement.json --to trtllm -o moe_load_balancer.yaml --first-layer 1\n"
      "  gem convert vector.json --from eplb --gpus 8 --to sglang -o expert_location.json\n"
      "  gem convert --trace ../shared/traces/esft-deepseek-v2-lite/results/expert_scores/intent --batch 256 -o intent.trace\n"
      "Placement formats: gem (everything), eplb ({phy2log, log2phy, logcnt}), sglang (physical_to_logical_map\n"
      "+ <stem>.lp.json with log2phy_prob), trtllm (YAML). The input format is detected from the content.");
  sub->add_option("input", o->input, "Placement file to convert (gem, eplb, sglang or trtllm)");
  sub->add_option("-o,--output", o->output, "File to write")->required();
  sub->add_option("--from", o->from, "Input placement format (default: detected)")->check(CLI::IsMember({"gem", "eplb", "sglang", "trtllm"}));
  sub->add_option("--to", o->to, "Output format: gem, eplb, sglang, trtllm (placements); gem, csv (traces)")
      ->check(CLI::IsMember({"gem", "eplb", "sglang", "trtllm", "csv"}));
  sub->add_option("--gpus", o->gpus, "GPUs (EP size), for inputs that do not carry it (eplb; sglang without its .lp.json)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--nodes", o->nodes, "Nodes, for inputs that do not carry it")->check(CLI::PositiveNumber);
  sub->add_option("--num-experts", o->experts, "Experts per layer (default: from the file)")->check(CLI::PositiveNumber);
  sub->add_option("--first-layer", o->first_layer, "Model layer index of the first MoE layer (TRT-LLM keys; DeepSeek-V3: 3)")
      ->check(CLI::NonNegativeNumber);
  add_trace_options(*sub, o->trace, false);
  sub->callback([o] { run_convert(*o); });
}

}  // namespace gem::cli
