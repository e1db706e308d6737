// gem/place/strategies.hpp — every placement strategy in one include: linear, round_robin, eplb
// (and rebalance_experts), speed_proportional, gem_search, exact. Depends on the headers it includes.
#pragma once

#include "gem/place/baselines.hpp"
#include "gem/place/eplb.hpp"
#include "gem/place/exact.hpp"
#include "gem/place/gem_search.hpp"
#include "gem/place/problem.hpp"
#include "gem/place/speed_proportional.hpp"
