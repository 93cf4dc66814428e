// DECTRIS stream v2 (one CBOR message each; dectris_stream.hpp): parse_v2, a pull parser over
// libcbor's streaming decoder that allocates nothing but the strings of its error messages.
#include <cbor.h>

#include <algorithm>
#include <optional>
#include <string>

#include "dectris_parse_internal.hpp"
#include "dectris_v2_tags.hpp"
#include "ptypilot/wire/dectris_parse.hpp"

namespace ptypilot::dectris {

namespace {

using namespace detail;

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
      return fail(counter, counters::kDectrisV2MalformedCbor,
                  "truncated CBOR: the message ends at byte " + std::to_string(pos_) +
                      " in the middle of an item");
    const cbor_decoder_result result =
        cbor_stream_decode(reinterpret_cast<cbor_data>(in_.data() + pos_), in_.size() - pos_,
                           &callbacks, token);
    if (result.status == CBOR_DECODER_NEDATA)
      return fail(counter, counters::kDectrisV2MalformedCbor,
                  "truncated CBOR at byte " + std::to_string(pos_) +
                      ": the item needs more than the " + std::to_string(in_.size() - pos_) +
                      " bytes left");
    if (result.status != CBOR_DECODER_FINISHED || result.read == 0)
      return fail(counter, counters::kDectrisV2MalformedCbor,
                  "malformed CBOR at byte " + std::to_string(pos_) +
                      " (a reserved or invalid item head)");
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
  return fail(
      counter, counters::kDectrisV2WrongType,
      what + " at byte " + std::to_string(r.item_offset()) + " is a CBOR " + kind_name(got.kind));
}

// Skips one whole item (with its tags and contents).
Status skip_item(CborReader& r, int depth, std::string_view* counter, const Token* first = nullptr) {
  if (depth > kMaxNesting)
    return fail(counter, counters::kDectrisV2MalformedCbor,
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
      return fail(counter, counters::kDectrisV2MalformedCbor,
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
      return fail(counter, counters::kDectrisV2MalformedCbor,
                  "more than 32 tags on one CBOR value");
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
    return fail(counter, counters::kDectrisV2WrongType,
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
    return fail(
        counter, counters::kDectrisV2WrongType,
        what + " at byte " + std::to_string(r.item_offset()) + " is not an array of " +
            std::to_string(size) + " (a " + kind_name(t.kind) +
            (t.kind == Token::Kind::kArray && !t.indefinite ? " of " + std::to_string(t.value)
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
    return fail(counter, counters::kFramesBadDtype,
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
    return fail(counter, counters::kDectrisV2WrongType,
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
      return fail(counter, counters::kDectrisUnknownEncoding,
                  "bslz4 with element size " + std::to_string(element_size) +
                      " on a typed array of " + to_string(*dtype));
    image->encoding = Encoding::kBitshuffleLz4;
  } else if (name == "lz4") {
    image->encoding = Encoding::kLz4;
  } else {
    return fail(counter, counters::kDectrisUnknownEncoding,
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
    return fail(counter, counters::kDectrisV2WrongType,
                "an image message whose \"data\" has no channel");
  return Status::Ok();
}

// start's pixel_mask: {channel: tag 40 [[rows, cols], uint32 typed array]}; the first channel's,
// as the images use the first channel.
Status read_pixel_mask(CborReader& r, Message* message, std::string_view* counter) {
  Token map;
  if (Status s = next_value(r, &map, counter); !s.ok()) return s;
  if (map.kind != Token::Kind::kMap)
    return wrong_type(counter, r, "\"pixel_mask\" (a map of channels)", map);
  bool have = false;
  for (std::uint64_t i = 0; map.indefinite || i < map.value; ++i) {
    Token key;
    if (Status s = r.next(&key, counter); !s.ok()) return s;
    if (key.kind == Token::Kind::kBreak && map.indefinite) break;
    if (key.kind != Token::Kind::kText) return wrong_type(counter, r, "a channel name", key);
    if (have) {
      if (Status s = skip_item(r, 1, counter); !s.ok()) return s;
      continue;
    }
    Image mask;
    if (Status s = read_channel_image(r, &mask, counter); !s.ok()) return s;
    if (mask.dtype != PixelType::kUint32)
      return fail(counter, counters::kFramesBadDtype,
                  std::string("a pixel_mask of ") + to_string(mask.dtype) +
                      "; a DECTRIS pixel mask is uint32");
    DetectorFrame decoded;
    if (Status s = decode_image(mask, 0, 0, std::nullopt, &decoded, counter); !s.ok())
      return {s.code(), "the pixel_mask: " + s.message()};
    message->pixel_mask.resize(decoded.counts.size());
    for (std::size_t k = 0; k < decoded.counts.size(); ++k)
      message->pixel_mask[k] = decoded.counts[k] != 0.0f ? 1u : 0u;  // nonzero stays nonzero
    message->pixel_mask_rows = mask.rows;
    message->pixel_mask_cols = mask.cols;
    have = true;
  }
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
  message->pixel_mask.clear();
  message->pixel_mask_rows = message->pixel_mask_cols = 0;
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
    } else if (name == "pixel_mask") {
      if (Status s = read_pixel_mask(r, message, counter); !s.ok()) return s;
    } else {
      if (Status s = skip_item(r, 1, counter); !s.ok()) return s;
    }
  }
  if (!r.at_end())
    return fail(counter, counters::kDectrisV2MalformedCbor,
                std::to_string(r.remaining()) + " bytes follow the CBOR message");
  if (!type)
    return fail(counter, counters::kDectrisV2WrongType,
                "a CBOR message without a \"type\" text string");
  if (!series_id)
    return fail(counter, counters::kDectrisV2WrongType,
                "a \"" + *type + "\" message without an unsigned \"series_id\"");
  message->series_id = *series_id;
  if (*type == "start") {
    message->kind = MessageKind::kSeriesStart;
  } else if (*type == "end") {
    message->kind = MessageKind::kSeriesEnd;
  } else if (*type == "image") {
    if (!image_id)
      return fail(counter, counters::kDectrisV2WrongType,
                  "an image message without an unsigned \"image_id\"");
    if (!have_image)
      return fail(counter, counters::kDectrisV2WrongType, "an image message without \"data\"");
    message->kind = MessageKind::kImage;
    image.series_id = *series_id;
    image.frame_id = *image_id;
    message->image = image;
  } else {
    return fail(counter, counters::kDectrisV2UnknownType,
                "unknown message type '" + *type + "'; stream v2 has start, image and end");
  }
  return Status::Ok();
}

}  // namespace

Status parse_v2(std::span<const std::byte> bytes, Message* message, std::string_view* counter) {
  CborReader reader(bytes);
  return parse_v2_map(reader, message, counter);
}

}  // namespace ptypilot::dectris
