#include "ptypilot/core/safety.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ptypilot {
namespace {

// Below this a move is floating-point noise (i * step recomputed), not a correction to report.
constexpr double kMoved_A = 1e-9;
// Caps the spatial hash at about a million cells whatever the tolerance.
constexpr double kMaxBucketsPerSide = 1024;

double snap_axis(double v, double step, double extent) {
  // The last node inside the FOV: with an extent that is not a multiple of the step, rounding
  // up could leave the FOV again.
  const double last = std::floor(extent / step + 1e-9);
  return std::clamp(std::round(v / step), 0.0, last) * step;
}

}  // namespace

SafetyConfig safety_config_for(const ScanRaster& raster, int position_budget) {
  SafetyConfig config;
  config.fov_height_A = raster.height_A();
  config.fov_width_A = raster.width_A();
  config.min_distance_A = 0.5 * raster.step_A;
  config.position_budget = position_budget;
  config.snap_step_A = raster.step_A;
  return config;
}

Safety::Safety(SafetyConfig config) : config_(config) {
  const auto ok = [](double v) { return std::isfinite(v) && v >= 0; };
  if (!ok(config_.fov_height_A) || !ok(config_.fov_width_A))
    throw std::invalid_argument("safety: the field of view must be finite and >= 0 A");
  if (!ok(config_.min_distance_A))
    throw std::invalid_argument("safety: min_distance_A must be finite and >= 0");
  if (!ok(config_.snap_step_A))
    throw std::invalid_argument("safety: snap_step_A must be finite and >= 0 (0: no snapping)");
  if (config_.position_budget < 0)
    throw std::invalid_argument("safety: position_budget must be >= 0");

  const double extent = std::max(config_.fov_height_A, config_.fov_width_A);
  // A cell no smaller than the tolerance, so that every neighbour within it is in the 3 x 3
  // cells around a position.
  cell_A_ = std::max({config_.min_distance_A, extent / kMaxBucketsPerSide, 1e-6});
  bucket_rows_ = static_cast<int>(std::floor(config_.fov_height_A / cell_A_)) + 1;
  bucket_cols_ = static_cast<int>(std::floor(config_.fov_width_A / cell_A_)) + 1;
  buckets_.resize(static_cast<std::size_t>(bucket_rows_) * bucket_cols_);
}

Vec2 Safety::clamp_to_fov(Vec2 p) const {
  return {std::clamp(p.y, 0.0, config_.fov_height_A), std::clamp(p.x, 0.0, config_.fov_width_A)};
}

Vec2 Safety::snap(Vec2 p) const {
  if (config_.snap_step_A <= 0) return p;
  return {snap_axis(p.y, config_.snap_step_A, config_.fov_height_A),
          snap_axis(p.x, config_.snap_step_A, config_.fov_width_A)};
}

Vec2 Safety::place(Vec2 p) const { return snap(clamp_to_fov(p)); }

bool Safety::near_visited(Vec2 p) const {
  // p is inside the FOV here, so its cell is inside the grid.
  const int bi = std::min(static_cast<int>(p.y / cell_A_), bucket_rows_ - 1);
  const int bj = std::min(static_cast<int>(p.x / cell_A_), bucket_cols_ - 1);
  for (int i = std::max(bi - 1, 0); i <= std::min(bi + 1, bucket_rows_ - 1); ++i)
    for (int j = std::max(bj - 1, 0); j <= std::min(bj + 1, bucket_cols_ - 1); ++j)
      for (std::size_t k : buckets_[static_cast<std::size_t>(i) * bucket_cols_ + j]) {
        const Vec2 q = visited_[k];
        if (std::hypot(p.y - q.y, p.x - q.x) <= config_.min_distance_A) return true;
      }
  return false;
}

void Safety::remember(Vec2 p) {
  const int bi = std::min(static_cast<int>(p.y / cell_A_), bucket_rows_ - 1);
  const int bj = std::min(static_cast<int>(p.x / cell_A_), bucket_cols_ - 1);
  buckets_[static_cast<std::size_t>(bi) * bucket_cols_ + bj].push_back(visited_.size());
  visited_.push_back(p);
}

SafetyOutcome Safety::check_one(Vec2 p, SafetyReport& r) {
  const Vec2 inside = clamp_to_fov(p);
  SafetyOutcome o{SafetyVerdict::kApproved, snap(inside)};
  if (!std::isfinite(p.y) || !std::isfinite(p.x)) {
    ++r.non_finite;
    o.verdict = SafetyVerdict::kNonFinite;
    return o;
  }
  if (inside.y != p.y || inside.x != p.x) ++r.clamped;
  if (std::abs(o.placed.y - inside.y) > kMoved_A || std::abs(o.placed.x - inside.x) > kMoved_A)
    ++r.snapped;
  // Approved positions of this call are in visited_ already, so one lookup covers both.
  if (near_visited(o.placed)) {
    ++r.deduplicated;
    o.verdict = SafetyVerdict::kDeduplicated;
  } else if (remaining() <= 0) {
    ++r.over_budget;
    o.verdict = SafetyVerdict::kOverBudget;
  } else {
    remember(o.placed);
  }
  return o;
}

std::vector<Vec2> Safety::check(std::span<const Vec2> proposed, SafetyReport* report,
                                std::vector<SafetyOutcome>* outcomes) {
  SafetyReport r;
  r.requested = static_cast<int>(proposed.size());
  std::vector<Vec2> approved;
  approved.reserve(std::min<std::size_t>(proposed.size(), std::max(remaining(), 0)));
  if (outcomes != nullptr) outcomes->clear();
  for (const Vec2 p : proposed) {
    const SafetyOutcome o = check_one(p, r);
    if (o.verdict == SafetyVerdict::kApproved) approved.push_back(o.placed);
    if (outcomes != nullptr) outcomes->push_back(o);
  }
  r.approved = static_cast<int>(approved.size());
  if (report != nullptr) *report = r;
  return approved;
}

}  // namespace ptypilot
