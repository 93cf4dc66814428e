// The native frame wire format (proto/ptypilot.proto): a two-part ZMQ message [serialized
// ptypilot.wire.FrameHeader, raw payload], the payload rows * cols little-endian, row-major
// elements of the header's dtype. The sender side (sim-detector, replay, tests, benchmarks) and
// the receiver (ZmqFrameSource in daemon/ingest) share these functions, so that both ends have
// one implementation of the format.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/wire/frame.hpp"

namespace ptypilot {

// The wire enum of a pixel type, and back (pixel_size() in frame.hpp gives bytes per element).
wire::FrameHeader::DType wire_dtype(PixelType dtype);
// nullopt for DTYPE_UNSPECIFIED and for values this build does not know.
std::optional<PixelType> pixel_type_from_wire(int wire_dtype);

// Encodes counts as the payload part: little-endian, row-major, of `dtype`. Integer types round
// to nearest and clamp to the type's range (NaN becomes 0), as a counting detector would.
std::vector<std::byte> encode_payload(std::span<const float> counts, PixelType dtype);

// Sends one frame as the two-part message [header, payload]. Sends exactly what it is given
// (header.payload_bytes is not fixed up), so tests can send malformed frames with it too.
// With zmq::send_flags::dontwait an empty result means the queue is full and nothing was sent;
// once the header part is accepted the payload part always is (ZMQ queues a multipart message
// whole), so a frame is never half-sent. Throws zmq::error_t on socket errors, like cppzmq.
zmq::send_result_t send_frame(zmq::socket_t& socket, const wire::FrameHeader& header,
                              std::span<const std::byte> payload,
                              zmq::send_flags flags = zmq::send_flags::none);

}  // namespace ptypilot
