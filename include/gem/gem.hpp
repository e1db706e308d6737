// gem/gem.hpp — gem's host-only API in one include: core types, traces and load models, speed
// models, placement strategies and the evaluator. Plain C++20; never includes a CUDA header.
// File readers and writers (they need nlohmann-json) are in gem/io.hpp; CUDA helpers in gem/cuda/.
#pragma once

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/ids.hpp"
#include "gem/placement.hpp"
#include "gem/trace.hpp"
#include "gem/version.hpp"

#include "gem/trace/batching.hpp"
#include "gem/trace/stats.hpp"
#include "gem/trace/synthetic.hpp"

#include "gem/load/classes.hpp"
#include "gem/load/coactivation.hpp"
#include "gem/load/decayed_load.hpp"
#include "gem/load/empirical_load.hpp"
#include "gem/load/load_model.hpp"
#include "gem/load/mean_load.hpp"

#include "gem/speed/models.hpp"

#include "gem/place/baselines.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/exact.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/problem.hpp"
#include "gem/place/speed_proportional.hpp"

#include "gem/eval/evaluator.hpp"
