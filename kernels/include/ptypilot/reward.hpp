// The paper's Voronoi reward: each scan position is credited with the reconstructed phase summed
// over its Voronoi cell within the scan field of view, divided by the number of positions P,
//   r^m = P^-1 sum_{r in Cell^m, r in FOV} V(r).
// This is the exact CPU reference. The paper builds the diagram with the Jump Flooding Algorithm
// (Rong & Tan 2006), which is approximate; voronoi_labels_jfa and voronoi_reward_jfa below are
// that, on the GPU, with the same distances and tie rule.
//
// Geometry (see scan_geometry.hpp): object pixel (i, j) is the point (i * pixel_A, j * pixel_A);
// scan position m with coordinates R_m (Angstrom, relative to the FOV origin) is the seed at the
// object point S_m = R_m + fov_origin_A. Distances are Euclidean, in Angstrom, evaluated exactly
// as this double-precision expression (which a reference must reproduce bit for bit to agree on
// ties):
//   dy = i * pixel_A - (R_m.y + fov_origin_A.y),  dx = j * pixel_A - (R_m.x + fov_origin_A.x),
//   d2 = dy * dy + dx * dx                        (no fused multiply-add)
// A pixel belongs to the position with the smallest d2; exact ties in d2 go to the lowest
// index, so of several coincident positions the first owns the cell and the others get empty
// cells (reward 0).
//
// The FOV, as in "r in FOV": pixel (i, j) lies in it when
//   -kFovTolerance_A <= i * pixel_A - fov_origin_A.y <= fov_height_A + kFovTolerance_A
// and likewise for j, pixel_A, fov_origin_A.x and fov_width_A. The same tolerance admits scan
// positions computed as k * step that overshoot the FOV edge by rounding (as place_window does).
#pragma once

#include <span>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {

inline constexpr double kFovTolerance_A = 1e-6;

// grid.rows x grid.cols labels: for each object pixel the index (into positions_A) of its nearest
// position, ties to the lowest index. With fov_only, pixels outside the FOV are -1; without, every
// pixel is labelled (and positions may then lie anywhere, inside the FOV or not).
// Exact: a uniform bucket grid over the positions with a conservative ring search gives the same
// labels as comparing every pixel with every position. About 0.5 ms for the 200 x 200 px
// mos2-paper grid and 250 positions (1.8 ms without fov_only), single-threaded.
// Throws std::invalid_argument for no positions, a non-finite position, or a grid with a negative
// shape or a non-positive or non-finite pixel size.
Image<int> voronoi_labels(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                          bool fov_only = true);

// The reward of every position: the sum (in double) of phase_rad over the FOV pixels of its
// Voronoi cell (labels as voronoi_labels with fov_only), divided by P = positions_A.size(). The
// rewards therefore add up to (sum of phase_rad over the FOV) / P.
// Throws std::invalid_argument if phase_rad's shape is not grid.rows x grid.cols, there are no
// positions, or a position is not finite or lies outside the FOV (more than kFovTolerance_A
// beyond [0, fov_height_A] x [0, fov_width_A]); the message names the position's index and
// coordinates.
std::vector<double> voronoi_reward(const RealImage& phase_rad, const ObjectGrid& grid,
                                   std::span<const Vec2> positions_A);

// The same two on the GPU with Jump Flooding (src/cuda/jfa_elements.hpp has the algorithm). A
// pixel gets the label of the nearest position that reached it, by the distance and tie rule
// above, so where Jump Flooding finds the true nearest position the label is the exact one.
// The agreement kernels/tests/test_jfa.cpp checks on the mos2-paper grid (random, sparse-grid,
// full-raster, clustered and edge layouts, FOV only and whole grid): at least 99.9 % of the
// pixels agree, and at a pixel that does not, the position chosen is at most
// kJfaDistanceSlack_px farther than the nearest one (measured: 2 of 396,487 pixels differ, by
// 0.08 px; over 13 million pixels of 270 layouts, 17 differ, by at most 0.08 px). A reward then
// differs from the exact one by at most the |phase| of the differing pixels, over P. The inputs
// and errors are those of the exact versions; without CUDA in the build or a device at run
// time both throw std::runtime_error naming why. Each call copies the positions and the phase
// to the device and allocates there, then runs 2 log2(FOV side) passes.
inline constexpr double kJfaDistanceSlack_px = 0.25;
Image<int> voronoi_labels_jfa(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                              bool fov_only = true);
std::vector<double> voronoi_reward_jfa(const RealImage& phase_rad, const ObjectGrid& grid,
                                       std::span<const Vec2> positions_A);

}  // namespace ptypilot
