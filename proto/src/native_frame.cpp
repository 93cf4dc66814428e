#include "ptypilot/wire/native_frame.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace ptypilot {

// The wire is little-endian and we read and write it with memcpy. Every platform we build for
// (x86-64, aarch64) is little-endian; a big-endian port would need byte swaps here and in the
// receiver.
static_assert(std::endian::native == std::endian::little,
              "the frame wire format is little-endian; add byte swapping for this platform");
static_assert(std::numeric_limits<float>::is_iec559, "float32 payloads are IEEE 754");

namespace {

template <typename T>
void narrow(std::span<const float> counts, std::byte* out) {
  constexpr double kMax = static_cast<double>(std::numeric_limits<T>::max());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double rounded = std::round(static_cast<double>(counts[i]));
    // NaN fails both comparisons and lands on 0: a pixel with no sensible count reads as empty.
    const double clamped = rounded > 0.0 ? std::min(rounded, kMax) : 0.0;
    const T value = static_cast<T>(clamped);
    std::memcpy(out + i * sizeof(T), &value, sizeof(T));
  }
}

}  // namespace

wire::FrameHeader::DType wire_dtype(PixelType dtype) {
  switch (dtype) {
    case PixelType::kUint8:
      return wire::FrameHeader::UINT8;
    case PixelType::kUint16:
      return wire::FrameHeader::UINT16;
    case PixelType::kUint32:
      return wire::FrameHeader::UINT32;
    case PixelType::kFloat32:
      return wire::FrameHeader::FLOAT32;
  }
  return wire::FrameHeader::DTYPE_UNSPECIFIED;
}

std::optional<PixelType> pixel_type_from_wire(int dtype) {
  switch (dtype) {
    case wire::FrameHeader::UINT8:
      return PixelType::kUint8;
    case wire::FrameHeader::UINT16:
      return PixelType::kUint16;
    case wire::FrameHeader::UINT32:
      return PixelType::kUint32;
    case wire::FrameHeader::FLOAT32:
      return PixelType::kFloat32;
    default:
      return std::nullopt;
  }
}

std::vector<std::byte> encode_payload(std::span<const float> counts, PixelType dtype) {
  std::vector<std::byte> out(counts.size() * pixel_size(dtype));
  switch (dtype) {
    case PixelType::kUint8:
      narrow<std::uint8_t>(counts, out.data());
      break;
    case PixelType::kUint16:
      narrow<std::uint16_t>(counts, out.data());
      break;
    case PixelType::kUint32:
      narrow<std::uint32_t>(counts, out.data());
      break;
    case PixelType::kFloat32:
      if (!counts.empty()) std::memcpy(out.data(), counts.data(), out.size());
      break;
  }
  return out;
}

zmq::send_result_t send_frame(zmq::socket_t& socket, const wire::FrameHeader& header,
                              std::span<const std::byte> payload, zmq::send_flags flags) {
  zmq::message_t header_part(header.ByteSizeLong());
  header.SerializeWithCachedSizesToArray(static_cast<std::uint8_t*>(header_part.data()));
  const zmq::send_result_t sent_header = socket.send(header_part, flags | zmq::send_flags::sndmore);
  if (!sent_header) return std::nullopt;  // would block: nothing went out
  // The first part is queued, so ZMQ accepts the rest of the message regardless of the HWM;
  // sending it without dontwait rules out a half-sent frame that would desynchronise the stream.
  zmq::message_t payload_part(payload.data(), payload.size());
  const zmq::send_result_t sent_payload = socket.send(payload_part, zmq::send_flags::none);
  if (!sent_payload) return std::nullopt;
  return *sent_header + *sent_payload;
}

}  // namespace ptypilot
