// Another policy's proposals read as where to look, and the positions placed by material-density's
// greedy spacing (policy.placement "density").
//
// Why: the learned policy, taught by material-density, learns where its teacher puts positions
// (on and around the material) but not how it spaces them: it answers with pairs and gaps
// (README, "The flake's model"), and its reconstructions are no better than the sparse grid's.
// Here its K proposals become a density over the raster nodes, and the K positions are placed
// as material-density places them, so that the network decides where and the spacing rule how:
//
//   sub-sequence 0, nothing visited, or no usable reconstruction: the inner policy's answer
//     unchanged (its start: the sparse grid's or the survey's first sub-sequence);
//   then: the inner policy's `count` proposals p_k, and per raster node r
//     density(r) = sum_k exp(-|r - p_k|^2 / (2 sigma^2)),  sigma = smoothing_sigma_A,
//     m(r) = density(r) / (saturation * its reference_quantile over the nodes), clipped to
//     [0, 1], and w(r) = vacuum_weight + (1 - vacuum_weight) m(r): material-density's weight
//     with the proposals' density in place of the smoothed phase, and its constants
//     (MaterialDensityOptions: sigma 1 A, quantile 0.95, saturation 0.5, vacuum 0.05);
//   the positions: weighted_spacing_picks, material-density's greedy picks of w(r) d(r)^2.
// Proposals that are not finite are left out of the density; none left: the inner answer is
// returned as it was. The inner policy keeps its own state as if its proposals had been taken
// (the learned policy is fed its own last proposals, as in training).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/material_density_policy.hpp"

namespace ptypilot {

class DensityPlacementPolicy final : public Policy {
 public:
  explicit DensityPlacementPolicy(std::unique_ptr<Policy> inner, MaterialDensityOptions options = {});
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  // "<inner>+density", e.g. "torchscript+density".
  std::string_view name() const override { return name_; }

  // w(r) at every raster node (raster order) for these proposals, as propose() weighs them;
  // empty for a raster without nodes.
  std::vector<double> density_weight(const ScanRaster& raster, const std::vector<Vec2>& proposals) const;

 private:
  std::unique_ptr<Policy> inner_;
  MaterialDensityOptions options_;
  std::string name_;
};

}  // namespace ptypilot
