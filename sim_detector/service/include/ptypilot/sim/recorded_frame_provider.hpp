// RecordedFrameProvider: the FrameProvider of `ptypilot replay`. A position gets the frame of
// the nearest recorded position of a recorded data set (recorded_dataset.hpp); the distance goes
// into the frame's origin (and so into its header) and into the statistics.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "ptypilot/recorded/recorded_dataset.hpp"
#include "ptypilot/sim/frame_provider.hpp"

namespace ptypilot::sim {

// What a replay has served so far.
struct ReplayStatistics {
  std::uint64_t frames = 0;
  std::uint64_t exact = 0;              // recorded within 1e-6 A of the request
  std::uint64_t farther_than_step = 0;  // more than one scan step from any recorded position
  std::uint64_t unreadable = 0;         // recorded frames that could not be read (not sent)
  double max_distance_A = 0.0;
  double sum_distance_A = 0.0;
  double mean_distance_A() const {
    return frames ? sum_distance_A / static_cast<double>(frames) : 0.0;
  }
  nlohmann::json to_json() const;
};

class RecordedFrameProvider final : public FrameProvider {
 public:
  explicit RecordedFrameProvider(std::unique_ptr<RecordedDataset> dataset);

  const FrameFormat& format() const override { return format_; }
  // Finite, and inside the data set's raster extended by half a step on every side: nearer to
  // the recorded raster than to anything beyond it. A position outside says the session's
  // raster is not the data set's.
  Status check(Vec2 position_A) const override;
  Status frames(std::span<const Vec2> positions_A, std::span<float> frames,
                std::span<FrameOrigin> origins) override;

  const RecordedDataset& dataset() const { return *dataset_; }
  // Readable from any thread.
  ReplayStatistics statistics() const;

 private:
  std::unique_ptr<RecordedDataset> dataset_;
  NearestPositionIndex index_;
  FrameFormat format_;
  mutable std::mutex statistics_mutex_;
  ReplayStatistics statistics_;
  bool warned_far_ = false;
};

}  // namespace ptypilot::sim
