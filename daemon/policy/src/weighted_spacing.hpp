// Material-density's placement, shared with the density placement of another policy's proposals
// (density_placement_policy.hpp): where to put `count` positions given a weight per raster node.
// Internal to daemon/policy.
#pragma once

#include <span>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot::raster_nodes {

// `count` picks, greedily one at a time among the raster nodes not visited (visited_mask), each
// the node of the highest score(r) = weight(r) * d(r)^2: d(r) the distance from r to the nearest
// visited or already picked position (A), and at most 2 e + step, e its distance to the FOV's
// edge (the edge as a mirror). Fewer where the nodes run out. `weight` is per node in raster
// order. The raster must be valid (check_raster). Ties go to the lower raster index.
std::vector<Vec2> weighted_spacing_picks(const ScanRaster& raster, std::span<const Vec2> visited_A,
                                         const std::vector<double>& weight, int count);

}  // namespace ptypilot::raster_nodes
