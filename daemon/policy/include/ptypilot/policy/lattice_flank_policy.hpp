// A training-free adaptive policy for crystals: the sparse grid, each position moved by at most
// one raster step to where the live reconstruction says it sees the most.
//
// Why the flank of a column: a focused, aberration-free probe centred on a symmetric atom
// column sees almost no linear phase contrast (the bright-field interference term vanishes by
// symmetry); about half an Angstrom off it sees the steepest phase gradient. An oracle that
// knows the columns and moves each sparse-grid position within one step to the node nearest
// 0.5 A from one gains +17.6 +- 3.8 % SSIM against the truth on mos2-paper-detector (the
// paper's detector geometry; README "The paper's detector geometry"), and keeps most of it
// with the columns known to 0.1 A. This policy finds the columns itself:
//
//   pattern: the sparse grid of the session's budget (sparse_grid_positions), handed out from
//     the FOV's centre outward (by Chebyshev ring, then by angle), so that the first
//     sub-sequence lights a compact patch in which a lattice shows in two directions, and
//     each later one extends it.
//   sub-sequence 0 (or no usable reconstruction): the first `count` positions of the pattern.
//   then, per call:
//     1. the columns seen so far: find_column_peaks on the reconstruction, within
//        lit_radius_A of a visited position (elsewhere the image is probe tails and noise);
//     2. the columns everywhere: the sites of fit_crystal_lattice over the FOV, or the peaks
//        alone where the peaks show no lattice (an amorphous specimen, too few seen);
//     3. the next `count` positions of the pattern not yet handed out (a pattern position is
//        handed out once a visited position lies within one step of it), each moved to the
//        raster node within one step (3 x 3) whose distance to the nearest column is closest
//        to flank_A; ties go to the smaller move, then to the lower raster index. A node
//        visited or already picked is never picked; a position with no column within
//        max_column_distance_A stays where it is.
//   Where the pattern's positions are fewer than 3 steps apart the 3 x 3 moves could meet,
//   so it hands out the pattern unmoved.
//
// It is deterministic. It assumes a crystal whose columns the reconstruction resolves; on an
// amorphous or vacuum-rich specimen it is the sparse grid moved by noise (README "Where
// adaptive scanning wins" reports each scenario).
//
// With a FlankMoveScorer (the learned flank scorer, models/ptypilot/flank_scorer.py, run by the
// LibTorch plugin) step 3's choice is the scorer's instead of the flank rule's: it scores the
// 3 x 3 candidates of every handed-out position from flank_features() around it, and each
// position goes to its best-scored candidate not visited or already picked (ties to the lower
// move index); the pattern and the hand-out stay the same.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/crystal_lattice.hpp"

namespace ptypilot {

struct LatticeFlankOptions {
  double flank_A = 0.5;
  // About the probe's reach at 33 mrad and 60 kV (0.9 A): what one position lights.
  double lit_radius_A = 1.0;
  // A column further than this from every candidate node is not the one the position would
  // see: about the distance between neighbouring columns.
  double max_column_distance_A = 1.5;
  ColumnPeakOptions peaks;
  LatticeFitOptions lattice;
};

// The candidates of a handed-out position, in the order of a scorer's nine scores:
// move m = 3 (dy + 1) + (dx + 1) is the node dy raster rows and dx columns away.
constexpr int kFlankMoves = 9;

// What a flank scorer sees around a position: kFlankFeatureChannels maps of P x P samples
// (P = 2 half_px + 1, on the object image's pixel, centred on the position, rows along y):
//   0: the phase of the live reconstruction (bilinear; beyond the image, its edge), divided by
//      the image's 99th percentile (numpy's linear rule), so that dose and specimen thickness
//      change the scale of no input;
//   1: how well the visited positions lit it: the sum over them of exp(-d^2 / (2 (0.5 A)^2)),
//      capped at 3;
//   2: the distance in A to the nearest column of estimated_columns(), capped at 2 A (2 A
//      everywhere when there are none): where the fitted lattice puts the flanks.
constexpr int kFlankFeatureChannels = 3;
constexpr double kFlankLitSigma_A = 0.5;
constexpr double kFlankLitCap = 3.0;
constexpr double kFlankColumnDistanceCap_A = 2.0;

// The scores of each handed-out position's nine candidates, from its features: the learned
// scorer runs a network; Python studies pass a function.
class FlankMoveScorer {
 public:
  virtual ~FlankMoveScorer() = default;
  // The half width of the features' patch, in object pixels.
  virtual int patch_half_px() const = 0;
  // features: [n, kFlankFeatureChannels, P, P] row-major for the n positions nodes_A; fills
  // scores with n x kFlankMoves values (higher is better). Not Ok ends the session.
  virtual Status score(std::span<const float> features, std::span<const Vec2> nodes_A,
                       std::vector<std::array<float, kFlankMoves>>* scores) = 0;
};

class LatticeFlankPolicy final : public Policy {
 public:
  explicit LatticeFlankPolicy(LatticeFlankOptions options = {},
                              std::shared_ptr<FlankMoveScorer> scorer = nullptr);
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return scorer_ ? "learned-flank" : "lattice-flank"; }

  // The pattern, in the order it is handed out (positions on raster nodes).
  static std::vector<Vec2> centre_out_sparse_grid(const ScanRaster& raster, int budget);

  // The columns propose() would move positions towards, in scan coordinates: lattice sites
  // over the FOV (and a margin of max_column_distance_A), or the peaks where no lattice was
  // found; empty without a usable reconstruction. `lattice_found` says which.
  std::vector<Vec2> estimated_columns(const PolicyContext& context, bool* lattice_found = nullptr) const;

  // Whether the call moves positions (step 3): not at sub-sequence 0, nor without a usable
  // reconstruction, nor where the pattern has no room to move; those calls hand out the pattern
  // unmoved.
  static bool moves_positions(const PolicyContext& context);

  // The pattern positions the call moves (step 3), in order; none where it moves none.
  std::vector<Vec2> positions_to_move(const PolicyContext& context) const;

  // flank_features() of each of `nodes_A`, [n, kFlankFeatureChannels, P, P], with the columns
  // of estimated_columns(context). The reconstruction must be usable.
  std::vector<float> move_features(const PolicyContext& context, std::span<const Vec2> nodes_A,
                                   int half_px) const;

 private:
  LatticeFlankOptions options_;
  std::shared_ptr<FlankMoveScorer> scorer_;
};

// The features (see kFlankFeatureChannels) of each of `nodes_A` appended to `out`, from the
// reconstruction `potential`, the visited positions and the columns, all in scan coordinates.
void flank_features(const Potential& potential, std::span<const Vec2> visited_A,
                    std::span<const Vec2> columns_A, std::span<const Vec2> nodes_A, int half_px,
                    std::vector<float>* out);

}  // namespace ptypilot
