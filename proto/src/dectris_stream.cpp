#include "ptypilot/wire/dectris_stream.hpp"

#include <cbor.h>

#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "ptypilot/wire/compression.hpp"

namespace ptypilot::dectris {

static_assert(std::endian::native == std::endian::little,
              "DECTRIS pixels are little-endian and are read with memcpy here");

namespace {

using nlohmann::json;

// Larger images are refused as frames_wrong_shape: no detector sends them, and a lying header
// must not make us allocate gigabytes. The same limit as the native protocol's.
constexpr std::uint64_t kMaxImagePixels = 4096ULL * 4096ULL;
// JSON parts that carry metadata are small; a larger or deeper one is refused before parsing.
constexpr std::size_t kMaxJsonPartBytes = 1 << 20;
constexpr int kMaxNesting = 32;

constexpr std::uint64_t kTagSelfDescribed = 55799;
constexpr std::uint64_t kTagDateTime = 0;
constexpr std::uint64_t kTagMultiDimArray = 40;
constexpr std::uint64_t kTagDectrisCompression = 56500;
constexpr std::uint64_t kTagUint8 = 64;
constexpr std::uint64_t kTagUint16Le = 69;
constexpr std::uint64_t kTagUint32Le = 70;
constexpr std::uint64_t kTagFloat32Le = 85;
constexpr const char* kChannel = "threshold_1";

Status fail(std::string_view* counter, std::string_view name, std::string message) {
  *counter = name;
  return invalid_argument(std::move(message));
}

std::optional<PixelType> pixel_type_named(std::string_view name) {
  if (name == "uint8") return PixelType::kUint8;
  if (name == "uint16") return PixelType::kUint16;
  if (name == "uint32") return PixelType::kUint32;
  if (name == "float32") return PixelType::kFloat32;
  return std::nullopt;
}

// --- JSON (v1) ----------------------------------------------------------------------------

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
    return fail(counter, counters::kV1MalformedJson,
                where + " is " + std::to_string(part.size()) +
                    " bytes, more than the 1 MiB a JSON header part may have");
  if (!nesting_within(part, kMaxNesting))
    return fail(counter, counters::kV1MalformedJson,
                where + " nests deeper than " + std::to_string(kMaxNesting) + " levels");
  const char* begin = reinterpret_cast<const char*>(part.data());
  *out = json::parse(begin, begin + part.size(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded())
    return fail(counter, counters::kV1MalformedJson,
                where + " (" + std::to_string(part.size()) +
                    " bytes) is not valid JSON; is the sender speaking DECTRIS stream v1, and "
                    "is the message complete?");
  if (!out->is_object())
    return fail(counter, counters::kV1MalformedJson,
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
  return fail(counter, counters::kV1MalformedJson,
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
        return fail(counter, counters::kUnknownEncoding,
                    "encoding '" + name + "' shuffles " + std::to_string(bits) +
                        "-bit elements, but the image's type is " + to_string(dtype));
      image->encoding = Encoding::kBitshuffleLz4;
      image->hdf5_framing = true;
      return Status::Ok();
    }
  }
  return fail(counter, counters::kUnknownEncoding,
              "unknown encoding '" + name +
                  "'; known: <, lz4<, bs8-lz4<, bs16-lz4<, bs32-lz4< (little-endian only)");
}

Status check_shape(std::uint64_t rows, std::uint64_t cols, std::string_view* counter) {
  if (rows == 0 || cols == 0 || rows > kMaxImagePixels || cols > kMaxImagePixels ||
      rows * cols > kMaxImagePixels)
    return fail(counter, counters::kWrongShape,
                "image shape " + std::to_string(rows) + " x " + std::to_string(cols) +
                    " (rows x cols) is empty or larger than 4096 x 4096 pixels");
  return Status::Ok();
}

Status parse_v1_image(std::span<const std::span<const std::byte>> parts, const json& first,
                      Message* message, std::string_view* counter) {
  if (parts.size() != 4 && parts.size() != 5)
    return fail(counter, counters::kV1WrongPartCount,
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
    return fail(counter, counters::kV1UnknownHtype,
                "part 2 of an image message has htype '" + htype + "'; expected dimage_d-1.0");
  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array() || shape->size() != 2 ||
      !(*shape)[0].is_number_unsigned() || !(*shape)[1].is_number_unsigned())
    return fail(counter, counters::kV1MalformedJson,
                "dimage_d-1.0 has no \"shape\" [width, height] of two non-negative integers");
  const std::uint64_t cols = (*shape)[0].get<std::uint64_t>();
  const std::uint64_t rows = (*shape)[1].get<std::uint64_t>();
  if (Status s = check_shape(rows, cols, counter); !s.ok()) return s;
  image.rows = static_cast<int>(rows);
  image.cols = static_cast<int>(cols);
  std::string type, encoding;
  if (!get_string(info, "type", &type))
    return fail(counter, counters::kV1MalformedJson, "dimage_d-1.0 has no \"type\" string");
  const std::optional<PixelType> dtype = pixel_type_named(type);
  if (!dtype)
    return fail(counter, counters::kBadDtype,
                "image type '" + type + "' is not uint8, uint16, uint32 or float32");
  image.dtype = *dtype;
  if (!get_string(info, "encoding", &encoding))
    return fail(counter, counters::kV1MalformedJson, "dimage_d-1.0 has no \"encoding\" string");
  if (Status s = parse_v1_encoding(encoding, *dtype, &image, counter); !s.ok()) return s;
  image.data = parts[2];
  std::uint64_t size = 0;
  if (get_uint(info, "size", &size) && size != parts[2].size())
    return fail(counter, counters::kSizeMismatch,
                "dimage_d-1.0 says the blob is " + std::to_string(size) + " bytes, but part 3 is " +
                    std::to_string(parts[2].size()));

  json times;
  if (Status s = parse_json_object(parts[3], 3, &times, counter); !s.ok()) return s;
  if (!get_string(times, "htype", &htype) || htype != "dconfig-1.0")
    return fail(counter, counters::kV1UnknownHtype,
                "part 4 of an image message has htype '" + htype + "'; expected dconfig-1.0");
  std::uint64_t real_time_ns = 0;
  if (get_uint(times, "real_time", &real_time_ns)) image.exposure_s = real_time_ns * 1e-9;
  return Status::Ok();
}

Status parse_v1_header(std::span<const std::span<const std::byte>> parts, const json& first,
                       Message* message, std::string_view* counter) {
  if (Status s = require_uint(first, "series", "dheader-1.0", &message->series_id, counter);
      !s.ok())
    return s;
  if (!get_string(first, "header_detail", &message->header_detail))
    return fail(counter, counters::kV1MalformedJson, "dheader-1.0 has no \"header_detail\" string");
  const std::string& detail = message->header_detail;
  std::size_t expected = 0;
  if (detail == "none") expected = 1;
  else if (detail == "basic") expected = 2;
  else if (detail == "all") expected = 8;
  else
    return fail(counter, counters::kV1MalformedJson,
                "header_detail '" + detail + "' is not all, basic or none");
  if (parts.size() != expected && parts.size() != expected + 1)
    return fail(counter, counters::kV1WrongPartCount,
                "a series header with header_detail " + detail + " has " +
                    std::to_string(parts.size()) + " parts; expected " + std::to_string(expected) +
                    " plus an optional appendix");
  json part;
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
        return fail(counter, counters::kV1UnknownHtype,
                    "part " + std::to_string(index + 1) + " of a series header has htype '" +
                        htype + "'; expected " + kTables[t]);
    }
  }
  message->kind = MessageKind::kSeriesStart;
  return Status::Ok();
}

// --- CBOR (v2) ------------------------------------------------------------------------------

struct Token {
  enum class Kind { kUint, kNegint, kBytes, kText, kArray, kMap, kTag, kFloat, kBool, kNull,
                    kUndefined, kBreak, kChunkedBytes, kChunkedText };
  Kind kind = Kind::kNull;
  std::uint64_t value = 0;  // integer, tag, or container size
  bool indefinite = false;  // an array or map that ends with a break
  double number = 0.0;
  std::span<const std::byte> bytes;  // byte or text string
};

const char* kind_name(Token::Kind k) {
  switch (k) {
    case Token::Kind::kUint: return "unsigned integer";
    case Token::Kind::kNegint: return "negative integer";
    case Token::Kind::kBytes: return "byte string";
    case Token::Kind::kText: return "text string";
    case Token::Kind::kArray: return "array";
    case Token::Kind::kMap: return "map";
    case Token::Kind::kTag: return "tag";
    case Token::Kind::kFloat: return "float";
    case Token::Kind::kBool: return "boolean";
    case Token::Kind::kNull: return "null";
    case Token::Kind::kUndefined: return "undefined";
    case Token::Kind::kBreak: return "break";
    case Token::Kind::kChunkedBytes: return "chunked byte string";
    case Token::Kind::kChunkedText: return "chunked text string";
  }
  return "item";
}

// libcbor's streaming decoder reads one item head (a whole definite string) per call without
// allocating; these callbacks turn it into a token for the pull parser below.
Token& token_of(void* context) { return *static_cast<Token*>(context); }
void set(void* context, Token::Kind kind, std::uint64_t value = 0, bool indefinite = false) {
  Token& t = token_of(context);
  t = Token{};
  t.kind = kind;
  t.value = value;
  t.indefinite = indefinite;
}
void on_uint8(void* c, uint8_t v) { set(c, Token::Kind::kUint, v); }
void on_uint16(void* c, uint16_t v) { set(c, Token::Kind::kUint, v); }
void on_uint32(void* c, uint32_t v) { set(c, Token::Kind::kUint, v); }
void on_uint64(void* c, uint64_t v) { set(c, Token::Kind::kUint, v); }
void on_negint8(void* c, uint8_t v) { set(c, Token::Kind::kNegint, v); }
void on_negint16(void* c, uint16_t v) { set(c, Token::Kind::kNegint, v); }
void on_negint32(void* c, uint32_t v) { set(c, Token::Kind::kNegint, v); }
void on_negint64(void* c, uint64_t v) { set(c, Token::Kind::kNegint, v); }
void on_bytes(void* c, cbor_data data, uint64_t length) {
  set(c, Token::Kind::kBytes, length);
  token_of(c).bytes = {reinterpret_cast<const std::byte*>(data), static_cast<std::size_t>(length)};
}
void on_text(void* c, cbor_data data, uint64_t length) {
  on_bytes(c, data, length);
  token_of(c).kind = Token::Kind::kText;
}
void on_chunked_bytes(void* c) { set(c, Token::Kind::kChunkedBytes); }
void on_chunked_text(void* c) { set(c, Token::Kind::kChunkedText); }
void on_array(void* c, uint64_t size) { set(c, Token::Kind::kArray, size); }
void on_indef_array(void* c) { set(c, Token::Kind::kArray, 0, true); }
void on_map(void* c, uint64_t size) { set(c, Token::Kind::kMap, size); }
void on_indef_map(void* c) { set(c, Token::Kind::kMap, 0, true); }
void on_tag(void* c, uint64_t tag) { set(c, Token::Kind::kTag, tag); }
void on_float(void* c, float v) {
  set(c, Token::Kind::kFloat);
  token_of(c).number = v;
}
void on_double(void* c, double v) {
  set(c, Token::Kind::kFloat);
  token_of(c).number = v;
}
void on_bool(void* c, bool v) { set(c, Token::Kind::kBool, v ? 1u : 0u); }
void on_null(void* c) { set(c, Token::Kind::kNull); }
void on_undefined(void* c) { set(c, Token::Kind::kUndefined); }
void on_break(void* c) { set(c, Token::Kind::kBreak); }

cbor_callbacks make_callbacks() {
  cbor_callbacks cb = cbor_empty_callbacks;
  cb.uint8 = on_uint8;
  cb.uint16 = on_uint16;
  cb.uint32 = on_uint32;
  cb.uint64 = on_uint64;
  cb.negint8 = on_negint8;
  cb.negint16 = on_negint16;
  cb.negint32 = on_negint32;
  cb.negint64 = on_negint64;
  cb.byte_string = on_bytes;
  cb.byte_string_start = on_chunked_bytes;
  cb.string = on_text;
  cb.string_start = on_chunked_text;
  cb.array_start = on_array;
  cb.indef_array_start = on_indef_array;
  cb.map_start = on_map;
  cb.indef_map_start = on_indef_map;
  cb.tag = on_tag;
  cb.float2 = on_float;
  cb.float4 = on_float;
  cb.float8 = on_double;
  cb.boolean = on_bool;
  cb.null = on_null;
  cb.undefined = on_undefined;
  cb.indef_break = on_break;
  return cb;
}

class CborReader {
 public:
  explicit CborReader(std::span<const std::byte> in) : in_(in) {}

  Status next(Token* token, std::string_view* counter) {
    static const cbor_callbacks callbacks = make_callbacks();
    start_ = pos_;
    if (pos_ >= in_.size())
      return fail(counter, counters::kV2MalformedCbor,
                  "truncated CBOR: the message ends at byte " + std::to_string(pos_) +
                      " in the middle of an item");
    const cbor_decoder_result result =
        cbor_stream_decode(reinterpret_cast<cbor_data>(in_.data() + pos_), in_.size() - pos_,
                           &callbacks, token);
    if (result.status == CBOR_DECODER_NEDATA)
      return fail(counter, counters::kV2MalformedCbor,
                  "truncated CBOR at byte " + std::to_string(pos_) + ": the item needs more than the " +
                      std::to_string(in_.size() - pos_) + " bytes left");
    if (result.status != CBOR_DECODER_FINISHED || result.read == 0)
      return fail(counter, counters::kV2MalformedCbor,
                  "malformed CBOR at byte " + std::to_string(pos_) + " (a reserved or invalid "
                  "item head)");
    pos_ += result.read;
    return Status::Ok();
  }

  std::size_t item_offset() const { return start_; }  // where the last token started
  bool at_end() const { return pos_ == in_.size(); }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  std::size_t start_ = 0;
};

Status wrong_type(std::string_view* counter, const CborReader& r, const std::string& what,
                  const Token& got) {
  return fail(counter, counters::kV2WrongType,
              what + " at byte " + std::to_string(r.item_offset()) + " is a CBOR " +
                  kind_name(got.kind));
}

// Skips one whole item (with its tags and contents).
Status skip_item(CborReader& r, int depth, std::string_view* counter, const Token* first = nullptr) {
  if (depth > kMaxNesting)
    return fail(counter, counters::kV2MalformedCbor,
                "CBOR nested deeper than " + std::to_string(kMaxNesting) + " levels at byte " +
                    std::to_string(r.item_offset()));
  Token t;
  if (first) t = *first;
  else if (Status s = r.next(&t, counter); !s.ok()) return s;
  switch (t.kind) {
    case Token::Kind::kTag:
      return skip_item(r, depth + 1, counter);
    case Token::Kind::kArray:
    case Token::Kind::kMap: {
      const std::uint64_t per_entry = t.kind == Token::Kind::kMap ? 2 : 1;
      if (t.indefinite) {
        while (true) {
          Token element;
          if (Status s = r.next(&element, counter); !s.ok()) return s;
          if (element.kind == Token::Kind::kBreak) return Status::Ok();
          if (Status s = skip_item(r, depth + 1, counter, &element); !s.ok()) return s;
          if (per_entry == 2)
            if (Status s = skip_item(r, depth + 1, counter); !s.ok()) return s;
        }
      }
      // Each item takes at least one byte, so a lying count runs into the end of the input.
      for (std::uint64_t i = 0; i < t.value; ++i)
        for (std::uint64_t k = 0; k < per_entry; ++k)
          if (Status s = skip_item(r, depth + 1, counter); !s.ok()) return s;
      return Status::Ok();
    }
    case Token::Kind::kChunkedBytes:
    case Token::Kind::kChunkedText:
      while (true) {
        Token chunk;
        if (Status s = r.next(&chunk, counter); !s.ok()) return s;
        if (chunk.kind == Token::Kind::kBreak) return Status::Ok();
        if (chunk.kind != Token::Kind::kBytes && chunk.kind != Token::Kind::kText)
          return wrong_type(counter, r, "a chunk of a chunked string", chunk);
      }
    case Token::Kind::kBreak:
      return fail(counter, counters::kV2MalformedCbor,
                  "a CBOR break at byte " + std::to_string(r.item_offset()) +
                      " outside an indefinite-length item");
    default:
      return Status::Ok();
  }
}

// The next value with any tags before it skipped (DECTRIS tags dates, for example), up to a few.
Status next_value(CborReader& r, Token* t, std::string_view* counter) {
  for (int tags = 0;; ++tags) {
    if (Status s = r.next(t, counter); !s.ok()) return s;
    if (t->kind != Token::Kind::kTag) return Status::Ok();
    if (tags > kMaxNesting)
      return fail(counter, counters::kV2MalformedCbor, "more than 32 tags on one CBOR value");
  }
}

Status read_uint(CborReader& r, const char* field, std::uint64_t* value, std::string_view* counter) {
  Token t;
  if (Status s = next_value(r, &t, counter); !s.ok()) return s;
  if (t.kind != Token::Kind::kUint)
    return wrong_type(counter, r, std::string("\"") + field + "\" (an unsigned integer)", t);
  *value = t.value;
  return Status::Ok();
}

Status expect_tag(CborReader& r, std::uint64_t tag, const std::string& what, std::string_view* counter) {
  Token t;
  if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind != Token::Kind::kTag || t.value != tag)
    return fail(counter, counters::kV2WrongType,
                what + " at byte " + std::to_string(r.item_offset()) + " is not tagged " +
                    std::to_string(tag) +
                    (t.kind == Token::Kind::kTag ? " (tag " + std::to_string(t.value) + ")"
                                                 : std::string(" (a ") + kind_name(t.kind) + ")"));
  return Status::Ok();
}

Status expect_array(CborReader& r, std::uint64_t size, const std::string& what, std::string_view* counter) {
  Token t;
  if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind != Token::Kind::kArray || t.indefinite || t.value != size)
    return fail(counter, counters::kV2WrongType,
                what + " at byte " + std::to_string(r.item_offset()) + " is not an array of " +
                    std::to_string(size) + " (a " + kind_name(t.kind) +
                    (t.kind == Token::Kind::kArray && !t.indefinite
                         ? " of " + std::to_string(t.value)
                         : std::string()) +
                    ")");
  return Status::Ok();
}

// real_time: a Rational [numerator, denominator] in seconds.
Status read_rational(CborReader& r, const char* field, double* seconds, std::string_view* counter) {
  if (Status s = expect_array(r, 2, std::string("\"") + field + "\" (a rational)", counter); !s.ok())
    return s;
  std::uint64_t numerator = 0, denominator = 0;
  if (Status s = read_uint(r, field, &numerator, counter); !s.ok()) return s;
  if (Status s = read_uint(r, field, &denominator, counter); !s.ok()) return s;
  *seconds = denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
  return Status::Ok();
}

std::optional<PixelType> pixel_type_of_tag(std::uint64_t tag) {
  switch (tag) {
    case kTagUint8: return PixelType::kUint8;
    case kTagUint16Le: return PixelType::kUint16;
    case kTagUint32Le: return PixelType::kUint32;
    case kTagFloat32Le: return PixelType::kFloat32;
    default: return std::nullopt;
  }
}

std::uint64_t tag_of_pixel_type(PixelType t) {
  switch (t) {
    case PixelType::kUint8: return kTagUint8;
    case PixelType::kUint16: return kTagUint16Le;
    case PixelType::kUint32: return kTagUint32Le;
    case PixelType::kFloat32: return kTagFloat32Le;
  }
  return kTagUint8;
}

// channel value: tag 40 [[rows, cols], typed array]
Status read_channel_image(CborReader& r, Image* image, std::string_view* counter) {
  if (Status s = expect_tag(r, kTagMultiDimArray, "an image channel (a multi-dimensional array)", counter); !s.ok())
    return s;
  if (Status s = expect_array(r, 2, "the multi-dimensional array", counter); !s.ok()) return s;
  if (Status s = expect_array(r, 2, "its dimensions", counter); !s.ok()) return s;
  std::uint64_t rows = 0, cols = 0;
  if (Status s = read_uint(r, "dimensions", &rows, counter); !s.ok()) return s;
  if (Status s = read_uint(r, "dimensions", &cols, counter); !s.ok()) return s;
  if (Status s = check_shape(rows, cols, counter); !s.ok()) return s;
  image->rows = static_cast<int>(rows);
  image->cols = static_cast<int>(cols);

  Token t;
  if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind != Token::Kind::kTag) return wrong_type(counter, r, "the image's typed array", t);
  const std::optional<PixelType> dtype = pixel_type_of_tag(t.value);
  if (!dtype)
    return fail(counter, counters::kBadDtype,
                "typed array tag " + std::to_string(t.value) + " at byte " +
                    std::to_string(r.item_offset()) +
                    " is not one of 64 (uint8), 69 (uint16 LE), 70 (uint32 LE), 85 (float32 LE)");
  image->dtype = *dtype;

  if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind == Token::Kind::kBytes) {
    image->encoding = Encoding::kNone;
    image->data = t.bytes;
    return Status::Ok();
  }
  if (t.kind != Token::Kind::kTag || t.value != kTagDectrisCompression)
    return fail(counter, counters::kV2WrongType,
                "the typed array's content at byte " + std::to_string(r.item_offset()) +
                    " is neither a byte string nor compressed (tag 56500)");
  if (Status s = expect_array(r, 3, "the compressed byte string (tag 56500)", counter); !s.ok())
    return s;
  Token algorithm;
  if (Status s = r.next(&algorithm, counter); !s.ok()) return s;
  if (algorithm.kind != Token::Kind::kText)
    return wrong_type(counter, r, "the compression algorithm", algorithm);
  std::uint64_t element_size = 0;
  if (Status s = read_uint(r, "the compression's element size", &element_size, counter); !s.ok())
    return s;
  Token data;
  if (Status s = r.next(&data, counter); !s.ok()) return s;
  if (data.kind != Token::Kind::kBytes) return wrong_type(counter, r, "the compressed data", data);
  const std::string_view name(reinterpret_cast<const char*>(algorithm.bytes.data()),
                              algorithm.bytes.size());
  if (name == "bslz4") {
    if (element_size != pixel_size(*dtype))
      return fail(counter, counters::kUnknownEncoding,
                  "bslz4 with element size " + std::to_string(element_size) +
                      " on a typed array of " + to_string(*dtype));
    image->encoding = Encoding::kBitshuffleLz4;
  } else if (name == "lz4") {
    image->encoding = Encoding::kLz4;
  } else {
    return fail(counter, counters::kUnknownEncoding,
                "unknown compression '" + std::string(name.substr(0, 64)) + "'; known: bslz4, lz4");
  }
  image->hdf5_framing = true;
  image->data = data.bytes;
  return Status::Ok();
}

// data: {channel: image, ...}; the first channel is the one we use.
Status read_channels(CborReader& r, Image* image, bool* have_image, std::string_view* counter) {
  Token map;
  if (Status s = next_value(r, &map, counter); !s.ok()) return s;
  if (map.kind != Token::Kind::kMap) return wrong_type(counter, r, "\"data\" (a map of channels)", map);
  for (std::uint64_t i = 0; map.indefinite || i < map.value; ++i) {
    Token key;
    if (Status s = r.next(&key, counter); !s.ok()) return s;
    if (key.kind == Token::Kind::kBreak && map.indefinite) break;
    if (key.kind != Token::Kind::kText) return wrong_type(counter, r, "a channel name", key);
    if (*have_image) {
      ++image->extra_channels;
      if (Status s = skip_item(r, 1, counter); !s.ok()) return s;
      continue;
    }
    if (Status s = read_channel_image(r, image, counter); !s.ok()) return s;
    *have_image = true;
  }
  if (!*have_image)
    return fail(counter, counters::kV2WrongType, "an image message whose \"data\" has no channel");
  return Status::Ok();
}

Status parse_v2_map(CborReader& r, Message* message, std::string_view* counter) {
  Token t;
  if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind == Token::Kind::kTag && t.value == kTagSelfDescribed)
    if (Status s = r.next(&t, counter); !s.ok()) return s;
  if (t.kind != Token::Kind::kMap)
    return wrong_type(counter, r, "the message (a map with a \"type\")", t);
  const Token map = t;

  std::optional<std::string> type;
  std::optional<std::uint64_t> series_id, image_id;
  bool have_image = false;
  Image image;
  for (std::uint64_t i = 0; map.indefinite || i < map.value; ++i) {
    Token key;
    if (Status s = r.next(&key, counter); !s.ok()) return s;
    if (key.kind == Token::Kind::kBreak && map.indefinite) break;
    if (key.kind != Token::Kind::kText) return wrong_type(counter, r, "a message key", key);
    const std::string_view name(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size());
    if (name == "type") {
      Token value;
      if (Status s = next_value(r, &value, counter); !s.ok()) return s;
      if (value.kind != Token::Kind::kText) return wrong_type(counter, r, "\"type\"", value);
      type.emplace(reinterpret_cast<const char*>(value.bytes.data()),
                   std::min<std::size_t>(value.bytes.size(), 64));
    } else if (name == "series_id") {
      std::uint64_t v = 0;
      if (Status s = read_uint(r, "series_id", &v, counter); !s.ok()) return s;
      series_id = v;
    } else if (name == "image_id") {
      std::uint64_t v = 0;
      if (Status s = read_uint(r, "image_id", &v, counter); !s.ok()) return s;
      image_id = v;
    } else if (name == "real_time") {
      if (Status s = read_rational(r, "real_time", &image.exposure_s, counter); !s.ok()) return s;
    } else if (name == "data") {
      if (Status s = read_channels(r, &image, &have_image, counter); !s.ok()) return s;
    } else {
      if (Status s = skip_item(r, 1, counter); !s.ok()) return s;
    }
  }
  if (!r.at_end())
    return fail(counter, counters::kV2MalformedCbor,
                std::to_string(r.remaining()) + " bytes follow the CBOR message");
  if (!type)
    return fail(counter, counters::kV2WrongType, "a CBOR message without a \"type\" text string");
  if (!series_id)
    return fail(counter, counters::kV2WrongType,
                "a \"" + *type + "\" message without an unsigned \"series_id\"");
  message->series_id = *series_id;
  if (*type == "start") {
    message->kind = MessageKind::kSeriesStart;
  } else if (*type == "end") {
    message->kind = MessageKind::kSeriesEnd;
  } else if (*type == "image") {
    if (!image_id)
      return fail(counter, counters::kV2WrongType, "an image message without an unsigned \"image_id\"");
    if (!have_image)
      return fail(counter, counters::kV2WrongType, "an image message without \"data\"");
    message->kind = MessageKind::kImage;
    image.series_id = *series_id;
    image.frame_id = *image_id;
    message->image = image;
  } else {
    return fail(counter, counters::kV2UnknownType,
                "unknown message type '" + *type + "'; stream v2 has start, image and end");
  }
  return Status::Ok();
}

// --- CBOR writing ----------------------------------------------------------------------------

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
          {"compression", s.encoding == Encoding::kBitshuffleLz4 ? "bslz4"
                          : s.encoding == Encoding::kLz4        ? "lz4"
                                                                : "none"},
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

std::string encoding_name(Protocol protocol, Encoding encoding, PixelType dtype) {
  if (protocol == Protocol::kV2) {
    switch (encoding) {
      case Encoding::kNone: return "none";
      case Encoding::kLz4: return "lz4";
      case Encoding::kBitshuffleLz4: return "bslz4";
    }
  }
  switch (encoding) {
    case Encoding::kNone: return "<";
    case Encoding::kLz4: return "lz4<";
    case Encoding::kBitshuffleLz4: return "bs" + std::to_string(pixel_size(dtype) * 8) + "-lz4<";
  }
  return "?";
}

Status parse_v1(std::span<const std::span<const std::byte>> parts, Message* message,
                std::string_view* counter) {
  if (parts.empty())
    return fail(counter, counters::kV1WrongPartCount, "an empty message (no parts)");
  json first;
  if (Status s = parse_json_object(parts[0], 0, &first, counter); !s.ok()) return s;
  std::string htype;
  if (!get_string(first, "htype", &htype))
    return fail(counter, counters::kV1UnknownHtype, "part 1 has no \"htype\" string");
  if (htype == "dimage-1.0") return parse_v1_image(parts, first, message, counter);
  if (htype == "dheader-1.0") return parse_v1_header(parts, first, message, counter);
  if (htype == "dseries_end-1.0") {
    if (parts.size() != 1)
      return fail(counter, counters::kV1WrongPartCount,
                  "a series end (dseries_end-1.0) has " + std::to_string(parts.size()) +
                      " parts; expected 1");
    if (Status s = require_uint(first, "series", "dseries_end-1.0", &message->series_id, counter);
        !s.ok())
      return s;
    message->kind = MessageKind::kSeriesEnd;
    return Status::Ok();
  }
  return fail(counter, counters::kV1UnknownHtype,
              "unknown htype '" + htype.substr(0, 64) +
                  "' in part 1; expected dheader-1.0, dimage-1.0 or dseries_end-1.0");
}

Status parse_v2(std::span<const std::byte> bytes, Message* message, std::string_view* counter) {
  CborReader reader(bytes);
  return parse_v2_map(reader, message, counter);
}

Status decode_image(const Image& image, int expected_rows, int expected_cols,
                    std::optional<PixelType> expected_dtype, DetectorFrame* frame,
                    std::string_view* counter) {
  const std::string which = "frame " + std::to_string(image.frame_id) + " of series " +
                            std::to_string(image.series_id) + ": ";
  if ((expected_rows != 0 && image.rows != expected_rows) ||
      (expected_cols != 0 && image.cols != expected_cols))
    return fail(counter, counters::kWrongShape,
                which + "its shape is " + std::to_string(image.rows) + " x " +
                    std::to_string(image.cols) + " but the detector is configured as " +
                    std::to_string(expected_rows) + " x " + std::to_string(expected_cols));
  if (expected_dtype && image.dtype != *expected_dtype)
    return fail(counter, counters::kDtypeMismatch,
                which + "its type is " + to_string(image.dtype) +
                    " but the detector is configured to send " + to_string(*expected_dtype) +
                    " (detector.dtype)");
  const std::size_t n = static_cast<std::size_t>(image.rows) * static_cast<std::size_t>(image.cols);
  const std::size_t element = pixel_size(image.dtype);
  const std::size_t bytes = n * element;

  std::span<const std::byte> raw = image.data;
  if (image.encoding == Encoding::kNone) {
    if (raw.size() != bytes)
      return fail(counter, counters::kSizeMismatch,
                  which + "its uncompressed data is " + std::to_string(raw.size()) +
                      " bytes, but " + std::to_string(image.rows) + " x " +
                      std::to_string(image.cols) + " " + to_string(image.dtype) + " need " +
                      std::to_string(bytes));
  } else {
    // LZ4 expands at most about 255-fold, so a blob too short for the image is a lie that is
    // refused before a buffer of the image's size is even touched.
    if (bytes / 255 > image.data.size() + 16)
      return fail(counter, counters::kSizeMismatch,
                  which + "its " + std::to_string(image.data.size()) +
                      " compressed bytes cannot hold " + std::to_string(image.rows) + " x " +
                      std::to_string(image.cols) + " " + to_string(image.dtype) + " pixels");
    if (image.hdf5_framing) {
      compression::Hdf5FramingHeader header;
      Status s = compression::read_hdf5_framing_header(image.data, &header);
      if (!s.ok()) return fail(counter, counters::kCorruptData, which + s.message());
      if (header.decoded_bytes != bytes)
        return fail(counter, counters::kSizeMismatch,
                    which + "its compressed data says it decodes to " +
                        std::to_string(header.decoded_bytes) + " bytes, but " +
                        std::to_string(image.rows) + " x " + std::to_string(image.cols) + " " +
                        to_string(image.dtype) + " need " + std::to_string(bytes));
    }
    thread_local std::vector<std::byte> decoded;
    decoded.resize(bytes);
    Status s;
    if (image.encoding == Encoding::kBitshuffleLz4)
      s = compression::decode_bitshuffle_lz4(image.data, element, decoded);
    else if (image.hdf5_framing)
      s = compression::decode_lz4_hdf5(image.data, decoded);
    else
      s = compression::decode_lz4(image.data, decoded);
    if (!s.ok()) return fail(counter, counters::kCorruptData, which + s.message());
    raw = decoded;
  }

  frame->counts.resize(n);
  float* out = frame->counts.data();
  const PixelDefects defects = widen_pixels(image.dtype, raw.data(), out, n);
  if (defects.non_finite != 0)
    return fail(counter, counters::kNonFinite,
                which + std::to_string(defects.non_finite) + " of " + std::to_string(n) +
                    " pixels are NaN or infinite (first: pixel " +
                    std::to_string(defects.first_non_finite) + ")");
  if (defects.negative != 0)
    return fail(counter, counters::kNegative,
                which + std::to_string(defects.negative) + " of " + std::to_string(n) +
                    " pixels are negative (first: pixel " + std::to_string(defects.first_negative) +
                    ")");
  frame->rows = image.rows;
  frame->cols = image.cols;
  frame->dtype = image.dtype;
  frame->exposure_s = image.exposure_s;
  return Status::Ok();
}

// --- builders -----------------------------------------------------------------------------

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
  parts.push_back(filled<std::uint32_t>(n, 0));
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
  if (encoding == Encoding::kBitshuffleLz4) {
    w.text("bslz4");
    w.uint(pixel_size(dtype));
  } else {
    w.text("lz4");
    w.uint(0);
  }
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
    write_typed_image(w, PixelType::kUint32, s.rows, s.cols, Encoding::kNone, filled<std::uint32_t>(n, 0));
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

// --- MD5 (RFC 1321) ---------------------------------------------------------------------------

std::string md5_hex(std::span<const std::byte> data) {
  static const std::array<std::uint32_t, 64> k = [] {
    std::array<std::uint32_t, 64> table{};
    for (int i = 0; i < 64; ++i)
      table[i] = static_cast<std::uint32_t>(std::floor(std::fabs(std::sin(i + 1.0)) * 4294967296.0));
    return table;
  }();
  static constexpr std::array<int, 16> shifts = {7, 12, 17, 22, 5, 9, 14, 20,
                                                 4, 11, 16, 23, 6, 10, 15, 21};
  std::uint32_t a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  auto process = [&](const std::byte* chunk) {
    std::uint32_t m[16];
    std::memcpy(m, chunk, 64);  // little-endian words, as on this host
    std::uint32_t a = a0, b = b0, c = c0, d = d0;
    for (int i = 0; i < 64; ++i) {
      std::uint32_t f;
      int g;
      if (i < 16) f = (b & c) | (~b & d), g = i;
      else if (i < 32) f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
      else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;
      else f = c ^ (b | ~d), g = (7 * i) % 16;
      f += a + k[i] + m[g];
      a = d;
      d = c;
      c = b;
      b += std::rotl(f, shifts[(i / 16) * 4 + i % 4]);
    }
    a0 += a, b0 += b, c0 += c, d0 += d;
  };
  const std::size_t whole = data.size() / 64 * 64;
  for (std::size_t i = 0; i < whole; i += 64) process(data.data() + i);
  std::byte tail[128] = {};
  const std::size_t rest = data.size() - whole;
  if (rest) std::memcpy(tail, data.data() + whole, rest);
  tail[rest] = std::byte{0x80};
  const std::size_t tail_size = rest < 56 ? 64 : 128;
  const std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  std::memcpy(tail + tail_size - 8, &bits, 8);
  for (std::size_t i = 0; i < tail_size; i += 64) process(tail + i);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (std::uint32_t word : {a0, b0, c0, d0})
    for (int byte = 0; byte < 4; ++byte) {
      const unsigned v = (word >> (8 * byte)) & 0xff;
      hex += kHex[v >> 4];
      hex += kHex[v & 15];
    }
  return hex;
}

}  // namespace ptypilot::dectris
