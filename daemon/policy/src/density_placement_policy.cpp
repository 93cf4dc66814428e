#include "ptypilot/policy/density_placement_policy.hpp"

#include <algorithm>
#include <cmath>

#include "phase_at_nodes.hpp"
#include "raster_nodes.hpp"
#include "weighted_spacing.hpp"

namespace ptypilot {

using namespace raster_nodes;

DensityPlacementPolicy::DensityPlacementPolicy(std::unique_ptr<Policy> inner,
                                               MaterialDensityOptions options)
    : inner_(std::move(inner)), options_(options), name_(std::string(inner_->name()) + "+density") {}

void DensityPlacementPolicy::reset(std::uint64_t seed) { inner_->reset(seed); }

std::vector<double> DensityPlacementPolicy::density_weight(const ScanRaster& raster,
                                                           const std::vector<Vec2>& proposals) const {
  const std::size_t nodes = valid_raster(raster) ? node_count(raster) : 0;
  if (nodes == 0) return {};
  std::vector<double> density(nodes, 0.0);
  const double two_sigma2 = 2.0 * options_.smoothing_sigma_A * options_.smoothing_sigma_A;
  for (const Vec2& p : proposals) {
    if (!std::isfinite(p.y) || !std::isfinite(p.x)) continue;
    for (std::size_t n = 0; n < nodes; ++n) {
      const Vec2 q = node_position(raster, n);
      density[n] += std::exp(-((q.y - p.y) * (q.y - p.y) + (q.x - p.x) * (q.x - p.x)) / two_sigma2);
    }
  }
  std::vector<double> sorted = density;
  const std::size_t k = std::min(nodes - 1, static_cast<std::size_t>(std::floor(
                                                 options_.reference_quantile * double(nodes - 1))));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(k), sorted.end());
  const double scale = options_.saturation * sorted[k];
  std::vector<double> weight(nodes, 1.0);
  // No proposal near any node: nothing says where to look.
  if (!(scale > 0.0)) return weight;
  const double vacuum = options_.vacuum_weight;
  for (std::size_t n = 0; n < nodes; ++n)
    weight[n] = vacuum + (1.0 - vacuum) * std::min(density[n] / scale, 1.0);
  return weight;
}

Status DensityPlacementPolicy::propose(const PolicyContext& context, std::vector<Vec2>* positions) {
  positions->clear();
  std::vector<Vec2> proposals;
  if (Status s = inner_->propose(context, &proposals); !s.ok()) return s;
  const bool started = context.sub_sequence > 0 && !context.visited_A.empty() &&
                       usable_potential(context.potential) && valid_raster(context.raster);
  const bool any_finite = std::any_of(proposals.begin(), proposals.end(), [](const Vec2& p) {
    return std::isfinite(p.y) && std::isfinite(p.x);
  });
  if (!started || !any_finite || context.count <= 0) {
    *positions = std::move(proposals);
    return Status::Ok();
  }
  *positions = weighted_spacing_picks(context.raster, context.visited_A,
                                      density_weight(context.raster, proposals), context.count);
  return Status::Ok();
}

}  // namespace ptypilot
