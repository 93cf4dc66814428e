#include "component_factory.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "ptypilot/optics.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/scan_driver/point_list_driver.hpp"
#include "ptypilot/scan_driver/zmq_scan_driver.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {

PolicyLimits policy_limits(const ServeConfig& c) {
  return {c.session.sub_sequence_size, c.session.raster.height_A(), c.session.raster.width_A(),
          c.session.probe};
}

std::unique_ptr<ScanDriver> make_scan_driver(zmq::context_t& context, const ScanDriverConfig& c) {
  if (c.kind == "point-list") return std::make_unique<PointListFileDriver>(c.directory);
  if (c.kind != "sim-stage" && c.kind != "zmq")
    throw std::invalid_argument("unknown scan_driver.kind '" + c.kind +
                                "': use sim-stage, zmq or point-list");
  const ZmqScanDriverConfig zmq_config{
      c.endpoint, std::chrono::milliseconds(static_cast<long>(c.ack_timeout_s * 1000)), c.retries};
  // The simulated stage speaks the scan-generator protocol; only its name differs.
  return std::make_unique<ZmqScanDriver>(context, zmq_config, c.kind);
}

std::shared_ptr<Recorder> make_recorder(const RecorderSettings& c) {
  RecorderConfig config;
  config.directory = c.directory;
  config.sync_every_frames = c.sync_every_frames;
  config.min_free_bytes = c.min_free_bytes;
  config.reserve_bytes = c.reserve_bytes;
  // Fault injection for the tests of how a session ends (tests/python/test_session_end.py):
  // the journal fails like a full disk (or, with PTYPILOT_FAULT_JOURNAL_ERRNO=EIO, like a
  // failing disk) once it would pass this many bytes. Never set in production.
  if (const char* bytes = std::getenv("PTYPILOT_FAULT_JOURNAL_BYTES"); bytes && *bytes) {
    config.max_journal_bytes = std::strtoull(bytes, nullptr, 10);
    const char* err = std::getenv("PTYPILOT_FAULT_JOURNAL_ERRNO");
    config.journal_fault_errno = err && std::string_view(err) == "EIO" ? EIO : ENOSPC;
    log::warn("fault_injection", {{"journal_fails_after_bytes", config.max_journal_bytes},
                                  {"errno", config.journal_fault_errno}});
  }
  return std::make_shared<Hdf5Recorder>(config);
}

SessionInfo session_info(const ServeConfig& c, const std::string& id) {
  SessionInfo info;
  info.session_id = id;
  info.config_json = c.to_json().dump();
  info.versions_json = nlohmann::json{{"ptypilot", PTYPILOT_VERSION}}.dump();
  info.frame_rows = info.frame_cols = c.session.probe.detector_side_px();
  info.pixel_A = real_space_pixel_A(c.session.probe);
  info.frame_dtype = parse_pixel_type(c.detector.dtype);
  return info;
}

std::string new_session_id() {
  static std::atomic<int> counter{0};
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char text[64];
  std::strftime(text, sizeof text, "session-%Y%m%d-%H%M%S", std::gmtime(&t));
  return std::string(text) + "-" + std::to_string(counter++);
}

}  // namespace ptypilot
