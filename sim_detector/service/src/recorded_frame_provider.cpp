// RecordedFrameProvider, declared in ptypilot/sim/recorded_frame_provider.hpp.
#include "ptypilot/sim/recorded_frame_provider.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "ptypilot/wire/log.hpp"

namespace ptypilot::sim {

namespace {

constexpr double kExactA = 1e-6;

}  // namespace

nlohmann::json ReplayStatistics::to_json() const {
  return {{"frames_served", frames},
          {"frames_exact", exact},
          {"frames_farther_than_step", farther_than_step},
          {"frames_unreadable", unreadable},
          {"max_distance_A", max_distance_A},
          {"mean_distance_A", mean_distance_A()}};
}

RecordedFrameProvider::RecordedFrameProvider(std::unique_ptr<RecordedDataset> dataset)
    : dataset_(std::move(dataset)),
      index_(dataset_ ? dataset_->positions_A() : std::span<const Vec2>()) {
  if (!dataset_ || dataset_->frame_count() == 0)
    throw std::invalid_argument("RecordedFrameProvider: no recorded frames");
  const RecordedDatasetInfo& info = dataset_->info();
  format_.rows = info.frame_rows;
  format_.cols = info.frame_cols;
  format_.dtype = info.dtype;
  format_.electrons_per_frame = info.electrons_per_frame;
  format_.energy_keV = info.probe.energy_keV;
  format_.source = "recorded " + info.path.string() + " (" + info.format + ")";
}

Status RecordedFrameProvider::check(Vec2 p) const {
  if (!std::isfinite(p.y) || !std::isfinite(p.x)) return invalid_argument("position is not finite");
  const ScanRaster& r = dataset_->info().raster;
  const double margin = 0.5 * r.step_A;
  if (p.y < -margin || p.x < -margin || p.y > r.height_A() + margin || p.x > r.width_A() + margin) {
    char text[240];
    std::snprintf(text, sizeof text,
                  "(%.4f, %.4f) A is outside the recorded data set's %d x %d raster of %.4f A "
                  "steps (0..%.4f, 0..%.4f A); configure the session with its raster",
                  p.y, p.x, r.rows, r.cols, r.step_A, r.height_A(), r.width_A());
    return out_of_range(text);
  }
  return Status::Ok();
}

Status RecordedFrameProvider::frames(std::span<const Vec2> positions_A, std::span<float> frames,
                                     std::span<FrameOrigin> origins) {
  const std::size_t pixels = dataset_->frame_pixels();
  if (frames.size() < positions_A.size() * pixels || origins.size() < positions_A.size())
    return invalid_argument("RecordedFrameProvider: buffers too small for the batch");
  const double step = dataset_->info().raster.step_A;
  ReplayStatistics batch;
  for (std::size_t i = 0; i < positions_A.size(); ++i) {
    const NearestPositionIndex::Match match = index_.nearest(positions_A[i]);
    origins[i] = {match.index, match.distance_A, false};
    if (Status s = dataset_->read_frame(match.index, frames.subspan(i * pixels, pixels)); !s.ok()) {
      // One bad chunk must not take the rest of the command with it.
      origins[i].missing = true;
      ++batch.unreadable;
      log::error("replay_frame_unreadable", {{"position", {positions_A[i].y, positions_A[i].x}},
                                             {"recorded_frame", match.index},
                                             {"error", s.message()}});
      continue;
    }
    ++batch.frames;
    if (match.distance_A <= kExactA) ++batch.exact;
    if (match.distance_A > step) ++batch.farther_than_step;
    batch.max_distance_A = std::max(batch.max_distance_A, match.distance_A);
    batch.sum_distance_A += match.distance_A;
  }
  bool warn = false;
  {
    std::lock_guard lock(statistics_mutex_);
    statistics_.frames += batch.frames;
    statistics_.exact += batch.exact;
    statistics_.farther_than_step += batch.farther_than_step;
    statistics_.unreadable += batch.unreadable;
    statistics_.max_distance_A = std::max(statistics_.max_distance_A, batch.max_distance_A);
    statistics_.sum_distance_A += batch.sum_distance_A;
    warn = batch.farther_than_step > 0 && !warned_far_;
    warned_far_ = warned_far_ || warn;
  }
  if (warn)
    log::warn("replay_far_from_recorded",
              {{"max_distance_A", batch.max_distance_A},
               {"scan_step_A", step},
               {"note",
                "a requested position is more than a scan step from every recorded one; "
                "counted in frames_farther_than_step, logged once"}});
  return Status::Ok();
}

ReplayStatistics RecordedFrameProvider::statistics() const {
  std::lock_guard lock(statistics_mutex_);
  return statistics_;
}

}  // namespace ptypilot::sim
