// The simulated detector's end of the DECTRIS streams (dectris_build.hpp): v1 and v2 messages.
#include "ptypilot/wire/dectris_build.hpp"

#include <cbor.h>

#include <algorithm>
#include <bit>
#include <boost/uuid/detail/md5.hpp>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "dectris_v2_tags.hpp"
#include "ptypilot/wire/compression.hpp"

namespace ptypilot::dectris {

static_assert(std::endian::native == std::endian::little,
              "DECTRIS pixels are little-endian and are written with memcpy here");

namespace {

using namespace detail;
using nlohmann::json;

constexpr const char* kChannel = "threshold_1";

class CborWriter {
 public:
  explicit CborWriter(Part* out) : out_(*out) {}
  void uint(std::uint64_t v) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_uint(v, b, n); }); }
  void tag(std::uint64_t v) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_tag(v, b, n); }); }
  void map(std::size_t size) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_map_start(size, b, n); }); }
  void array(std::size_t size) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_array_start(size, b, n); }); }
  void boolean(bool v) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_bool(v, b, n); }); }
  void number(double v) { head([&](unsigned char* b, std::size_t n) { return cbor_encode_double(v, b, n); }); }
  void text(std::string_view s) {
    head([&](unsigned char* b, std::size_t n) { return cbor_encode_string_start(s.size(), b, n); });
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out_.insert(out_.end(), p, p + s.size());
  }
  void bytes(std::span<const std::byte> data) {
    head([&](unsigned char* b, std::size_t n) { return cbor_encode_bytestring_start(data.size(), b, n); });
    out_.insert(out_.end(), data.begin(), data.end());
  }
  void key(std::string_view s) { text(s); }
  void rational(std::uint64_t numerator, std::uint64_t denominator) {
    array(2);
    uint(numerator);
    uint(denominator);
  }

 private:
  template <typename Encode>
  void head(Encode encode) {
    const std::size_t at = out_.size();
    out_.resize(at + 9);  // the longest item head
    const std::size_t written = encode(reinterpret_cast<unsigned char*>(out_.data() + at), 9);
    out_.resize(at + written);
  }
  Part& out_;
};

std::string iso8601_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string unique_id(std::uint64_t series_id) { return "ptypilot-sim-series-" + std::to_string(series_id); }

Part json_part(const json& j) {
  const std::string text = j.dump();
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return Part(p, p + text.size());
}

json detector_config(const SeriesInfo& s) {
  const int bits = static_cast<int>(pixel_size(s.dtype) * 8);
  return {{"auto_summation", true},
          {"beam_center_x", s.cols / 2.0},
          {"beam_center_y", s.rows / 2.0},
          {"bit_depth_image", bits},
          {"bit_depth_readout", bits},
          {"compression", encoding_name(Protocol::kV2, s.encoding, s.dtype)},
          {"count_time", s.count_time_s},
          {"countrate_correction_applied", false},
          {"description", "ptypilot sim-detector (a simulated DECTRIS detector)"},
          {"detector_number", "ptypilot-sim"},
          {"flatfield_correction_applied", false},
          {"frame_time", s.count_time_s},
          {"incident_energy", s.incident_energy_eV},
          {"nimages", 1},
          {"ntrigger", s.number_of_images},
          {"pixel_mask_applied", false},
          {"sensor_material", "Si"},
          {"sensor_thickness", 4.5e-4},
          {"software_version", PTYPILOT_VERSION},
          {"trigger_mode", "exts"},
          {"x_pixel_size", 7.5e-5},
          {"x_pixels_in_detector", s.cols},
          {"y_pixel_size", 7.5e-5},
          {"y_pixels_in_detector", s.rows}};
}

template <typename T>
Part filled(std::size_t n, T value) {
  Part out(n * sizeof(T));
  for (std::size_t i = 0; i < n; ++i) std::memcpy(out.data() + i * sizeof(T), &value, sizeof(T));
  return out;
}

}  // namespace

Status encode_pixels(Protocol protocol, Encoding encoding, PixelType dtype,
                     std::span<const std::byte> raw, std::vector<std::byte>* out) {
  switch (encoding) {
    case Encoding::kNone:
      out->assign(raw.begin(), raw.end());
      return Status::Ok();
    case Encoding::kLz4:
      return protocol == Protocol::kV1 ? compression::encode_lz4(raw, out)
                                       : compression::encode_lz4_hdf5(raw, out);
    case Encoding::kBitshuffleLz4:
      return compression::encode_bitshuffle_lz4(raw, pixel_size(dtype), out);
  }
  return invalid_argument("unknown encoding");
}

// The pixel mask's little-endian uint32 bytes: s.pixel_mask, or n zeros.
static Part mask_part(const SeriesInfo& s, std::size_t n) {
  if (s.pixel_mask.empty()) return filled<std::uint32_t>(n, 0);
  Part out(s.pixel_mask.size() * 4);
  for (std::size_t i = 0; i < s.pixel_mask.size(); ++i)
    for (int b = 0; b < 4; ++b)
      out[4 * i + b] = static_cast<std::byte>((s.pixel_mask[i] >> (8 * b)) & 0xff);
  return out;
}

std::vector<Part> v1_series_header(const SeriesInfo& s) {
  std::vector<Part> parts;
  parts.push_back(json_part(
      {{"htype", "dheader-1.0"}, {"series", s.series_id}, {"header_detail", s.header_detail}}));
  if (s.header_detail == "none") return parts;
  parts.push_back(json_part(detector_config(s)));
  if (s.header_detail != "all") return parts;
  const std::size_t n = static_cast<std::size_t>(s.rows) * static_cast<std::size_t>(s.cols);
  parts.push_back(json_part({{"htype", "dflatfield-1.0"}, {"shape", {s.cols, s.rows}}, {"type", "float32"}}));
  parts.push_back(filled<float>(n, 1.0f));
  parts.push_back(json_part({{"htype", "dpixelmask-1.0"}, {"shape", {s.cols, s.rows}}, {"type", "uint32"}}));
  parts.push_back(mask_part(s, n));
  // A count-rate table is [2, N]: the measured rate, then the corrected one; ours is identity.
  constexpr int kTableLength = 256;
  Part table(2 * kTableLength * sizeof(float));
  for (int i = 0; i < kTableLength; ++i) {
    const float v = static_cast<float>(i);
    std::memcpy(table.data() + i * sizeof(float), &v, sizeof v);
    std::memcpy(table.data() + (kTableLength + i) * sizeof(float), &v, sizeof v);
  }
  parts.push_back(json_part({{"htype", "dcountrate_table-1.0"}, {"shape", {kTableLength, 2}}, {"type", "float32"}}));
  parts.push_back(std::move(table));
  return parts;
}

std::vector<Part> v1_image(const SeriesInfo& s, std::uint64_t frame_id,
                           std::span<const std::byte> blob, std::uint64_t start_ns,
                           std::uint64_t stop_ns) {
  std::vector<Part> parts;
  parts.reserve(4);
  parts.push_back(json_part({{"htype", "dimage-1.0"}, {"series", s.series_id}, {"frame", frame_id},
                             {"hash", md5_hex(blob)}}));
  parts.push_back(json_part({{"htype", "dimage_d-1.0"},
                             {"shape", {s.cols, s.rows}},
                             {"type", to_string(s.dtype)},
                             {"encoding", encoding_name(Protocol::kV1, s.encoding, s.dtype)},
                             {"size", blob.size()}}));
  parts.emplace_back(blob.begin(), blob.end());
  parts.push_back(json_part({{"htype", "dconfig-1.0"}, {"start_time", start_ns}, {"stop_time", stop_ns},
                             {"real_time", stop_ns - start_ns}}));
  return parts;
}

std::vector<Part> v1_series_end(std::uint64_t series_id) {
  std::vector<Part> parts;
  parts.push_back(json_part({{"htype", "dseries_end-1.0"}, {"series", series_id}}));
  return parts;
}

namespace {

void write_typed_image(CborWriter& w, PixelType dtype, int rows, int cols, Encoding encoding,
                       std::span<const std::byte> blob) {
  w.tag(kTagMultiDimArray);
  w.array(2);
  w.array(2);
  w.uint(static_cast<std::uint64_t>(rows));
  w.uint(static_cast<std::uint64_t>(cols));
  w.tag(tag_of_pixel_type(dtype));
  if (encoding == Encoding::kNone) {
    w.bytes(blob);
    return;
  }
  w.tag(kTagDectrisCompression);
  w.array(3);
  w.text(encoding_name(Protocol::kV2, encoding, dtype));
  w.uint(encoding == Encoding::kBitshuffleLz4 ? pixel_size(dtype) : 0);
  w.bytes(blob);
}

}  // namespace

Part v2_start(const SeriesInfo& s) {
  Part out;
  CborWriter w(&out);
  const bool all = s.header_detail == "all";
  w.tag(kTagSelfDescribed);
  w.map(all ? 26 : 24);
  w.key("type"), w.text("start");
  w.key("series_id"), w.uint(s.series_id);
  w.key("series_unique_id"), w.text(unique_id(s.series_id));
  w.key("arm_date"), w.tag(kTagDateTime), w.text(iso8601_now());
  w.key("beam_center_x"), w.number(s.cols / 2.0);
  w.key("beam_center_y"), w.number(s.rows / 2.0);
  w.key("channels"), w.array(1), w.text(kChannel);
  w.key("count_time"), w.number(s.count_time_s);
  w.key("countrate_correction_enabled"), w.boolean(false);
  w.key("detector_description"), w.text("ptypilot sim-detector (a simulated DECTRIS detector)");
  w.key("detector_serial_number"), w.text("ptypilot-sim");
  w.key("flatfield_enabled"), w.boolean(false);
  w.key("frame_time"), w.number(s.count_time_s);
  w.key("image_size_x"), w.uint(static_cast<std::uint64_t>(s.cols));
  w.key("image_size_y"), w.uint(static_cast<std::uint64_t>(s.rows));
  w.key("incident_energy"), w.number(s.incident_energy_eV);
  w.key("number_of_images"), w.uint(s.number_of_images);
  w.key("pixel_mask_enabled"), w.boolean(false);
  w.key("pixel_size_x"), w.number(7.5e-5);
  w.key("pixel_size_y"), w.number(7.5e-5);
  w.key("saturation_value"), w.uint((1ULL << (8 * std::min<std::size_t>(pixel_size(s.dtype), 4))) - 2);
  w.key("sensor_material"), w.text("Si");
  w.key("sensor_thickness"), w.number(4.5e-4);
  w.key("threshold_energy"), w.map(1), w.key(kChannel), w.number(s.incident_energy_eV / 2);
  if (all) {
    const std::size_t n = static_cast<std::size_t>(s.rows) * static_cast<std::size_t>(s.cols);
    w.key("flatfield"), w.map(1), w.key(kChannel);
    write_typed_image(w, PixelType::kFloat32, s.rows, s.cols, Encoding::kNone, filled<float>(n, 1.0f));
    w.key("pixel_mask"), w.map(1), w.key(kChannel);
    write_typed_image(w, PixelType::kUint32, s.rows, s.cols, Encoding::kNone, mask_part(s, n));
  }
  return out;
}

Part v2_image(const SeriesInfo& s, std::uint64_t image_id, std::span<const std::byte> blob,
              std::uint64_t start_ns, std::uint64_t stop_ns) {
  constexpr std::uint64_t kTimeBase = 1'000'000'000;  // ns
  Part out;
  out.reserve(blob.size() + 256);
  CborWriter w(&out);
  w.tag(kTagSelfDescribed);
  w.map(9);
  w.key("type"), w.text("image");
  w.key("series_id"), w.uint(s.series_id);
  w.key("series_unique_id"), w.text(unique_id(s.series_id));
  w.key("image_id"), w.uint(image_id);
  w.key("real_time"), w.rational(stop_ns - start_ns, kTimeBase);
  w.key("series_date"), w.tag(kTagDateTime), w.text(iso8601_now());
  w.key("start_time"), w.rational(start_ns, kTimeBase);
  w.key("stop_time"), w.rational(stop_ns, kTimeBase);
  w.key("data"), w.map(1), w.key(kChannel);
  write_typed_image(w, s.dtype, s.rows, s.cols, s.encoding, blob);
  return out;
}

Part v2_end(std::uint64_t series_id) {
  Part out;
  CborWriter w(&out);
  w.tag(kTagSelfDescribed);
  w.map(3);
  w.key("type"), w.text("end");
  w.key("series_id"), w.uint(series_id);
  w.key("series_unique_id"), w.text(unique_id(series_id));
  return out;
}

// --- MD5 (RFC 1321), Boost's -------------------------------------------------------------------

std::string md5_hex(std::span<const std::byte> data) {
  boost::uuids::detail::md5 hash;
  hash.process_bytes(data.data(), data.size());
  boost::uuids::detail::md5::digest_type digest;
  hash.get_digest(digest);
  // The digest's 16 bytes in RFC 1321 order. Boost 1.86 gives them as bytes; before, as four
  // unsigned ints whose values hold them most significant byte first (Boost 1.71 to 1.85, unless
  // BOOST_UUID_COMPAT_PRE_1_71_MD5 is defined, which nothing here does).
  static_assert(sizeof(digest) == 16 && (sizeof(digest[0]) == 1 || sizeof(digest[0]) == 4));
  unsigned char bytes[16];
  if constexpr (sizeof(digest[0]) == 1) {
    std::memcpy(bytes, digest, 16);
  } else {
    for (int word = 0; word < 4; ++word)
      for (int byte = 0; byte < 4; ++byte)
        bytes[4 * word + byte] = static_cast<unsigned char>(digest[word] >> (24 - 8 * byte));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(32, '0');
  for (int i = 0; i < 16; ++i) {
    hex[2 * i] = kHex[bytes[i] >> 4];
    hex[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return hex;
}

}  // namespace ptypilot::dectris
