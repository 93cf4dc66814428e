// ZmqScanDriver: hands a list of positions to an external scan generator over ZMQ, and the
// SimStage, which is the same driver aimed at `ptypilot sim-detector`.
//
// The scan-generator protocol. This is the contract a real scan generator (or an adapter in
// front of one) implements to be driven by ptypilot:
//
//   * Transport: ZMQ REQ/REP. The generator binds a REP socket; the daemon connects a REQ socket
//     to it. Every exchange is one single-part request and one single-part reply.
//   * Request: a serialized wire::ScanCommand (proto/ptypilot.proto) with
//       - session_id, sub_sequence: copied into every frame the command produces;
//       - positions: (y_A, x_A) in Angstrom, relative to the FOV origin, to be visited in order;
//       - dwell_s: dwell time per position;
//       - command_id: increasing from 1 within one driver; echoed in the reply;
//       - first_frame_index: the frame for positions[i] must carry
//         frame_index = first_frame_index + i and position_index = i.
//   * Reply: a serialized wire::ScanAck, sent as soon as the command has been validated and
//     queued (not when the scan is done; completion is observed through the frames), with
//       - command_id: the command's id;
//       - accepted: true if every position will be visited; false if none will be;
//       - error: when not accepted, a reason a person can act on.
//     A generator never accepts part of a command.
//   * Frames: for an accepted command the detector emits one frame per position on the frame
//     stream (see ptypilot.proto: FrameHeader + raw payload), with the numbering above.
//   * Timeouts and resends: the daemon waits `ack_timeout` for the reply. If none comes it closes
//     its REQ socket and opens a fresh one ("lazy pirate": a REQ socket whose reply was lost can
//     never send again). With `retries` > 0 it then resends the SAME command (same command_id),
//     so a generator must treat a command whose (session_id, command_id) it has already
//     acknowledged as a resend: reply with the same ScanAck and do not scan it a second time.
//
// Errors from submit(): no reply within the timeout (after all retries) -> kUnavailable;
// accepted = false -> kFailedPrecondition carrying the generator's reason; a reply that is not a
// ScanAck for this command -> kInternal.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "ptypilot/scan_driver/scan_driver.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct ZmqScanDriverConfig {
  std::string endpoint;                         // the generator's REP socket, e.g. tcp://host:5601
  std::chrono::milliseconds ack_timeout{2000};  // per attempt
  int retries = 0;                              // resends after a timeout, each on a new socket
};

// Not thread-safe: one caller (the daemon's session loop) submits at a time.
class ZmqScanDriver final : public ScanDriver {
 public:
  // Connects (lazily, as ZMQ does; a generator that is not up yet is fine). Throws
  // std::invalid_argument for an empty endpoint or a negative timeout/retry count, and
  // zmq::error_t for an endpoint ZMQ cannot parse.
  ZmqScanDriver(zmq::context_t& context, ZmqScanDriverConfig config, std::string name = "zmq");

  Status submit(const ScanRequest& request) override;
  std::string_view name() const override { return name_; }
  // submit() is these two: send, then wait for the ack (resending on a fresh socket after each
  // ack_timeout while retries are left).
  Status submit_async(const ScanRequest& request) override;
  Status wait_acknowledged(std::chrono::milliseconds timeout) override;

  const ZmqScanDriverConfig& config() const { return config_; }
  // The id the next command will carry.
  std::uint64_t next_command_id() const { return next_command_id_; }

 private:
  struct Pending {
    std::uint64_t id = 0;
    std::string bytes;  // the serialized command, for resends
    int attempt = 0;
    std::chrono::steady_clock::time_point deadline;  // of this attempt
  };
  void open_socket();
  Status send_pending();
  Status read_ack();
  Status not_acknowledged() const;
  Status fail_on_socket(const zmq::error_t& e);
  Status end_pending(Status result);

  zmq::context_t& context_;
  ZmqScanDriverConfig config_;
  std::string name_;
  zmq::socket_t socket_;
  std::uint64_t next_command_id_ = 1;
  std::optional<Pending> pending_;
};

// The simulated stage: `ptypilot sim-detector` binds a command endpoint that speaks exactly the
// scan-generator protocol above, so the SimStage is not a separate class but a ZmqScanDriver
// named "sim-stage". Every test and demo that drives the simulator therefore exercises the very
// protocol, timeouts and reconnects that a real generator depends on.
std::unique_ptr<ScanDriver> make_sim_stage_driver(
    zmq::context_t& context, std::string endpoint,
    std::chrono::milliseconds ack_timeout = std::chrono::milliseconds{2000});

}  // namespace ptypilot
