// What the policies built into the daemon share about the raster: its nodes, which of them
// the session has visited, and handing out a fixed list of positions in order. Internal to
// daemon/policy (not installed with the headers); the policies' contract is in
// baseline_policies.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot::raster_nodes {

bool valid_raster(const ScanRaster& raster);

// Ok for a valid raster; otherwise kInvalidArgument naming it.
Status check_raster(const ScanRaster& raster);

std::size_t node_count(const ScanRaster& raster);

// Node `index` in raster order (row by row).
Vec2 node_position(const ScanRaster& raster, std::size_t index);

// The raster node within half a step of `p` (Safety's default dedupe tolerance), or -1.
long nearest_node_within_half_step(const ScanRaster& raster, Vec2 p);

// One byte per raster node: 1 where a visited position lies within half a step.
std::vector<char> visited_mask(const ScanRaster& raster, std::span<const Vec2> visited);

// Appends unvisited nodes in raster order until `out` holds `count`; marks them in `taken`.
void fill_in_raster_order(const ScanRaster& raster, int count, std::vector<char>& taken,
                          std::vector<Vec2>& out);

// The session's budget as a pattern can be laid out for it: clamped to [1, nodes], because a
// missing or impossible budget should degrade to the nearest valid one, not fail the session.
int clamped_budget(const ScanRaster& raster, int total_positions);

// The next context.count entries of `pattern` (positions on raster nodes, in the order they
// are to be handed out) whose node is not visited; once the pattern is used up, the unvisited
// nodes in raster order. The raster must be valid (check_raster).
std::vector<Vec2> next_of_pattern(const PolicyContext& context, std::span<const Vec2> pattern);

// Uniform index in [0, n), n > 0, the same on every standard library (see the definition).
std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n);

}  // namespace ptypilot::raster_nodes
