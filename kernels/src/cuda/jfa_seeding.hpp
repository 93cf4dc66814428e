// The host side of Jump Flooding that both the GPU path (cuda_reward.cpp) and the host test of
// the kernel bodies use: which rectangle is labelled, where the seeds go, and the pass schedule.
// See jfa_elements.hpp for the algorithm.
#pragma once

#include <span>
#include <vector>

#include "jfa_elements.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot::gpu {

// The object pixels labelled: the FOV's (fov_only) or the whole grid. rows or cols is 0 when
// no pixel lies in the FOV.
struct JfaRectangle {
  int row0 = 0;
  int col0 = 0;
  int rows = 0;
  int cols = 0;
};

JfaRectangle jfa_rectangle(const ObjectGrid& grid, bool fov_only);

// Seeds at R_m + fov_origin_A, as reward.hpp defines them.
std::vector<SeedPoint> jfa_seed_points(const ObjectGrid& grid, std::span<const Vec2> positions_A);

// The rectangle pixel (row * cols + col) of each seed: its nearest pixel, clamped into the
// rectangle. Of several seeds on one pixel the nearest keeps it (ties to the lowest index); the
// others move, in that order, to the nearest free pixel of the first ring around it that has one.
// -1 only when there are more seeds than pixels.
std::vector<int> place_jfa_seeds(std::span<const SeedPoint> seeds, const JfaRectangle& rect,
                                 double pixel_A);

// The steps of the passes: two rounds of k = 2^m, ..., 2, 1, with 2^m the largest power of two
// below the rectangle's longer side (jfa_elements.hpp says why two).
std::vector<int> jfa_schedule(const JfaRectangle& rect);

}  // namespace ptypilot::gpu
