// FrameEmitter: puts frames onto the wire in one detector protocol: the native one (FrameHeader +
// raw payload, zmq_frame_source.hpp), a DECTRIS SIMPLON stream, v1 or v2, in any of its
// encodings (dectris_stream.hpp, dectris_build.hpp), or the Merlin's (merlin.hpp: each message
// one part holding its bytes as they go on the TCP stream, prefix included; the acquisition
// header opens a series, frame number = frame_index + 1, nothing closes it). The simulated detector and the benchmarks send through it; it
// takes a frame's counts and metadata, whatever produced them (the forward model, a recorded
// data set), and owns only the wire format: series numbering and framing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "ptypilot/wire/dectris_stream.hpp"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/image.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

enum class StreamProtocol { kNative, kDectrisV1, kDectrisV2, kMerlin };

struct StreamFormat {
  StreamProtocol protocol = StreamProtocol::kNative;
  dectris::Encoding encoding = dectris::Encoding::kBitshuffleLz4;  // DECTRIS only
  // The element width that a bitshuffle encoding was named with (bs16-lz4: 16), which fixes the
  // pixel type; 0 for the other encodings.
  int bitshuffle_bits = 0;
  std::string header_detail = "basic";  // DECTRIS series header: basic, all or none
};

// "native", "dectris-v1", "dectris-v2", "merlin"; throws std::invalid_argument naming them.
StreamProtocol parse_stream_protocol(std::string_view name);
const char* to_string(StreamProtocol protocol);
// "bs8-lz4", "bs16-lz4", "bs32-lz4", "lz4", "none" into `format`; throws naming them.
void parse_stream_encoding(std::string_view name, StreamFormat* format);
std::string encoding_label(const StreamFormat& format);  // the name parse_stream_encoding reads

// One frame as the detector knows it. The DECTRIS protocols send only frame_index (as the frame
// number within the series) and the pixels; the native one sends all of it.
struct OutgoingFrame {
  std::string_view session_id;
  std::uint32_t sub_sequence = 0;
  std::uint64_t frame_index = 0;
  std::uint32_t position_index = 0;
  Vec2 position_A;
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kUint16;
  std::span<const float> counts;  // rows * cols; integer types round and clamp (encode_payload)
  double electrons_per_frame = 0.0;
  double exposure_s = 0.0;
  std::uint64_t timestamp_ns = 0;
  // A replayed frame: its index in the recorded data set and how far from position_A it was
  // recorded (native protocol only; FrameHeader.replay_source_frame / replay_distance_A).
  std::optional<std::uint64_t> replay_source_frame;
  double replay_distance_A = 0.0;
};

struct StreamSeries {
  std::uint64_t number_of_images = 0;  // 0: not known in advance
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kUint16;
  double count_time_s = 1e-3;
  double incident_energy_eV = 0.0;
};

// The parts of one ZMQ message.
using WireMessage = std::vector<zmq::message_t>;

class FrameEmitter {
 public:
  virtual ~FrameEmitter() = default;
  // Whether the protocol frames series (DECTRIS) or not (native: each frame stands alone).
  virtual bool uses_series() const = 0;
  // The message that opens a new series (a DECTRIS series header), with the next series id;
  // nothing for the native protocol.
  virtual std::vector<WireMessage> begin_series(const StreamSeries& series) = 0;
  virtual Status encode(const OutgoingFrame& frame, WireMessage* message) = 0;
  // The message that closes the open series; nothing when none is open.
  virtual std::vector<WireMessage> end_series() = 0;
};

// Throws std::invalid_argument for a bitshuffle width that does not fit the pixel type; `dtype`
// is what every frame of this emitter will be.
std::unique_ptr<FrameEmitter> make_frame_emitter(const StreamFormat& format, PixelType dtype);

// Sends a message whole. With zmq::send_flags::dontwait: false means the queue was full and
// nothing was sent (the message is left intact, to be sent again); once the first part is
// accepted the rest always is. Throws zmq::error_t on socket errors.
bool send_message(zmq::socket_t& socket, WireMessage& message,
                  zmq::send_flags flags = zmq::send_flags::none);

}  // namespace ptypilot
