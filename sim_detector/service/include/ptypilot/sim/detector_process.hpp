// The process around a DetectorService, shared by `ptypilot sim-detector` and `ptypilot replay`:
// stop on SIGINT or SIGTERM, and one JSON ready line on stdout once the sockets are bound.
#pragma once

#include <signal.h>

#include <nlohmann/json.hpp>

#include "ptypilot/sim/detector_service.hpp"

namespace ptypilot {

// Blocks SIGINT and SIGTERM in the calling thread, so in every thread it starts afterwards (ZMQ's
// included, which inherit the mask): they are then taken synchronously by
// serve_until_signalled(), and no handler runs in the middle of a ZMQ call. Call it before the
// ZMQ context is made. Throws std::runtime_error if the mask cannot be set.
sigset_t block_stop_signals();

// Prints `ready` on one line (flushed: the parent waits for it), runs the service on a worker
// thread until one of `signals` arrives, and returns that signal's number. Rethrows what the
// service threw.
int serve_until_signalled(sim::DetectorService& service, const sigset_t& signals,
                          const nlohmann::json& ready);

}  // namespace ptypilot
