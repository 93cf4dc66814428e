// The daemon behind `ptypilot serve`: a Boost.Asio event loop that owns the session state
// machine, an ingest thread that receives and records frames, and a control thread that answers
// the REQ/REP control socket (protobuf, or JSON for scripts). Events go out on a PUB socket.
//
// States: idle -> configured -> running -> finishing -> idle. A fault (detector silent, scan
// generator not acknowledging, recorder failure) moves to error; the data recorded so far is
// kept and the file closed. Configure leaves error.
//
// Threads and what they own:
//   event loop (run()): the state, the Session, the PUB socket, the timers;
//   ingest:  the FrameSource; records each batch, then posts it to the loop;
//   control: the REP socket; posts each request to the loop and sends its reply.
// At most detector.max_pending_frames frames wait for the loop; beyond that ingest stops reading, ZMQ's
// high-water mark fills and the detector's sender blocks: backpressure, never a dropped frame.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "ptypilot/core/config.hpp"

namespace ptypilot {

struct DaemonOptions {
  std::string control_endpoint;  // overrides the config's, if set
  std::string events_endpoint;
  std::optional<ServeConfig> initial_config;  // --config FILE: configured at start-up
  // --detector KIND://HOST:PORT: replaces detector.kind and detector.endpoint of every
  // configuration (see apply_detector_uri in config.hpp); empty: the configuration's own.
  std::string detector_uri;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);  // binds the sockets; throws on failure
  ~Daemon();
  // Runs until shutdown() or SIGINT/SIGTERM. Returns the exit code.
  int run();
  void shutdown();
  std::string control_endpoint() const;
  std::string events_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ptypilot
