// What the live page (http_server.hpp, daemon/app/live/) is sent: server-sent events, each a
// full state rather than a change, so that a viewer that missed some (a slow one, or one that
// reconnected) is right again with the next.
//
//   event: status          the state, the session's counts and dose, every counter; sent when
//                          any of it changed, checked every 100 ms while someone watches
//   event: reconstruction  the phase over the field of view, every completed sub-sequence's
//                          approved positions and timings, and the positions just issued with
//                          what Safety changed; sent after each completed sub-sequence
//
// The JSON of each is in README "The live page". The session worker makes the LiveSubSequence
// copies (a few hundred positions, once per sub-sequence); everything else, the encoding
// included, happens on the HTTP server's thread, so that a viewer never costs the loop more.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ptypilot/core/session.hpp"

namespace ptypilot {

// A proposal Safety dropped or moved into the field of view. Snapping onto the raster is normal
// operation (every off-raster proposal is snapped), so it is not listed.
struct SafetyChange {
  std::optional<Vec2> proposed_A;  // none when it was not finite
  std::optional<Vec2> placed_A;    // where it went, or would have gone; none when not finite
  const char* verdict = "";        // clamped, non_finite, deduplicated, over_budget
};

struct LiveSubSequence {
  std::uint32_t index = 0;
  std::vector<Vec2> approved_A;
  std::vector<SafetyChange> changed;  // filled for the sub-sequence in flight
  // Once completed:
  LoopLatency latency;
  std::uint64_t frames_received = 0;  // the session's frames when it completed
  std::uint64_t frames_recorded = 0;  // the recorder's count when the worker reported it (it
                                      // may hold the first frames of the next sub-sequence)
  double dose_e_per_A2 = 0.0;
};

// On the session worker.
LiveSubSequence live_issued(const Session& session, std::uint32_t k);
LiveSubSequence live_completed(const Session& session, const SubSequenceReport& report,
                               std::uint64_t frames_recorded);

struct LiveStatus {
  std::string state;
  std::string error;
  std::string session_id;
  std::uint32_t sub_sequences = 0;
  std::uint64_t positions_issued = 0;
  int position_budget = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t frames_recorded = 0;
  double dose_e_per_A2 = 0.0;
  std::optional<std::uint64_t> disk_free_bytes;
  std::map<std::string, std::uint64_t> counters;
};

struct LiveReconstruction {
  std::string session_id;
  std::uint32_t sub_sequences = 0;
  std::shared_ptr<const Potential> potential;  // may be null before the first
  std::vector<std::shared_ptr<const LiveSubSequence>> completed;
  std::shared_ptr<const LiveSubSequence> next;  // null when nothing is in flight
};

// The complete events, "event: NAME\ndata: JSON\n\n".
std::string status_event(const LiveStatus& status);
std::string reconstruction_event(const LiveReconstruction& reconstruction);

// reconstruction_event, made again after every change of the session: the JSON of a completed
// sub-sequence is made once, since it never changes, so that an event costs what is new in it
// (the image, the sub-sequence in flight) rather than the whole session's positions again.
class ReconstructionEvents {
 public:
  std::string event(const LiveReconstruction& reconstruction);

 private:
  std::vector<std::pair<std::shared_ptr<const LiveSubSequence>, std::string>> completed_;
};

// The phase over the scan's field of view, one byte a pixel: v means min + v / 255 (max - min).
struct QuantizedPhase {
  int rows = 0;
  int cols = 0;
  double pixel_A = 0.0;
  float min_rad = 0.0f;
  float max_rad = 0.0f;
  std::vector<std::uint8_t> data;
};
QuantizedPhase quantize_field_of_view(const Potential& potential);

std::string base64(const std::uint8_t* data, std::size_t size);

}  // namespace ptypilot
