// Assembler: groups the detector frames of a session into the sub-sequences that were issued,
// so that the reconstructor gets one complete sub-sequence at a time, in position order.
//
// Frames may arrive out of order within a sub-sequence (detector streams, retries); they are
// accepted and counted, never thrown away. A frame the assembler cannot place (other session,
// a sub-sequence never issued, an index past the issued list, a position other than the one
// issued) is refused with its reason and counted; the caller records such frames too (up to
// recorder.max_unissued_frames per session; the ingest pipeline), so a refusal here loses
// nothing on disk that the cap allows.
//
// One session at a time: expect() with another session id starts a new one and forgets the
// old one's sub-sequences (their frames were recorded as they arrived).
// Not thread-safe: the session's event loop owns it. health() may be read from anywhere.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/core/health.hpp"
#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

enum class FrameVerdict {
  kAccepted,
  kCompleted,  // accepted, and its sub-sequence is now complete
  kDuplicate,  // that sub-sequence and position index arrived before; not added again
  kUnknownSession,
  kUnknownSubSequence,
  kUnknownPosition,   // position_index past the issued list
  kPositionMismatch,  // header position differs from the issued one by > tolerance; not added
};

const char* to_string(FrameVerdict verdict);

// True for kAccepted and kCompleted: the frame is now held by the assembler.
inline bool accepted(FrameVerdict v) {
  return v == FrameVerdict::kAccepted || v == FrameVerdict::kCompleted;
}

struct AssemblerConfig {
  // How far the position in a frame header may lie from the issued one. The scan generator
  // reports where it put the beam; beyond this the frame belongs to some other command.
  double position_tolerance_A = 0.05;
};

class Assembler {
 public:
  // Throws std::invalid_argument for a negative or non-finite tolerance.
  explicit Assembler(AssemblerConfig config = {});

  // Registers an issued sub-sequence: frame k of it is expected with position_index k, header
  // position positions[k] and frame_index first_frame_index + k. Fails (kInvalidArgument) for an
  // empty list or a sub-sequence already registered in this session, and changes nothing then.
  Status expect(const std::string& session, std::uint32_t sub_sequence,
                std::uint64_t first_frame_index, std::span<const Vec2> positions);

  // Places one frame. Never throws on a bad frame; see FrameVerdict. A frame_index other than
  // the expected one is counted (frames_index_unexpected) but accepted: position_index is what
  // places the frame, frame_index is only a cross-check.
  FrameVerdict add(DetectorFrame frame);

  bool complete(std::uint32_t sub_sequence) const;
  // The frames of a complete sub-sequence, ordered by position_index, handed over once: the
  // sub-sequence stays known (later duplicates are still recognised) but holds no frames.
  // Empty when the sub-sequence is unknown, not complete, or already taken.
  std::vector<DetectorFrame> take_completed(std::uint32_t sub_sequence);
  // Position indices not yet received, ascending, for a timeout message. Empty when the
  // sub-sequence is unknown or complete.
  std::vector<std::uint32_t> missing(std::uint32_t sub_sequence) const;

  const std::string& session() const { return session_; }
  // Counters: frames_accepted, frames_out_of_order, frames_duplicate, frames_unknown_session,
  // frames_unknown_sub_sequence, frames_unknown_position, frames_position_mismatch,
  // frames_index_unexpected, sub_sequences_completed, sub_sequences_abandoned.
  const HealthCounters& health() const { return health_; }

 private:
  struct Pending {
    std::uint64_t first_frame_index = 0;
    std::vector<Vec2> positions;
    std::vector<DetectorFrame> frames;  // slot per position index
    std::vector<char> received;
    std::size_t received_count = 0;
    std::int64_t highest_index = -1;  // highest position_index received so far
    bool taken = false;
  };

  AssemblerConfig config_;
  std::string session_;
  std::map<std::uint32_t, Pending> pending_;
  HealthCounters health_;
};

}  // namespace ptypilot
