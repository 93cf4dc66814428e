#include "ptypilot/ingest/scan_frame_map.hpp"

namespace ptypilot {

Status ScanFrameMap::issue(std::uint32_t sub_sequence, std::uint64_t first_frame_index,
                           std::span<const Vec2> positions) {
  std::lock_guard lock(mutex_);
  if (first_frame_index != places_.size())
    return invalid_argument("sub-sequence " + std::to_string(sub_sequence) +
                            " starts at frame index " + std::to_string(first_frame_index) +
                            " but " + std::to_string(places_.size()) +
                            " frames were issued before it; frame indices must not skip");
  places_.reserve(places_.size() + positions.size());
  for (std::size_t i = 0; i < positions.size(); ++i)
    places_.push_back({sub_sequence, static_cast<std::uint32_t>(i), positions[i]});
  return Status::Ok();
}

std::optional<ScanPlace> ScanFrameMap::find(std::uint64_t frame_index) const {
  std::lock_guard lock(mutex_);
  if (frame_index >= places_.size()) return std::nullopt;
  return places_[frame_index];
}

std::uint64_t ScanFrameMap::issued() const {
  std::lock_guard lock(mutex_);
  return places_.size();
}

}  // namespace ptypilot
