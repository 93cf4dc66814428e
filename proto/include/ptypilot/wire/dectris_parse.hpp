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
#include <vector>

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
  // kSeriesStart: the detector's pixel mask when the header carries one (v1 header_detail all:
  // dpixelmask-1.0), rows x cols row-major, nonzero marking a bad pixel; empty otherwise.
  std::vector<std::uint32_t> pixel_mask;
  int pixel_mask_rows = 0;
  int pixel_mask_cols = 0;
};

// v1: the parts of one ZMQ multipart message.
Status parse_v1(std::span<const std::span<const std::byte>> parts, Message* message,
                std::string_view* counter);
// v1: the parts of a message that starts with `first`, not counting an optional appendix: a
// dheader-1.0 part 1, 2 or 8 by its header_detail (none, basic, all), dimage-1.0 4,
// dseries_end-1.0 1; 0 for any other part. A DCU sends each message as one ZMQ multipart
// message. LiberTEM-live's DectrisSim (libertem-dectris) replays a dump of the stream's parts:
// the dheader-1.0 part and the detector config as two messages, then groups of four parts, so
// with header_detail all the header's last six parts and the images that follow straddle its
// messages. DectrisStreamSource joins the parts of such a stream into messages with these two.
std::size_t v1_message_parts(std::span<const std::byte> first);
// v1: whether `part` starts a message: a JSON object with an htype other than those of a
// message's later parts (dimage_d-1.0, dconfig-1.0, dflatfield-1.0, dpixelmask-1.0,
// dcountrate_table-1.0). A blob, the detector config (no htype) and an appendix that is not
// such an object do not.
bool v1_starts_message(std::span<const std::byte> part);

// v2: one CBOR message.
Status parse_v2(std::span<const std::byte> bytes, Message* message, std::string_view* counter);

// Decompresses and checks an image and widens it into frame->counts (and rows, cols, dtype,
// exposure_s). A detector shape of 0 x 0 and no dtype accept any. The decompressed bytes go
// through a per-thread buffer of at most kMaxFramePixels * 4 bytes, reused across frames.
Status decode_image(const Image& image, int expected_rows, int expected_cols,
                    std::optional<PixelType> expected_dtype, DetectorFrame* frame,
                    std::string_view* counter);

}  // namespace ptypilot::dectris
