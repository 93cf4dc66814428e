// DECTRIS stream v1 (JSON parts and binary blobs; dectris_stream.hpp): parse_v1.
#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dectris_parse_internal.hpp"
#include "ptypilot/wire/dectris_parse.hpp"

namespace ptypilot::dectris {

namespace {

using namespace detail;
using nlohmann::json;

// JSON parts that carry metadata are small; a larger or deeper one is refused before parsing.
constexpr std::size_t kMaxJsonPartBytes = 1 << 20;

std::optional<PixelType> pixel_type_named(std::string_view name) {
  if (name == "uint8") return PixelType::kUint8;
  if (name == "uint16") return PixelType::kUint16;
  if (name == "uint32") return PixelType::kUint32;
  if (name == "float32") return PixelType::kFloat32;
  return std::nullopt;
}

// Nesting depth of a JSON text, strings skipped, so that a hostile part cannot make the parser
// or the destructor of its result recurse deeply.
bool nesting_within(std::span<const std::byte> text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::byte b : text) {
    const char c = static_cast<char>(b);
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Status parse_json_object(std::span<const std::byte> part, std::size_t index, json* out,
                         std::string_view* counter) {
  const std::string where = "part " + std::to_string(index + 1);
  if (part.size() > kMaxJsonPartBytes)
    return fail(counter, counters::kDectrisV1MalformedJson,
                where + " is " + std::to_string(part.size()) +
                    " bytes, more than the 1 MiB a JSON header part may have");
  if (!nesting_within(part, kMaxNesting))
    return fail(counter, counters::kDectrisV1MalformedJson,
                where + " nests deeper than " + std::to_string(kMaxNesting) + " levels");
  const char* begin = reinterpret_cast<const char*>(part.data());
  *out = json::parse(begin, begin + part.size(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded())
    return fail(counter, counters::kDectrisV1MalformedJson,
                where + " (" + std::to_string(part.size()) +
                    " bytes) is not valid JSON; is the sender speaking DECTRIS stream v1, and "
                    "is the message complete?");
  if (!out->is_object())
    return fail(counter, counters::kDectrisV1MalformedJson,
                where + " is JSON " + std::string(out->type_name()) + ", not an object");
  return Status::Ok();
}

bool get_uint(const json& j, const char* key, std::uint64_t* value) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_number_unsigned()) {
    *value = it->get<std::uint64_t>();
    return true;
  }
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    *value = static_cast<std::uint64_t>(it->get<std::int64_t>());
    return true;
  }
  return false;
}

bool get_string(const json& j, const char* key, std::string* value) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  *value = it->get<std::string>();
  return true;
}

Status require_uint(const json& j, const char* key, const std::string& what, std::uint64_t* value,
                    std::string_view* counter) {
  if (get_uint(j, key, value)) return Status::Ok();
  return fail(counter, counters::kDectrisV1MalformedJson,
              what + " has no non-negative integer \"" + key + "\"");
}

// "<", "lz4<", "bs8-lz4<", "bs16-lz4<", "bs32-lz4<": the encoding and, for bitshuffle, the
// element width it was made with, which must be the pixel type's.
Status parse_v1_encoding(const std::string& name, PixelType dtype, Image* image,
                         std::string_view* counter) {
  if (name == "<") {
    image->encoding = Encoding::kNone;
    return Status::Ok();
  }
  if (name == "lz4<") {
    image->encoding = Encoding::kLz4;
    image->hdf5_framing = false;
    return Status::Ok();
  }
  for (int bits : {8, 16, 32}) {
    if (name == "bs" + std::to_string(bits) + "-lz4<") {
      if (static_cast<std::size_t>(bits / 8) != pixel_size(dtype))
        return fail(counter, counters::kDectrisUnknownEncoding,
                    "encoding '" + name + "' shuffles " + std::to_string(bits) +
                        "-bit elements, but the image's type is " + to_string(dtype));
      image->encoding = Encoding::kBitshuffleLz4;
      image->hdf5_framing = true;
      return Status::Ok();
    }
  }
  return fail(counter, counters::kDectrisUnknownEncoding,
              "unknown encoding '" + name +
                  "'; known: <, lz4<, bs8-lz4<, bs16-lz4<, bs32-lz4< (little-endian only)");
}

Status parse_v1_image(std::span<const std::span<const std::byte>> parts, const json& first,
                      Message* message, std::string_view* counter) {
  if (parts.size() != 4 && parts.size() != 5)
    return fail(counter, counters::kDectrisV1WrongPartCount,
                "an image message (dimage-1.0) has " + std::to_string(parts.size()) +
                    " parts; expected 4 (dimage, dimage_d, blob, dconfig) plus an optional "
                    "appendix");
  Image& image = message->image;
  image = Image{};
  if (Status s = require_uint(first, "series", "dimage-1.0", &image.series_id, counter); !s.ok())
    return s;
  if (Status s = require_uint(first, "frame", "dimage-1.0", &image.frame_id, counter); !s.ok())
    return s;
  message->kind = MessageKind::kImage;
  message->series_id = image.series_id;

  json info;
  if (Status s = parse_json_object(parts[1], 1, &info, counter); !s.ok()) return s;
  std::string htype;
  if (!get_string(info, "htype", &htype) || htype != "dimage_d-1.0")
    return fail(counter, counters::kDectrisV1UnknownHtype,
                "part 2 of an image message has htype '" + htype + "'; expected dimage_d-1.0");
  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array() || shape->size() != 2 ||
      !(*shape)[0].is_number_unsigned() || !(*shape)[1].is_number_unsigned())
    return fail(counter, counters::kDectrisV1MalformedJson,
                "dimage_d-1.0 has no \"shape\" [width, height] of two non-negative integers");
  const std::uint64_t cols = (*shape)[0].get<std::uint64_t>();
  const std::uint64_t rows = (*shape)[1].get<std::uint64_t>();
  if (Status s = check_shape(rows, cols, counter); !s.ok()) return s;
  image.rows = static_cast<int>(rows);
  image.cols = static_cast<int>(cols);
  std::string type, encoding;
  if (!get_string(info, "type", &type))
    return fail(counter, counters::kDectrisV1MalformedJson, "dimage_d-1.0 has no \"type\" string");
  const std::optional<PixelType> dtype = pixel_type_named(type);
  if (!dtype)
    return fail(counter, counters::kFramesBadDtype,
                "image type '" + type + "' is not uint8, uint16, uint32 or float32");
  image.dtype = *dtype;
  if (!get_string(info, "encoding", &encoding))
    return fail(counter, counters::kDectrisV1MalformedJson,
                "dimage_d-1.0 has no \"encoding\" string");
  if (Status s = parse_v1_encoding(encoding, *dtype, &image, counter); !s.ok()) return s;
  image.data = parts[2];
  std::uint64_t size = 0;
  if (get_uint(info, "size", &size) && size != parts[2].size())
    return fail(counter, counters::kDectrisSizeMismatch,
                "dimage_d-1.0 says the blob is " + std::to_string(size) + " bytes, but part 3 is " +
                    std::to_string(parts[2].size()));

  json times;
  if (Status s = parse_json_object(parts[3], 3, &times, counter); !s.ok()) return s;
  if (!get_string(times, "htype", &htype) || htype != "dconfig-1.0")
    return fail(counter, counters::kDectrisV1UnknownHtype,
                "part 4 of an image message has htype '" + htype + "'; expected dconfig-1.0");
  std::uint64_t real_time_ns = 0;
  if (get_uint(times, "real_time", &real_time_ns)) image.exposure_s = real_time_ns * 1e-9;
  return Status::Ok();
}

// dpixelmask-1.0: {"shape": [width, height], "type": "uint32"} and the mask's little-endian bytes
// in the next part; nonzero marks a bad pixel.
Status parse_pixel_mask(const json& info, std::span<const std::byte> blob, Message* message,
                        std::string_view* counter) {
  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array() || shape->size() != 2 ||
      !(*shape)[0].is_number_unsigned() || !(*shape)[1].is_number_unsigned())
    return fail(counter, counters::kDectrisV1MalformedJson,
                "dpixelmask-1.0 has no \"shape\" [width, height] of two non-negative integers");
  const std::uint64_t cols = (*shape)[0].get<std::uint64_t>();
  const std::uint64_t rows = (*shape)[1].get<std::uint64_t>();
  if (Status s = check_shape(rows, cols, counter); !s.ok()) return s;
  std::string type = "uint32";
  get_string(info, "type", &type);
  if (type != "uint32")
    return fail(counter, counters::kFramesBadDtype,
                "dpixelmask-1.0 of type '" + type + "'; a DECTRIS pixel mask is uint32");
  if (blob.size() != rows * cols * 4)
    return fail(counter, counters::kDectrisSizeMismatch,
                "the pixel mask is " + std::to_string(blob.size()) + " bytes; its shape " +
                    std::to_string(cols) + " x " + std::to_string(rows) +
                    " (width x height) of uint32 needs " + std::to_string(rows * cols * 4));
  message->pixel_mask.resize(rows * cols);
  for (std::size_t i = 0; i < rows * cols; ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(blob.data()) + 4 * i;
    message->pixel_mask[i] = std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 |
                             std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24;
  }
  message->pixel_mask_rows = static_cast<int>(rows);
  message->pixel_mask_cols = static_cast<int>(cols);
  return Status::Ok();
}

std::size_t header_parts_for(const std::string& detail) {
  if (detail == "none") return 1;
  if (detail == "basic") return 2;
  if (detail == "all") return 8;
  return 0;
}

Status parse_v1_header(std::span<const std::span<const std::byte>> parts, const json& first,
                       Message* message, std::string_view* counter) {
  if (Status s = require_uint(first, "series", "dheader-1.0", &message->series_id, counter);
      !s.ok())
    return s;
  if (!get_string(first, "header_detail", &message->header_detail))
    return fail(counter, counters::kDectrisV1MalformedJson,
                "dheader-1.0 has no \"header_detail\" string");
  const std::string& detail = message->header_detail;
  const std::size_t expected = header_parts_for(detail);
  if (expected == 0)
    return fail(counter, counters::kDectrisV1MalformedJson,
                "header_detail '" + detail + "' is not all, basic or none");
  if (parts.size() != expected && parts.size() != expected + 1)
    return fail(counter, counters::kDectrisV1WrongPartCount,
                "a series header with header_detail " + detail + " has " +
                    std::to_string(parts.size()) + " parts; expected " + std::to_string(expected) +
                    " plus an optional appendix");
  json part;
  message->pixel_mask.clear();
  message->pixel_mask_rows = message->pixel_mask_cols = 0;
  if (expected >= 2)
    if (Status s = parse_json_object(parts[1], 1, &part, counter); !s.ok()) return s;
  if (expected == 8) {
    static constexpr std::array<const char*, 3> kTables = {"dflatfield-1.0", "dpixelmask-1.0",
                                                           "dcountrate_table-1.0"};
    for (std::size_t t = 0; t < kTables.size(); ++t) {
      const std::size_t index = 2 + 2 * t;
      if (Status s = parse_json_object(parts[index], index, &part, counter); !s.ok()) return s;
      std::string htype;
      if (!get_string(part, "htype", &htype) || htype != kTables[t])
        return fail(counter, counters::kDectrisV1UnknownHtype,
                    "part " + std::to_string(index + 1) + " of a series header has htype '" +
                        htype + "'; expected " + kTables[t]);
      if (t == 1)
        if (Status s = parse_pixel_mask(part, parts[index + 1], message, counter); !s.ok())
          return s;
    }
  }
  message->kind = MessageKind::kSeriesStart;
  return Status::Ok();
}

}  // namespace

Status parse_v1(std::span<const std::span<const std::byte>> parts, Message* message,
                std::string_view* counter) {
  if (parts.empty())
    return fail(counter, counters::kDectrisV1WrongPartCount, "an empty message (no parts)");
  json first;
  if (Status s = parse_json_object(parts[0], 0, &first, counter); !s.ok()) return s;
  std::string htype;
  if (!get_string(first, "htype", &htype))
    return fail(counter, counters::kDectrisV1UnknownHtype, "part 1 has no \"htype\" string");
  if (htype == "dimage-1.0") return parse_v1_image(parts, first, message, counter);
  if (htype == "dheader-1.0") return parse_v1_header(parts, first, message, counter);
  if (htype == "dseries_end-1.0") {
    if (parts.size() != 1)
      return fail(counter, counters::kDectrisV1WrongPartCount,
                  "a series end (dseries_end-1.0) has " + std::to_string(parts.size()) +
                      " parts; expected 1");
    if (Status s = require_uint(first, "series", "dseries_end-1.0", &message->series_id, counter);
        !s.ok())
      return s;
    message->kind = MessageKind::kSeriesEnd;
    return Status::Ok();
  }
  return fail(counter, counters::kDectrisV1UnknownHtype,
              "unknown htype '" + htype.substr(0, 64) +
                  "' in part 1; expected dheader-1.0, dimage-1.0 or dseries_end-1.0");
}

std::size_t v1_message_parts(std::span<const std::byte> first) {
  json j;
  std::string_view ignored;
  std::string htype, detail;
  if (!parse_json_object(first, 0, &j, &ignored).ok() || !get_string(j, "htype", &htype)) return 0;
  if (htype == "dimage-1.0") return 4;
  if (htype == "dseries_end-1.0") return 1;
  if (htype == "dheader-1.0" && get_string(j, "header_detail", &detail))
    return header_parts_for(detail);
  return 0;
}

bool v1_starts_message(std::span<const std::byte> part) {
  // A blob is not JSON: look at its first byte before parsing anything.
  std::size_t i = 0;
  while (i < part.size() && std::isspace(static_cast<unsigned char>(part[i]))) ++i;
  if (i == part.size() || static_cast<char>(part[i]) != '{') return false;
  json j;
  std::string_view ignored;
  std::string htype;
  if (!parse_json_object(part, 0, &j, &ignored).ok() || !get_string(j, "htype", &htype))
    return false;
  static constexpr std::array<std::string_view, 5> kLaterParts = {
      "dimage_d-1.0", "dconfig-1.0", "dflatfield-1.0", "dpixelmask-1.0", "dcountrate_table-1.0"};
  return std::find(kLaterParts.begin(), kLaterParts.end(), htype) == kLaterParts.end();
}

}  // namespace ptypilot::dectris
