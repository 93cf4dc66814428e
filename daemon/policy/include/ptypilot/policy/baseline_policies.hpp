// The training-free policies: the baselines the learned policy is compared against (raster,
// sparse grid, random; the other fixed patterns are in fixed_pattern_policies.hpp) and a
// heuristic that reads the current reconstruction.
//
// All of them propose raster positions only, and all derive their progress from the context
// rather than from what they returned before: a raster position counts as visited when some
// position of context.visited_A lies within half a raster step of it (the tolerance Safety
// dedupes with by default). So a position that Safety dropped is proposed again, and a policy
// that is asked twice with the same context answers twice the same.
//
// Contract shared by all: never more than context.count positions, no position twice in one
// answer, no visited position; fewer than count only when the raster has no unvisited position
// left, and none when count <= 0. An invalid raster (rows, cols or step not positive) is the
// one failure: kInvalidArgument with the raster in the message, since it means the session was
// misconfigured, not that the scan is finished.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot {

namespace heuristic_detail {
struct SparseCells;  // the sparse grid's cells on the raster (baseline_policies.cpp)
}

// The full grid in raster order (row by row): each call returns the next `count` unvisited
// raster positions. With a budget below rows * cols it covers only the top rows of the FOV; it
// is the reference for what a conventional scan would have given with the same dose.
class RasterPolicy final : public Policy {
 public:
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "raster"; }
};

// The paper's baseline: the session's whole budget, context.total_positions, spread as one
// sparse grid (sparse_grid_positions), handed out in that grid's own order (row by row), the
// next `count` unvisited ones per call. Its first sub-sequence is therefore exactly the first
// sub-sequence the adaptive policies start from, and over a whole session it yields exactly
// sparse_grid_positions(total_positions, ...). If asked for more than the budget, it continues
// with the unvisited raster positions in raster order.
class SparseGridPolicy final : public Policy {
 public:
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "sparse-grid"; }
};

// A survey of the whole FOV in one sub-sequence: the sparse grid of `count` positions
// (sparse_grid_positions(count, ...), not of the budget), unvisited ones only, then unvisited
// nodes in raster order. How a policy that needs to see the whole specimen before it chooses
// begins: material-density's first sub-sequence, and a learned model's whose schema says
// "first_sub_sequence": "survey" (models/POLICY_CONTRACT.md). SparseGridPolicy's first
// sub-sequence is instead the top band of the FOV.
class SurveyPolicy final : public Policy {
 public:
  void reset(std::uint64_t) override {}
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "survey"; }
};

// Uniformly random unvisited raster positions, without repetition. std::mt19937_64 seeded by
// reset(seed) with our own mapping to an index (rejection sampling), because the standard
// distributions are allowed to differ between library implementations and a recorded session
// must be reproducible anywhere from its seed. The generator state runs on across the calls
// of a session.
class RandomPolicy final : public Policy {
 public:
  explicit RandomPolicy(std::uint64_t seed = 0);
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "random"; }

 private:
  std::mt19937_64 rng_;
};

struct HeuristicPolicyOptions {
  // Gaussian smoothing of the phase before it is sampled at a raster position: about the probe
  // radius, so a position's score is what its probe would see, not one noisy pixel.
  double smoothing_sigma_A = 0.5;
  // Weight of the dark-field term against the phase term (which spans [0, 1]). Below 1 because
  // the phase is what the paper's reward (summed phase per Voronoi cell) measures; the
  // dark-field fraction is a model-free hint that helps most while the reconstruction is poor.
  double dark_field_weight = 0.5;
  // Reach of a visited position's dark-field fraction: a Gaussian of this sigma (at least one
  // raster step, so that the direct neighbours always feel it).
  double dark_field_sigma_A = 0.5;
  // Minimum distance between two picks of one sub-sequence, in raster steps. 1.5 excludes the
  // 8 neighbours, so picks do not clump on the single brightest spot. A pick that stays on its
  // sparse-grid position is exempt (the sparse grid itself may be denser than this).
  double min_separation_steps = 1.5;
  // Size of the square a pick may move within, around its sparse-grid position: half-width =
  // cell_fraction * (distance to the nearest other sparse-grid position) / 2, and never beyond
  // the position's Voronoi cell. 1 lets the pick roam its whole cell; smaller keeps it nearer
  // the grid, trading how far it can chase an atom against the grid's even overlap. Needed
  // because the heuristic now keeps the sparse grid's coverage and only moves within cells.
  double cell_fraction = 1.0;
  // How much better (in score units: the phase spans [0, 1]) a node must score than the cell's
  // sparse-grid position to draw the pick off it. Needed so that a cell the reconstruction
  // knows nothing about (flat, or only noise at the edge of what was scanned) keeps the sparse
  // grid's position instead of following rounding noise. 0.4 only lets a strong, clearly
  // reconstructed atom move a pick: on the mos2-paper demo (250 of 10,000, 5 x 50) every
  // lower threshold moved more picks and lost SSIM against the full raster (0.05: 107 moved,
  // 0.401; 0.2: 24 moved, 0.413; 0.4: 1 moved, 0.428-0.432 over four runs, the closed loop
  // not being bit-reproducible; sparse grid 0.427), presumably because a moved probe leaves
  // the overlap uneven. Specimen seed 2 at 0.4: 0.405 against the sparse grid's 0.409, so no
  // gain over the sparse grid is established yet.
  double min_cell_gain = 0.4;
};

// Training-free adaptive policy (the paper's suggested alternative to the learned one). It
// keeps the coverage of the sparse grid and only chooses where within each sparse-grid cell the
// beam goes, because a reconstruction that so far covers only part of the FOV says nothing
// about the rest: scoring the whole raster piled every later sub-sequence onto the atoms of the
// first strip and left most of the FOV unscanned.
//
// Cells: the sparse grid of the session's budget, sparse_grid_positions(total_positions, ...),
// the same grid SparseGridPolicy hands out. Every raster node belongs to its nearest sparse-grid
// position (ties to the lower index in the grid's order), so the cells partition the raster.
// A cell is done when some visited position lies on one of its nodes (within half a step).
// Each call takes the next `count` cells that are not done, in the grid's order (so, in a
// closed loop, exactly the sparse-grid positions SparseGridPolicy would hand out), and puts
// one pick in each, in that order:
//   candidates: the cell's unvisited nodes within cell_fraction * d_nn / 2 (square, per axis)
//               of its sparse-grid position, d_nn the distance to the nearest other one;
//   score:      phase + dark_field_weight * dark_field, as scores() returns it:
//     phase:      the current phase, Gaussian-smoothed, sampled at the node's object point
//                 (position + fov_origin_A) / pixel_A, min-max normalised to [0, 1] over all
//                 raster positions of the FOV;
//     dark_field: max over visited positions v of d(v) * exp(-|r - v|^2 / (2 sigma^2)), with
//                 d(v) the dark_field_fraction min-max normalised to [0, 1] over the visited;
//   pick:       the best-scoring candidate at least min_separation_steps from the earlier picks
//               of the call, if it beats the sparse-grid position by at least min_cell_gain;
//               otherwise the sparse-grid position itself (flat or uninformative cell).
// Ties go to the candidate nearer the sparse-grid position, then to the lower raster index, so
// the policy is deterministic. Once every cell is done (asked beyond the budget) the rest is
// the best-scoring unvisited nodes, separated where possible, else the best regardless (raster
// order without a usable potential).
// The first sub-sequence (sub_sequence == 0) and any call without a usable potential put every
// pick on its sparse-grid position: the first sub-sequence is exactly SparseGridPolicy's, as in
// the paper.
//
// Cost: propose() runs in the closed loop's decision latency. The smoothing is separable (one
// 1-D pass along x, then one along y, both only where the raster nodes need them), and the
// cells, which depend only on the raster and the budget, are kept from call to call until
// reset().
class HeuristicPolicy final : public Policy {
 public:
  explicit HeuristicPolicy(HeuristicPolicyOptions options = {});
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return "heuristic"; }

  // The score of every raster position (rows * cols, raster order) as propose() computes it,
  // for tests and for showing the operator why the policy went where it went. Empty when the
  // context has no usable potential.
  std::vector<double> scores(const PolicyContext& context) const;

 private:
  // The cells of the last call's raster and budget (shared so that the policy stays copyable).
  const heuristic_detail::SparseCells& cells_for(const ScanRaster& raster, int total_positions);

  HeuristicPolicyOptions options_;
  std::shared_ptr<const heuristic_detail::SparseCells> cells_;
};

}  // namespace ptypilot
