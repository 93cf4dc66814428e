// The detector connections of the configured kinds: the native ZMQ frame stream, DECTRIS
// SIMPLON streams v1 and v2, and a Merlin's TCP protocol. Made when the daemon is configured; each session opens its source.
#pragma once

#include <cstdint>
#include <memory>
#include <zmq.hpp>

#include "ptypilot/core/config.hpp"
#include "ptypilot/core/frame_source.hpp"

namespace ptypilot {

// Frames of `window_px` x `window_px` pixels of `dtype` (others are rejected and counted).
// `session_positions`: a session's position budget, which a Merlin is armed for (its
// NUMFRAMESTOACQUIRE). Throws std::invalid_argument for an unknown detector.kind or an endpoint
// the kind cannot use. `context` must outlive it.
std::unique_ptr<DetectorConnection> make_detector_connection(zmq::context_t& context,
                                                             const DetectorConfig& detector,
                                                             int window_px, PixelType dtype,
                                                             std::uint64_t session_positions = 0);

}  // namespace ptypilot
