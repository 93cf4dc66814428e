// How far approximate Voronoi labels (Jump Flooding) are from the exact ones (reward.hpp), in
// the terms the agreement is stated in: the share of pixels that agree, and at a pixel that does
// not, how much farther the chosen position is than the nearest one.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "ptypilot/reward.hpp"

namespace ptypilot::testing {

struct LabelAgreement {
  long labelled = 0;     // pixels the exact version labels
  long disagreeing = 0;  // of those, labelled otherwise (or not at all)
  double worst_excess_px = 0.0;
  double disagreeing_phase_sum = 0.0;  // sum of |phase| over the disagreeing pixels
  double agreeing_share() const { return labelled ? 1.0 - double(disagreeing) / labelled : 1.0; }
};

inline double seed_distance_px(const ObjectGrid& g, const Vec2& p, int i, int j) {
  const double dy = i * g.pixel_A - (p.y + g.fov_origin_A.y);
  const double dx = j * g.pixel_A - (p.x + g.fov_origin_A.x);
  return std::sqrt(dy * dy + dx * dx) / g.pixel_A;
}

inline LabelAgreement compare_labels(const ObjectGrid& g, std::span<const Vec2> positions,
                                     const Image<int>& exact, const Image<int>& approx,
                                     const RealImage* phase = nullptr) {
  LabelAgreement a;
  for (int i = 0; i < g.rows; ++i) {
    for (int j = 0; j < g.cols; ++j) {
      const int e = exact(i, j), q = approx(i, j);
      if (e < 0) continue;
      ++a.labelled;
      if (q == e) continue;
      ++a.disagreeing;
      if (phase != nullptr) a.disagreeing_phase_sum += std::abs((*phase)(i, j));
      const double excess = q < 0 ? 1e9
                                  : seed_distance_px(g, positions[q], i, j) -
                                        seed_distance_px(g, positions[e], i, j);
      a.worst_excess_px = std::max(a.worst_excess_px, excess);
    }
  }
  return a;
}

}  // namespace ptypilot::testing
