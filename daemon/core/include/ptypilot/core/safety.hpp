// Safety: the one gate every scan position passes before the beam moves there. A policy is
// untrusted output (a learned one can emit anything), so Safety enforces the field of view, the
// minimum distance between exposures (no spot is dosed twice) and the session's dose budget.
// It is deliberately one concrete class, not a plug-in: there is exactly one set of rules.
//
// Rules, applied to each proposed position in order:
//   1. a non-finite position is dropped                               (report.non_finite)
//   2. it is clamped into [0, fov_height_A] x [0, fov_width_A]        (report.clamped)
//   3. with snap_step_A > 0, it is moved to the nearest raster node
//      (i * snap_step_A, j * snap_step_A) inside the FOV              (report.snapped)
//   4. it is dropped when within min_distance_A (distance <= min_distance_A) of a visited
//      position or of one approved earlier in the same call           (report.deduplicated)
//   5. it is dropped once the budget is spent                         (report.over_budget)
// Clamped and snapped positions are still approved; the drops are disjoint, so
//   approved + non_finite + deduplicated + over_budget == requested.
// Approved positions are appended to visited() in the order given.
//
// The daemon's session (ServeConfig::safety_config) and training (ptypilot_core.Safety, the
// Python binding of this class) both start from safety_config_for, so both run these rules with
// the same settings.
//
// Not thread-safe: one session's loop owns its Safety.
#pragma once

#include <span>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/image.hpp"

namespace ptypilot {

struct SafetyConfig {
  double fov_height_A = 0.0;
  double fov_width_A = 0.0;
  // Dedupe tolerance. 0 still drops exact repeats. safety_config_for() sets half a raster step:
  // on a raster that drops only repeats; off a raster it keeps probe centres apart.
  double min_distance_A = 0.0;
  int position_budget = 0;   // positions the whole session may expose
  double snap_step_A = 0.0;  // 0: no snapping; else positions are snapped to this raster
};

// The usual configuration: the raster's FOV, snapping to the raster, dedupe at half a step.
// The daemon's default (ServeConfig::safety_config) and what training runs.
SafetyConfig safety_config_for(const ScanRaster& raster, int position_budget);

// What check() did with one proposal (check's optional `outcomes`).
enum class SafetyVerdict { kApproved, kNonFinite, kDeduplicated, kOverBudget };

struct SafetyOutcome {
  SafetyVerdict verdict = SafetyVerdict::kApproved;
  Vec2 placed;  // the proposal after rules 2 and 3 (place()), whatever the verdict
};

struct SafetyReport {
  int requested = 0;
  int approved = 0;
  int non_finite = 0;    // dropped
  int clamped = 0;       // moved into the FOV, still approved unless dropped later
  int snapped = 0;       // moved onto the raster, still approved unless dropped later
  int deduplicated = 0;  // dropped
  int over_budget = 0;   // dropped
};

class Safety {
 public:
  // Throws std::invalid_argument for a config that is not finite, a negative size, distance,
  // step or budget: a startup error, unlike anything check() may be handed.
  explicit Safety(SafetyConfig config);

  // Applies the rules above and returns the approved positions, possibly fewer than proposed.
  // Never throws on bad proposals. `report` may be null; otherwise it is overwritten. So may
  // `outcomes`; otherwise it is overwritten with one entry per proposal, in order.
  std::vector<Vec2> check(std::span<const Vec2> proposed, SafetyReport* report,
                          std::vector<SafetyOutcome>* outcomes = nullptr);

  // Rules 2 and 3 alone: `p` clamped into the FOV and, with snap_step_A > 0, snapped to the
  // raster; what check() approves a finite proposal as unless it drops it. A NaN coordinate
  // stays NaN, an infinite one ends on the FOV's edge. Changes nothing.
  Vec2 place(Vec2 p) const;

  std::span<const Vec2> visited() const { return visited_; }
  int remaining() const { return config_.position_budget - static_cast<int>(visited_.size()); }
  const SafetyConfig& config() const { return config_; }

 private:
  Vec2 clamp_to_fov(Vec2 p) const;
  Vec2 snap(Vec2 p) const;
  // Rules 1 to 5 for one proposal: counts it in `r`, and remembers it when approved.
  SafetyOutcome check_one(Vec2 p, SafetyReport& r);
  bool near_visited(Vec2 p) const;
  void remember(Vec2 p);

  SafetyConfig config_;
  std::vector<Vec2> visited_;
  // Spatial hash of visited_ with cells of min_distance_A (1 A when that is 0), so a check
  // scans 3 x 3 cells instead of the whole history.
  double cell_A_ = 1.0;
  std::vector<std::vector<std::size_t>> buckets_;
  int bucket_rows_ = 0;
  int bucket_cols_ = 0;
};

}  // namespace ptypilot
