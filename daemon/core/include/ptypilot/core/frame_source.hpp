// FrameSource: delivers detector frames with their position and id. Implementations own their
// socket and their protocol; a rejected message is counted in health() and never ends a session.
#pragma once

#include <chrono>
#include <string>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/core/health.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Waits up to `timeout` for the next message. Ok: *frame holds a valid frame.
  // kUnavailable: nothing arrived in time (not an error by itself). Any other code: a message
  // arrived and was rejected (malformed, wrong size, NaN, ...); it is already counted.
  virtual Status receive(DetectorFrame* frame, std::chrono::milliseconds timeout) = 0;
  virtual const HealthCounters& health() const = 0;
  // A fault of the stream itself that the session cannot recover from, such as frames that the
  // detector numbered but never sent (a gap in its frame numbers): the reason, once; empty while
  // there is none. Sources whose frames carry their own place in the scan have none.
  virtual std::string take_stream_fault() { return {}; }
};

}  // namespace ptypilot
