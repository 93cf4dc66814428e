// The daemon behind `ptypilot serve`. Its parts (daemon/app/src/): the state machine and the
// session's life (daemon.cpp), the control server (control_server, control_codec: protobuf or
// JSON), the event publisher, the ingest pipeline, and the component factory.
//
// States: idle -> configured -> running -> finishing -> idle. A fault (detector silent, scan
// generator not acknowledging, recorder failure, frames lost) moves to error; the data recorded
// so far is kept and the file closed. Configure leaves error.
//
// Threads and what they own:
//   event loop (run()): the state, the configuration, the PUB socket, the watchdog;
//   session worker:     the Session: reconstruction, policy, Safety, scan driver;
//   ingest:             the FrameSource; records each batch, then posts it to the worker;
//   control:            the REP socket. Status, stop and get_reconstruction are answered there,
//                       from what the loop publishes (stop: acknowledged as finishing, then
//                       taken by the loop); configure and start run on the loop;
//   zap (CURVE only):   checks each client's key, names its role (zap_authenticator.hpp);
//   http (--http only): /metrics and the live page, from snapshots (http_server.hpp).
// The loop never waits for the worker either: a session's end (ingest drained, file closed) runs
// on the worker and comes back. So status and stop never wait for a reconstruction, a scan
// generator's acknowledgement or a model load; the status reads what the worker last reported.
// At most detector.max_pending_frames frames wait for the worker; beyond that ingest
// stops reading, ZMQ's high-water mark fills and the detector's sender blocks: backpressure,
// never a dropped frame.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "ptypilot/core/config.hpp"

namespace ptypilot {

// Viewers of the live page at once; one more is refused (503).
inline constexpr std::size_t kMaxLiveViewers = 64;

struct DaemonOptions {
  std::string control_endpoint;  // overrides the config's, if set
  std::string events_endpoint;
  // CURVE (README, Security), overriding control.server_key and control.authorized_keys.
  std::string server_key;
  std::string authorized_keys;
  std::optional<ServeConfig> initial_config;  // --config FILE: configured at start-up
  // --detector KIND://HOST:PORT: replaces detector.kind and detector.endpoint of every
  // configuration (see apply_detector_uri in config.hpp); empty: the configuration's own.
  std::string detector_uri;
  // --recorder-root DIR: every recorder.directory (and point-list scan_driver.directory) must
  // resolve inside it, or the configuration is refused; a relative one is taken inside it.
  // Empty: the working directory.
  std::string recorder_root;
  // --http HOST:PORT: serve the live page and GET /metrics (Prometheus) there, loopback only;
  // port 0: any free one. Empty: no HTTP endpoint.
  std::string http_endpoint;
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
  std::string http_url() const;  // http://HOST:PORT, or empty without --http
  // The CPU time of the HTTP endpoint's thread (page, events, scrapes) so far; 0 without --http.
  double http_cpu_seconds() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ptypilot
