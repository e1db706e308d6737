// gem/io.hpp — gem's file readers and writers in one include: ESFT logs, long-CSV counts, gem's
// trace file, loads, speed profiles, the four placement formats (gem, EPLB, SGLang, TRT-LLM) and the
// SVG report. Needs nlohmann-json (gem::gem links it when CMake finds it); no CUDA header.
#pragma once

#include "gem/gem.hpp"

#include "gem/io/csv_counts.hpp"
#include "gem/io/esft.hpp"
#include "gem/io/loads.hpp"
#include "gem/io/placement_formats.hpp"
#include "gem/io/placement_tables.hpp"
#include "gem/io/trace_file.hpp"
#include "gem/report/svg_report.hpp"
#include "gem/speed/profile.hpp"
