// ScanFrameMap: where in the scan each frame of a session belongs, for detector streams whose
// frames carry only a frame number (DECTRIS: series id and frame or image id), not the session,
// sub-sequence and position that the native protocol carries in every frame.
//
// The session fills it as it issues each sub-sequence, before the scan driver sends it, so the
// place of a frame is always known by the time the beam can have produced that frame. The
// stream source reads it on the ingest thread: frame number k of the session's series is the
// session's frame_index k (frame indices count the issued positions from 0, in issue order).
//
// Thread-safe: one writer (the event loop) and one reader (ingest).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct ScanPlace {
  std::uint32_t sub_sequence = 0;
  std::uint32_t position_index = 0;  // index in its sub-sequence's position list
  Vec2 position_A;                   // the issued position
};

class ScanFrameMap {
 public:
  explicit ScanFrameMap(std::string session_id) : session_id_(std::move(session_id)) {}

  const std::string& session_id() const { return session_id_; }

  // Appends the frames of one issued sub-sequence. Its first frame index must continue the map
  // (== issued()): the session issues frame indices without gaps. kInvalidArgument otherwise,
  // and nothing changes.
  Status issue(std::uint32_t sub_sequence, std::uint64_t first_frame_index,
               std::span<const Vec2> positions);

  // The place of frame `frame_index`, or nullopt when no sub-sequence issued it (yet).
  std::optional<ScanPlace> find(std::uint64_t frame_index) const;
  std::uint64_t issued() const;

 private:
  const std::string session_id_;
  mutable std::mutex mutex_;
  std::vector<ScanPlace> places_;  // by frame index
};

}  // namespace ptypilot
