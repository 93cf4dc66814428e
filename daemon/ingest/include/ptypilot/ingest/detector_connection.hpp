// The detector connections of the configured kinds: the native ZMQ frame stream and DECTRIS
// SIMPLON streams v1 and v2. Made when the daemon is configured; each session opens its source.
#pragma once

#include <memory>
#include <zmq.hpp>

#include "ptypilot/core/config.hpp"
#include "ptypilot/core/frame_source.hpp"

namespace ptypilot {

// Frames of `window_px` x `window_px` pixels of `dtype` (others are rejected and counted).
// Throws std::invalid_argument for an unknown detector.kind. `context` must outlive it.
std::unique_ptr<DetectorConnection> make_detector_connection(zmq::context_t& context,
                                                             const DetectorConfig& detector,
                                                             int window_px, PixelType dtype);

}  // namespace ptypilot
