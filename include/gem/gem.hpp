// gem/gem.hpp — the whole host-only API of gem (no CUDA header is included from here).
// Include this from any C++20 translation unit; CUDA helpers live under gem/cuda/.
#pragma once

#include "gem/cluster.hpp"
#include "gem/error.hpp"
#include "gem/ids.hpp"
#include "gem/placement.hpp"
#include "gem/trace.hpp"
#include "gem/version.hpp"
