// The daemon's end of the DECTRIS SIMPLON streams (formats in dectris_stream.hpp): parsers of
// v1 and v2 messages and the decoder of their images, for DectrisStreamSource and its fuzz
// targets. It needs nothing of the builders (dectris_build.hpp).
//
// Every parser takes untrusted bytes and returns a Status; on failure *counter names the health
// counter of that kind of bad input (its constant in counters.hpp). Nothing here throws on input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/dectris_stream.hpp"
#include "ptypilot/wire/frame.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::dectris {

// One image as parsed: views into the message, valid while the message is.
struct Image {
  std::uint64_t series_id = 0;
  std::uint64_t frame_id = 0;
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kUint16;
  Encoding encoding = Encoding::kNone;
  bool hdf5_framing = false;  // lz4: v2 frames its LZ4 blocks like the HDF5 filter, v1 does not
  std::span<const std::byte> data;
  double exposure_s = 0.0;  // the detector's real (counting) time; 0 when absent
  std::size_t extra_channels = 0;  // v2 channels beyond the first, which are ignored
};

enum class MessageKind { kSeriesStart, kImage, kSeriesEnd };

struct Message {
  MessageKind kind = MessageKind::kImage;
  std::uint64_t series_id = 0;
  std::string header_detail;  // v1 series header: basic, all or none
  Image image;                // kImage only
};

// v1: the parts of one ZMQ multipart message.
Status parse_v1(std::span<const std::span<const std::byte>> parts, Message* message,
                std::string_view* counter);
// v1: the parts a series header needs when `first` is a dheader-1.0 part with a known
// header_detail (none 1, basic 2, all 8, not counting an optional appendix), else 0. A DCU sends
// the series header as one multipart message; LiberTEM-live's DectrisSim (libertem-dectris), in
// its default header_detail basic, sends the header and the detector config as two messages.
// The source joins such a header with the messages after it until it has this many parts.
std::size_t v1_series_header_parts(std::span<const std::byte> first);
// v1: whether `first` is the first part of a message (a JSON object whose htype is dheader-1.0,
// dimage-1.0 or dseries_end-1.0) rather than a later part of a series header sent on its own.
bool v1_opens_message(std::span<const std::byte> first);

// v2: one CBOR message.
Status parse_v2(std::span<const std::byte> bytes, Message* message, std::string_view* counter);

// Decompresses and checks an image and widens it into frame->counts (and rows, cols, dtype,
// exposure_s). A detector shape of 0 x 0 and no dtype accept any. The decompressed bytes go
// through a per-thread buffer of at most kMaxFramePixels * 4 bytes, reused across frames.
Status decode_image(const Image& image, int expected_rows, int expected_cols,
                    std::optional<PixelType> expected_dtype, DetectorFrame* frame,
                    std::string_view* counter);

}  // namespace ptypilot::dectris
