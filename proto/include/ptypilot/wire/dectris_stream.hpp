// The DECTRIS SIMPLON stream formats, both ends: parsers for the daemon's DectrisStreamSource
// (and its fuzz targets) and builders for the simulated detector. No sockets here: a v1 message
// is the list of its ZMQ parts, a v2 message its one CBOR buffer.
//
// Stream v1 ("legacy", ZMQ PUSH, multipart JSON + binary), one ZMQ message each:
//   series header:  [{"htype":"dheader-1.0","series":S,"header_detail":"basic"|"all"|"none"},
//                    detector config (JSON object; basic and all),
//                    with all: {"htype":"dflatfield-1.0",...}, blob, {"htype":"dpixelmask-1.0",...},
//                    blob, {"htype":"dcountrate_table-1.0",...}, blob]  (+ an optional appendix)
//   image:          [{"htype":"dimage-1.0","series":S,"frame":K,"hash":MD5 of the blob},
//                    {"htype":"dimage_d-1.0","shape":[X,Y],"type":T,"encoding":E,"size":BYTES},
//                    blob,
//                    {"htype":"dconfig-1.0","start_time":NS,"stop_time":NS,"real_time":NS}]
//                   (+ an optional appendix). shape is [width, height]; T is uint8, uint16,
//                   uint32 (or float32); E is "<" (uncompressed), "lz4<" (one raw LZ4 block) or
//                   "bs8-lz4<", "bs16-lz4<", "bs32-lz4<" (bitshuffle + LZ4, HDF5 framing).
//   series end:     [{"htype":"dseries_end-1.0","series":S}]
// Stream v2 (ZMQ PUSH, one CBOR message each, self-described with tag 55799): a map whose "type"
//   is "start" (series_id, image_size_x/y, number_of_images, ...), "image" (series_id,
//   image_id, real_time [num, den], data: {channel: tag 40 [[rows, cols], typed array]}) or
//   "end" (series_id). A typed array is tag 64 (uint8), 69 (uint16 LE), 70 (uint32 LE) or 85
//   (float32 LE) on a byte string, or on tag 56500 ["bslz4", element size, bytes] or
//   ["lz4", 0, bytes], both in the HDF5 framing of compression.hpp.
// Frame numbers (v1 "frame", v2 "image_id") count from 0 within a series.
//
// Every parser takes untrusted bytes and returns a Status; on failure *counter names the health
// counter of that kind of bad input (dectris_counters below). Nothing here throws on input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::dectris {

namespace counters {
inline constexpr std::string_view kV1MalformedJson = "dectris_v1_malformed_json";
inline constexpr std::string_view kV1WrongPartCount = "dectris_v1_wrong_part_count";
inline constexpr std::string_view kV1UnknownHtype = "dectris_v1_unknown_htype";
inline constexpr std::string_view kV2MalformedCbor = "dectris_v2_malformed_cbor";
inline constexpr std::string_view kV2WrongType = "dectris_v2_wrong_type";
inline constexpr std::string_view kV2UnknownType = "dectris_v2_unknown_type";
inline constexpr std::string_view kUnknownEncoding = "dectris_unknown_encoding";
inline constexpr std::string_view kSizeMismatch = "dectris_size_mismatch";
inline constexpr std::string_view kCorruptData = "dectris_corrupt_data";
// Shared with the native protocol, for the same faults.
inline constexpr std::string_view kBadDtype = "frames_bad_dtype";
inline constexpr std::string_view kDtypeMismatch = "frames_dtype_mismatch";
inline constexpr std::string_view kWrongShape = "frames_wrong_shape";
inline constexpr std::string_view kNonFinite = "frames_non_finite";
inline constexpr std::string_view kNegative = "frames_negative";
}  // namespace counters

enum class Protocol { kV1, kV2 };
enum class Encoding { kNone, kLz4, kBitshuffleLz4 };

// The name on the wire: v1 "<", "lz4<", "bs16-lz4<"; v2 "none", "lz4", "bslz4".
std::string encoding_name(Protocol protocol, Encoding encoding, PixelType dtype);

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
// v2: one CBOR message.
Status parse_v2(std::span<const std::byte> bytes, Message* message, std::string_view* counter);

// Decompresses and checks an image and widens it into frame->counts (and rows, cols, dtype,
// exposure_s). A detector shape of 0 x 0 and no dtype accept any. The decompressed bytes go
// through a per-thread buffer of at most kMaxFramePixels * 4 bytes, reused across frames.
Status decode_image(const Image& image, int expected_rows, int expected_cols,
                    std::optional<PixelType> expected_dtype, DetectorFrame* frame,
                    std::string_view* counter);

// --- Builders, for the simulated detector --------------------------------------------------

struct SeriesInfo {
  std::uint64_t series_id = 1;
  std::uint64_t number_of_images = 0;  // 0: not known in advance (armed until disarmed)
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kUint16;
  Encoding encoding = Encoding::kBitshuffleLz4;
  std::string header_detail = "basic";  // v1 and v2: basic, all or none
  double count_time_s = 1e-3;
  double incident_energy_eV = 0.0;
};

using Part = std::vector<std::byte>;

// Compresses raw little-endian pixels for the wire (v1 or v2 framing of `encoding`).
Status encode_pixels(Protocol protocol, Encoding encoding, PixelType dtype,
                     std::span<const std::byte> raw, std::vector<std::byte>* out);

std::vector<Part> v1_series_header(const SeriesInfo& series);
// `blob` is the output of encode_pixels for v1. Times are nanoseconds since the series start.
std::vector<Part> v1_image(const SeriesInfo& series, std::uint64_t frame_id,
                           std::span<const std::byte> blob, std::uint64_t start_ns,
                           std::uint64_t stop_ns);
std::vector<Part> v1_series_end(std::uint64_t series_id);

Part v2_start(const SeriesInfo& series);
Part v2_image(const SeriesInfo& series, std::uint64_t image_id, std::span<const std::byte> blob,
              std::uint64_t start_ns, std::uint64_t stop_ns);
Part v2_end(std::uint64_t series_id);

// MD5 of data as 32 lowercase hex digits (the v1 image "hash").
std::string md5_hex(std::span<const std::byte> data);

}  // namespace ptypilot::dectris
