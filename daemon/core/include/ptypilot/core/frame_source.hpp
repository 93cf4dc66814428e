// Where frames come from, in two parts:
//
//   DetectorConnection  made when the daemon is configured: the detector's kind, endpoint and
//                       frame format. It opens one FrameSource per session.
//   FrameSource         one acquisition: delivers that session's frames with their position and
//                       id. It owns its socket and its protocol; a rejected message is counted
//                       in health() and never ends a session.
//
// Two hooks replace side channels between the session and the stream: the session tells the
// source which positions it issued (positions_issued), and the source tells the session, through
// the StreamFaultHandler it was opened with, about a fault of the stream itself.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ptypilot/core/health.hpp"
#include "ptypilot/scan_driver/scan_driver.hpp"
#include "ptypilot/status.hpp"
#include "ptypilot/wire/frame.hpp"

namespace ptypilot {

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Waits up to `timeout` for the next message. Ok: *frame holds a valid frame.
  // kUnavailable: nothing arrived in time (not an error by itself). Any other code: a message
  // arrived and was rejected (malformed, wrong size, NaN, ...); it is already counted.
  virtual Status receive(DetectorFrame* frame, std::chrono::milliseconds timeout) = 0;
  virtual const HealthCounters& health() const = 0;
  // The session issues `request` (called before the scan driver sends it, from the session's
  // thread while another thread may be in receive()). A source whose frames carry only a frame
  // number (DECTRIS) places them by it; sources whose frames carry their own place ignore it.
  // Non-ok: the positions cannot be placed, and the session does not send them.
  virtual Status positions_issued(const ScanRequest& /*request*/) { return Status::Ok(); }
};

// A fault of the stream that the session cannot recover from, such as frames the detector
// numbered but never sent (a gap in its frame numbers). Called at most once per source, on the
// thread in receive(), with the reason.
using StreamFaultHandler = std::function<void(std::string reason)>;

class DetectorConnection {
 public:
  virtual ~DetectorConnection() = default;
  // The source of one session's frames. Throws std::runtime_error, saying what to fix, when the
  // stream cannot be opened (an endpoint that cannot be bound, ...).
  virtual std::unique_ptr<FrameSource> open(const std::string& session_id,
                                            StreamFaultHandler on_fault) = 0;
  virtual std::string_view kind() const = 0;
};

}  // namespace ptypilot
