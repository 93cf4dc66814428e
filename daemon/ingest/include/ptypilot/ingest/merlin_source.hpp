// MerlinSource: frames from a Quantum Detectors Merlin over its TCP protocol
// (ptypilot/wire/merlin.hpp). The Merlin listens; the daemon connects to its data port and, unless
// control is off, to its control port.
//
// The data connection is a MerlinLink, one per Merlin address for the daemon's life (whatever
// configuration names it, make_detector_connection), connected at the first session and again
// whenever the Merlin drops it. So an acquisition header the Merlin sends before a session
// starts waits in it (the socket's buffer) and is read by the next session's source.
//
// Arming (control on): when a session opens its source, the daemon makes sure the data port is
// connected, drops what the data port sent before (an earlier acquisition's, not this
// session's), then on the control port SETs NUMFRAMESTOACQUIRE to the session's position budget
// (session.total_positions) and TRIGGERSTART (detector.merlin.trigger_start; 1, rising edge: the
// scan generator triggers each frame), and sends CMD STARTACQUISITION. The Merlin answers with an
// acquisition header on the data port and waits for the triggers. A refused command fails the
// session's start with the Merlin's status. At the end of a session whose acquisition did not
// get all its frames (a session that used less than its budget, or one that failed), the daemon
// sends CMD STOPACQUISITION. Control off: something else arms the Merlin; the daemon receives.
//
// A session's acquisition is the last acquisition header that arrives before its first frame.
// Frame number n of it (from 1) is the session's frame_index n - 1, placed by the positions the
// session issued (a ScanFrameMap), as for DECTRIS. A frame before any header is discarded and
// counted (merlin_no_acquisition). The data channel gives no sign of an acquisition aborted on
// the Merlin: a new acquisition header after some of the session's frames is taken as one; the
// frames issued and not received are lost, counted (merlin_acquisitions_aborted,
// merlin_frames_missing), and the StreamFaultHandler is told, which ends the session in error
// naming them; frames after it are discarded (merlin_no_acquisition). An abort with no new
// header is seen by the session's frame timeout, which names the missing positions and any
// messages that arrived and were discarded. Gaps in the frame numbers end the session as for
// DECTRIS (merlin_frame_gaps, merlin_frames_missing).
//
// Bad input is counted and never ends the stream: a bad prefix (merlin_bad_framing: skipped to
// the next "MPX,"), a length no frame of the configured shape has (merlin_bad_length: skipped),
// a connection that ends mid-message (merlin_truncated; the source connects again), an unknown
// message (merlin_unknown_message), a bad MQ1 header (merlin_malformed_header), a body that is
// not header + pixels (merlin_size_mismatch), a depth other than U08/U16/U32 (frames_bad_dtype),
// a shape or type other than the configured one (frames_wrong_shape, frames_dtype_mismatch).
// Nothing here throws after construction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/core/frame_source.hpp"
#include "ptypilot/ingest/scan_frame_map.hpp"
#include "ptypilot/wire/merlin.hpp"

namespace ptypilot {

struct MerlinSourceConfig {
  std::string host = "127.0.0.1";
  int data_port = merlin::kDataPort;
  int control_port = merlin::kControlPort;  // 0: no control
  int trigger_start = 1;                    // -1: not set
  std::chrono::milliseconds timeout{2000};  // a control answer, the data connection at arm
  std::uint64_t frames_per_acquisition = 0;  // NUMFRAMESTOACQUIRE at arm (the session's budget)
  int expected_rows = 0;  // 0: any
  int expected_cols = 0;
  std::optional<PixelType> expected_dtype;
};

// "tcp://HOST:PORT" into host and port; false when it is not one.
bool parse_tcp_endpoint(const std::string& endpoint, std::string* host, int* port);

// The data port's connection and the bytes read from it, kept across sessions. One thread uses
// it at a time.
class MerlinLink {
 public:
  MerlinLink(std::string host, int port) : host_(std::move(host)), port_(port) {}
  ~MerlinLink();
  MerlinLink(const MerlinLink&) = delete;
  MerlinLink& operator=(const MerlinLink&) = delete;

  // Connects if not connected, waiting at most `timeout`; true when connected.
  bool connect(std::chrono::milliseconds timeout);
  // Reads what arrives within `timeout` (connecting first if needed) onto buffer(). False when
  // nothing arrived. *closed: the Merlin ended the connection (the link connects again later).
  bool read(std::chrono::milliseconds timeout, bool* closed);
  // The bytes read and not yet consumed.
  std::span<const std::byte> pending() const {
    return std::span<const std::byte>(buffer_).subspan(offset_);
  }
  void consume(std::size_t n);
  void clear_pending() { buffer_.clear(), offset_ = 0; }
  // Reads and drops what has arrived so far; returns how many bytes that was.
  std::size_t discard_arrived();
  std::string address() const { return host_ + ":" + std::to_string(port_); }

 private:
  void close();
  std::string host_;
  int port_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
  std::size_t offset_ = 0;  // where pending() starts in buffer_
  std::chrono::steady_clock::time_point next_attempt_{};
};

class MerlinSource final : public FrameSource {
 public:
  // Arms the Merlin (control on, see above). Throws std::runtime_error, saying what to fix, when
  // the data port cannot be reached at arm or the Merlin refuses a control command.
  MerlinSource(std::shared_ptr<MerlinLink> link, const MerlinSourceConfig& config,
               std::string session_id, StreamFaultHandler on_fault = {});
  ~MerlinSource() override;

  Status receive(DetectorFrame* frame, std::chrono::milliseconds timeout) override;
  const HealthCounters& health() const override { return health_; }
  Status positions_issued(const ScanRequest& request) override;

  // Control requests (each its fields: {"SET", "NUMFRAMESTOACQUIRE", "100"}) on one connection,
  // in order, each answered before the next; returns the last answer's fields. Throws
  // std::runtime_error on a connection failure, a timeout or a non-zero status, naming the
  // request.
  static std::vector<std::string> control(const std::string& host, int port,
                                          const std::vector<std::vector<std::string>>& requests,
                                          std::chrono::milliseconds timeout);

 private:
  Status reject(std::string_view counter, std::string message);
  // Takes the next whole message from the link's buffer: Ok with *frame filled, kUnavailable
  // for a message that is not a frame or when no whole message is there (*need_more).
  Status next_message(DetectorFrame* frame, bool* need_more);
  Status handle_header(std::string_view text);
  Status handle_frame(std::span<const std::byte> body, DetectorFrame* frame);

  std::shared_ptr<MerlinLink> link_;
  MerlinSourceConfig config_;
  ScanFrameMap map_;
  StreamFaultHandler on_fault_;
  HealthCounters health_;
  std::int64_t skip_ = 0;  // bytes of an oversized message still to drop
  bool have_acquisition_ = false;
  bool aborted_ = false;
  bool finished_ = false;  // a new acquisition header came after the session's had all its frames
  std::atomic<std::uint64_t> acquisition_frames_{0};  // its header's Frames in Acquisition; 0: unknown
  std::uint64_t next_frame_ = 0;  // the session frame index expected next
  std::uint64_t received_ = 0;    // frames of the acquisition delivered
  bool fault_reported_ = false;
  bool armed_ = false;
};

}  // namespace ptypilot
