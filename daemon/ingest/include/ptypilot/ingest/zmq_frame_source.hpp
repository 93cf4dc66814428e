// ZmqFrameSource: the native detector stream. Frames arrive on a ZMQ PULL socket, each one a
// two-part message [serialized ptypilot.wire.FrameHeader, raw payload] as defined in
// proto/ptypilot.proto; the payload is rows * cols little-endian, row-major elements of the
// header's dtype. Every message is checked and converted to float32 counts; a message that fails
// a check is drained completely (so the stream stays in sync), counted under its own name in
// health() (the names are in ptypilot/wire/counters.hpp), and reported as a non-ok Status. Nothing
// here throws after construction.
//
// Backpressure: the socket's receive high-water mark is ZmqFrameSourceConfig::receive_hwm and
// nothing is ever dropped. When the daemon falls behind, the queue fills to that mark, libzmq
// stops reading from TCP, the kernel buffers fill, and the detector's PUSH socket blocks (or
// returns EAGAIN with ZMQ_DONTWAIT) until we catch up. So a slow consumer slows the sender down;
// it never loses frames silently. A sender that must not block has to handle EAGAIN itself.
//
// The sender side (sim-detector, replay, tests) uses send_frame() and encode_payload() from
// ptypilot/wire/native_frame.hpp, so both ends share one implementation of the wire format.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/wire/native_frame.hpp"
#include "ptypilot/core/frame_source.hpp"
#include "ptypilot/core/health.hpp"
#include "ptypilot/ingest/connection_keeper.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct ZmqFrameSourceConfig {
  // A ZMQ endpoint, e.g. "tcp://detector-pc:5555". By default we connect, because the detector
  // binds its PUSH socket; bind = true is for setups where the daemon is the fixed end.
  std::string endpoint;
  bool bind = false;
  // ZMQ_RCVHWM, in messages (frames). 0 means no limit, which trades backpressure for memory.
  int receive_hwm = 1000;
  // The detector's frame shape; 0 accepts any shape (still at most kMaxFramePixels pixels).
  int expected_rows = 0;
  int expected_cols = 0;
  // The detector's pixel dtype; a frame of another dtype is rejected (frames_dtype_mismatch).
  // nullopt accepts any. Set it to the recording's SessionInfo::frame_dtype: then every frame
  // that gets through holds counts that dtype stores exactly.
  std::optional<PixelType> expected_dtype;
};

// Larger frames are rejected as frames_wrong_shape: no real detector sends them, and a corrupt
// header must not make us allocate gigabytes.
inline constexpr std::uint64_t kMaxFramePixels = 4096ULL * 4096ULL;

// The largest message part a frame source takes (ZMQ_MAXMSGSIZE, set on its socket): a frame of
// `rows` x `cols` pixels of `dtype` (0 and nullopt: the largest allowed, 4096 x 4096 float32),
// plus 64 KiB for a header. libzmq reads a part's size before its bytes and drops the
// connection of a peer that sends more, so such a message never takes the daemon's memory; a
// detector that reconnects goes on.
std::int64_t frame_part_limit(int rows, int cols, std::optional<PixelType> dtype);

class ZmqFrameSource final : public FrameSource {
 public:
  // Creates the PULL socket on `ctx` and connects (or binds) it. Throws std::runtime_error when
  // the endpoint or another setting is unusable. `ctx` must outlive this object.
  ZmqFrameSource(zmq::context_t& ctx, const ZmqFrameSourceConfig& config);

  // Not thread-safe: one thread receives (ZMQ sockets belong to one thread). On a non-ok Status
  // the contents of *frame are unspecified.
  Status receive(DetectorFrame* frame, std::chrono::milliseconds timeout) override;
  const HealthCounters& health() const override { return health_; }

  // The endpoint as ZMQ resolved it (ZMQ_LAST_ENDPOINT): with "tcp://127.0.0.1:*" and bind, this
  // names the port the OS chose.
  std::string bound_endpoint() const;

 private:
  Status reject(std::string_view counter, std::string message);
  Status decode(DetectorFrame* frame);

  ZmqFrameSourceConfig config_;
  zmq::socket_t socket_;
  ConnectionKeeper keeper_;
  HealthCounters health_;
  wire::FrameHeader header_;    // parsed into in place, reusing its string storage
  zmq::message_t header_part_;  // reused across frames, so steady state allocates nothing here
  zmq::message_t payload_part_;
  zmq::message_t extra_part_;  // parts beyond the second, drained and dropped
  std::size_t part_count_ = 0;
};

}  // namespace ptypilot
