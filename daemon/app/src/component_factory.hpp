// A session's parts made from its configuration: the scan driver, the recorder and what it is
// told about the session, the policy's limits. The one place that maps config kinds to classes
// (the detector's is make_detector_connection in daemon/ingest).
#pragma once

#include <memory>
#include <string>
#include <zmq.hpp>

#include "ptypilot/core/config.hpp"
#include "ptypilot/core/recorder.hpp"
#include "ptypilot/scan_driver/scan_driver.hpp"

namespace ptypilot {

PolicyLimits policy_limits(const ServeConfig& config);

// Throws std::invalid_argument for an unknown kind. `context` must outlive the driver.
std::unique_ptr<ScanDriver> make_scan_driver(zmq::context_t& context, const ScanDriverConfig& config);

// The HDF5 recorder of config.recorder, not yet begun.
std::shared_ptr<Recorder> make_recorder(const RecorderSettings& config);

// What the recording keeps about session `id` (its whole configuration among it).
SessionInfo session_info(const ServeConfig& config, const std::string& id);

// "session-YYYYmmdd-HHMMSS-N", unique within this process.
std::string new_session_id();

}  // namespace ptypilot
