// DetectorService: the simulated detector plus stage behind `ptypilot sim-detector` and
// `ptypilot replay`. It is a full scan generator and detector, so that the daemon, its tests and
// the demo run the same code paths as with hardware. Where the frames come from is its
// FrameProvider (frame_provider.hpp): the forward model on a simulated specimen, or a recorded
// data set. How they go on the wire is its FrameEmitter (stream_encoder.hpp).
//
//   * command socket (REP, bound): speaks the scan-generator protocol documented in
//     ptypilot/scan_driver/zmq_scan_driver.hpp. Each ScanCommand is validated as a whole
//     (non-empty, every position finite and accepted by the provider, for the simulator inside
//     the preset's FOV; dwell finite and >= 0) and answered with a ScanAck at once; a refused
//     command produces no frames.
//   * data socket (PUSH, bound): for each accepted command, one frame per position, with
//     frame_index = first_frame_index + i and position_index = i, in order, commands in the
//     order they were accepted, in the configured protocol (a FrameEmitter, stream_encoder.hpp):
//     native (FrameHeader + raw payload; a recorded frame also carries replay_source_frame and
//     replay_distance_A, where it was recorded, see ptypilot.proto), or a DECTRIS SIMPLON stream
//     v1 or v2 in one of its encodings. DECTRIS streams carry only the frame number
//     (= frame_index) and the pixels; each session's frames are one series: the first command
//     of a new session closes the open series (its end message) and opens the next (its
//     header), series ids counting from 1.
//
// Merlin (format.protocol merlin): the data socket is a TCP port that a client connects to, as
// on a Merlin PC (ptypilot/wire/merlin.hpp), and a second TCP port takes Merlin control commands
// (merlin_control_endpoint): SET and GET store and answer values, CMD STARTACQUISITION sends an
// acquisition header for NUMFRAMESTOACQUIRE frames and the next session's commands are that
// acquisition, CMD STOPACQUISITION (or ABORT) ends it and drops the frames not yet sent, with no
// sign on the data port, as a Merlin does. A session that nobody armed gets its acquisition
// header with its first command. Frame numbers are frame_index + 1. Free-running, no control port.
//
// Free-running (free_run_frames > 0), like a DECTRIS detector armed for N images: no command
// socket; one series of N frames of the preset's raster (row by row, wrapping around when N
// exceeds it) goes out as soon as a reader connects, then the service idles until stopped. The
// positions are the preset's, so free-running is for simulated frames.
//
// One thread runs one loop that answers commands and sends frames in turn, so a command sent
// while frames of an earlier one are still going out is acknowledged at once rather than after
// the scan (a driver's ack timeout must not depend on the length of the previous scan).
// Backpressure: the data socket keeps ZMQ's default send high-water mark and a frame is only
// sent when the socket can take it, so a slow reader slows the simulator down; no frame is
// dropped. Frames are made (simulated or read) in small batches just before they are sent, so a
// full-raster command does not hold every frame in memory.
//
// A command that repeats the (session_id, command_id) of the last accepted one is a driver's
// resend after a lost ack: it gets the same ack again and is not scanned twice.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/wire/stream_encoder.hpp"
#include "ptypilot/sim/frame_provider.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::sim {

class MerlinDataPort;
class MerlinControlPort;

struct DetectorServiceConfig {
  // The simulated frames (SimulatorFrameSettings), for the constructor without a provider.
  std::string preset = "mos2-paper";
  std::uint64_t seed = 1;        // specimen
  double dose_e_per_A2 = 1e5;    // <= 0: noise-free frames that each sum to 1
  std::uint64_t noise_seed = 1;  // Poisson noise
  ExperimentalEffects effects;   // experimental_effects.hpp; none by default
  std::string command_endpoint = "tcp://127.0.0.1:5601";
  std::string data_endpoint = "tcp://127.0.0.1:5602";
  double frame_rate_hz = 0.0;  // 0: as fast as the simulation and the reader allow
  // Unset: the bitshuffle encoding's width (bs8-lz4: uint8, ...), else uint16 counts when
  // dose > 0 (what a counting detector sends), float32 when noise-free (fractions of an
  // electron).
  std::optional<PixelType> dtype;
  StreamFormat format;  // the wire protocol and, for DECTRIS, its encoding
  std::uint64_t free_run_frames = 0;  // > 0: free-running, see above
  std::string merlin_control_endpoint = "tcp://127.0.0.1:6341";  // merlin only
};

class DetectorService {
 public:
  // Simulated frames: builds the specimen of config's preset and binds both sockets. Throws
  // std::invalid_argument for an unknown preset, a negative rate or an integer dtype with
  // noise-free frames (they would round to 0), and zmq::error_t when an endpoint cannot be
  // bound. `context` must outlive the service.
  DetectorService(zmq::context_t& context, DetectorServiceConfig config);
  // Frames from `frames`, which must be square; config's simulator fields (preset to dtype) are
  // not used (but free-running scans the preset's raster).
  DetectorService(zmq::context_t& context, DetectorServiceConfig config,
                  std::unique_ptr<FrameProvider> frames);

  ~DetectorService();
  DetectorService(const DetectorService&) = delete;
  DetectorService& operator=(const DetectorService&) = delete;

  // Serves commands and sends frames until `stop` is requested (seen within ~50 ms, also while
  // blocked on a full data socket; unsent frames are then discarded). Construct on one thread
  // and run on one other thread at most: ZMQ sockets belong to one thread at a time. Throws only
  // on a broken socket (zmq::error_t), never for a bad command.
  void run(std::stop_token stop);

  // The endpoints as ZMQ resolved them: with "tcp://127.0.0.1:*" they name the chosen ports.
  const std::string& bound_command_endpoint() const { return bound_command_endpoint_; }
  const std::string& bound_data_endpoint() const { return bound_data_endpoint_; }
  // Merlin's control port; empty for other protocols and free-running.
  const std::string& bound_control_endpoint() const { return bound_control_endpoint_; }

  const DetectorServiceConfig& config() const { return config_; }
  // Read only from the thread that runs the service, or before run() and after it returns.
  const FrameProvider& frame_provider() const { return *frames_; }
  PixelType dtype() const { return dtype_; }
  int frame_px() const { return frames_->format().rows; }  // square: rows = cols
  double electrons_per_frame() const { return frames_->format().electrons_per_frame; }

  // Health counters, readable from any thread.
  std::uint64_t commands_accepted() const { return commands_accepted_.load(); }
  std::uint64_t commands_rejected() const { return commands_rejected_.load(); }
  std::uint64_t frames_sent() const { return frames_sent_.load(); }

  // The checks a command must pass; ok or the reason it is refused. Public so that the reasons a
  // generator gives can be tested without sockets.
  Status validate(const wire::ScanCommand& command) const;

 private:
  // An accepted command whose frames are not all sent yet.
  struct Job {
    wire::ScanCommand command;
    std::int64_t next = 0;    // next frame to send; frame i is at position i mod positions_size
    std::int64_t frames = 0;  // frames to send
    std::deque<WireMessage> before;  // series messages due before its first frame
    std::deque<WireMessage> after;   // and after its last
    bool end_series_after = false;   // close the series after its last frame (free-running)
  };

  void handle_command();
  wire::ScanAck answer(const wire::ScanCommand& command);
  // Sends as many frames as the data socket takes without blocking, at most one when paced.
  void send_ready_frames(std::chrono::steady_clock::time_point now);
  Status make_batch(const Job& job);
  // Sends queued series messages; false while the socket cannot take them.
  bool send_queued(std::deque<WireMessage>& messages);
  // One message onto the data socket or port, without blocking; false when it cannot take it.
  bool send_data(WireMessage& message);
  int merlin_command(const std::string& name);
  StreamSeries series_for(std::uint64_t number_of_images) const;
  Job free_run_job();

  DetectorServiceConfig config_;
  std::unique_ptr<FrameProvider> frames_;
  PixelType dtype_;
  zmq::socket_t command_socket_;
  zmq::socket_t data_socket_;
  std::string bound_command_endpoint_;
  std::string bound_data_endpoint_;
  std::string bound_control_endpoint_;
  std::unique_ptr<MerlinDataPort> merlin_data_;
  std::unique_ptr<MerlinControlPort> merlin_control_;
  bool armed_ = false;  // Merlin: an acquisition started by control, not yet given to a session
  std::unique_ptr<FrameEmitter> emitter_;
  WireMessage message_;         // the frame being sent, reused
  std::string series_session_;  // the session whose series is open (DECTRIS)
  bool series_open_ = false;

  std::deque<Job> jobs_;
  // Frames made for jobs_.front(), positions [batch_first_, batch_first_ + batch_count_).
  std::vector<float> batch_;
  std::vector<FrameOrigin> batch_origins_;
  std::int64_t batch_first_ = 0;
  int batch_count_ = 0;
  std::chrono::steady_clock::time_point next_frame_at_{};

  // The last accepted command, to recognise a resend.
  std::string last_session_id_;
  std::uint64_t last_command_id_ = 0;
  bool have_last_ = false;

  std::atomic<std::uint64_t> commands_accepted_{0};
  std::atomic<std::uint64_t> commands_rejected_{0};
  std::atomic<std::uint64_t> frames_sent_{0};
};

}  // namespace ptypilot::sim
