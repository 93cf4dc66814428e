#include "weighted_spacing.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "raster_nodes.hpp"

namespace ptypilot::raster_nodes {

std::vector<Vec2> weighted_spacing_picks(const ScanRaster& raster, std::span<const Vec2> visited_A,
                                         const std::vector<double>& weight, int count) {
  std::vector<Vec2> picks;
  const std::size_t nodes = node_count(raster);
  std::vector<char> taken = visited_mask(raster, visited_A);
  // Squared distance (A^2) from each node to the nearest visited position, then picked one.
  std::vector<double> d2(nodes, std::numeric_limits<double>::infinity());
  auto lower_to = [&](Vec2 p) {
    for (std::size_t n = 0; n < nodes; ++n) {
      const Vec2 q = node_position(raster, n);
      d2[n] = std::min(d2[n], (q.y - p.y) * (q.y - p.y) + (q.x - p.x) * (q.x - p.x));
    }
  };
  for (const Vec2& v : visited_A)
    if (std::isfinite(v.y) && std::isfinite(v.x)) lower_to(v);
  // The field's edge acts as a mirror: a node at distance e from it is 2 e from its own image.
  // Without it the greedy picks crowd the edge, where nothing beyond counts as visited, and
  // leave the interior sparser than a grid (a farthest-point cover's known bias). One step is
  // added so that the edge nodes themselves stay reachable.
  const double height_A = (raster.rows - 1) * raster.step_A;
  const double width_A = (raster.cols - 1) * raster.step_A;
  for (std::size_t n = 0; n < nodes; ++n) {
    const Vec2 q = node_position(raster, n);
    const double edge = std::min({q.y, q.x, height_A - q.y, width_A - q.x});
    const double mirrored = 2 * edge + raster.step_A;
    d2[n] = std::min(d2[n], mirrored * mirrored);
  }

  while (static_cast<int>(picks.size()) < count) {
    long best = -1;
    double best_score = -1.0;
    for (std::size_t n = 0; n < nodes; ++n) {
      if (taken[n]) continue;
      const double score = weight[n] * d2[n];
      if (score > best_score) best_score = score, best = static_cast<long>(n);
    }
    if (best < 0) break;  // every node visited
    taken[static_cast<std::size_t>(best)] = 1;
    const Vec2 pick = node_position(raster, static_cast<std::size_t>(best));
    picks.push_back(pick);
    lower_to(pick);
  }
  return picks;
}

}  // namespace ptypilot::raster_nodes
