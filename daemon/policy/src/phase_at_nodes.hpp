// The reconstruction as the policies that read it see it: at the raster nodes, smoothed over
// about a probe's reach. Internal to daemon/policy, shared by the heuristic and the
// material-density policy.
#pragma once

#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot::raster_nodes {

// A potential with an image and a finite, positive pixel and origin.
bool usable_potential(const Potential* potential);

// Min-max normalises the finite entries to [0, 1]; non-finite entries and a constant input
// become 0 (no preference).
void normalise_01(std::vector<double>& values);

// The phase at each raster node (raster order), Gaussian-smoothed (sigma_A) around the node's
// object point; NaN where no finite object pixel is within reach.
std::vector<double> smoothed_phase_at_nodes(const ScanRaster& raster, const Potential& potential,
                                            double sigma_A);

}  // namespace ptypilot::raster_nodes
