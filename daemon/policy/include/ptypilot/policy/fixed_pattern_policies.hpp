// Fixed scan patterns other than the paper's sparse grid: the baselines an adaptive policy has to
// beat. A regular sparse grid is a weak one (on MoS2, jittering it by one raster step gained as
// much as an oracle that knows the atoms), so a gain is only a gain over the best of these at the
// same number of positions.
//
// Every pattern:
//   - has exactly `count` positions (the session's budget), on distinct raster nodes inside the
//     FOV. The continuous pattern is placed on the raster node nearest to each point, in the
//     pattern's own order, or, when an earlier point took that node, on the nearest free one
//     (ties to the lower raster index). On nodes because Safety snaps to the raster by default
//     (safety.snap_to_raster) and dedupes within half a step: two points on one node would lose
//     one position of the budget. The move is at most half a step per axis (0.1 A on
//     mos2-paper) unless a node was taken;
//   - is laid out in the domain [-0.5, rows - 0.5] x [-0.5, cols - 0.5] (raster steps), in
//     which every node owns a unit square, as sparse_grid_positions spaces its grid;
//   - is handed out in the sparse grid's order: by the row of the sparse grid whose y is
//     nearest, then by x (then y). So each sub-sequence covers the same band of the FOV as the
//     sparse grid's sub-sequence does, and the daemon's online estimate, which depends on the
//     order of the frames (README, "The learned policy", Scoring), compares the patterns, not
//     their orders. (None of them, the sparse grid included, covers the whole FOV at every
//     stage: the first sub-sequence is the top band.)
//   - depends only on the raster, the budget and the seed: std::mt19937_64 seeded by reset(seed)
//     (the session's `seed`), turned into numbers by our own mapping, since the standard
//     distributions may differ between library implementations.
//
// FixedPatternPolicy hands the pattern out as SparseGridPolicy hands out the sparse grid: the
// next `count` positions whose node is not visited (within half a step), so a position Safety
// dropped is proposed again; past the budget, the unvisited nodes in raster order.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot {

enum class FixedPattern {
  // The sparse grid of the budget (sparse_grid_positions) with every position moved by a
  // uniform offset in [-s_y / 4, s_y / 4] x [-s_x / 4, s_x / 4], s_y = rows / (rows of the
  // sparse grid) and s_x = cols / (positions in its row) the grid's spacings in raster steps,
  // then clipped to the FOV. A quarter, not the half of classic jittered sampling (one uniform
  // point per cell): with half, two neighbours can meet on one node or nearly so, which loses a
  // position to Safety's dedupe and leaves a hole in the overlap; with a quarter, neighbours stay
  // at least half a spacing (less the placement's half step) apart. That still moves a position
  // by up to 1.6 raster steps on mos2-paper (250 of 100 x 100), more than the one step whose
  // gain motivated this baseline. Handed out in the sparse grid's own order.
  kJitteredGrid,
  // A Fermat (sunflower) spiral about the FOV's centre: point k at radius c sqrt(k + 0.5) and
  // angle k * pi (3 - sqrt 5) + a random rotation, c chosen for `count` points per FOV area.
  // The first `count` points inside the domain are kept. Where the domain holds fewer than
  // `count` once the spiral's disc covers it (the edges cut the count either way by a few), the
  // spiral is laid out again, denser by the shortfall. Only the rotation is random.
  kFermatSpiral,
  // The first `count` points of the 2-D Sobol sequence (the second dimension's direction numbers
  // from the primitive polynomial x + 1), each dimension Owen-scrambled with its own
  // seed (Burley 2020's hash-based nested uniform scramble), scaled to the domain. Scrambling
  // keeps the net property: with count = 2^m, every elementary box of area 2^-m holds exactly
  // one point. Its nearest neighbours can be closer than a grid's (about 0.1 to 0.3 of the
  // sparse grid's spacing at 250 positions): low discrepancy, not a minimum distance.
  kSobol,
};

// "jittered-grid", "fermat-spiral", "sobol": the policy's name, and its policy.kind.
std::string_view fixed_pattern_name(FixedPattern pattern);
std::optional<FixedPattern> fixed_pattern_named(std::string_view name);

// The pattern as described above: `count` positions (A, FOV coordinates) on distinct raster
// nodes, in the order they are handed out. Throws std::invalid_argument unless the raster is
// valid and count is in [1, rows * cols].
std::vector<Vec2> fixed_pattern_positions(FixedPattern pattern, int count,
                                          const ScanRaster& raster, std::uint64_t seed);

class FixedPatternPolicy final : public Policy {
 public:
  explicit FixedPatternPolicy(FixedPattern pattern, std::uint64_t seed = 0);
  void reset(std::uint64_t seed) override;
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override;
  std::string_view name() const override { return fixed_pattern_name(pattern_); }

 private:
  FixedPattern pattern_;
  std::uint64_t seed_;
  // The pattern of the last call's raster and budget: a session asks for the same every time.
  ScanRaster laid_out_for_;
  int laid_out_budget_ = 0;
  std::vector<Vec2> laid_out_;
};

}  // namespace ptypilot
