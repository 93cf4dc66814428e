// The Merlin protocol's parsing (ptypilot/wire/merlin.hpp): untrusted input, fuzzed
// (tests/fuzz/fuzz_merlin.cpp). The builders are merlin_build.cpp.
#include "ptypilot/wire/merlin.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>


namespace ptypilot::merlin {
namespace {

constexpr std::string_view kMagic = "MPX,";
constexpr std::string_view kFrameMagic = "MQ1,";

std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string_view trim(std::string_view f) {
  while (!f.empty() && (f.front() == ' ' || f.front() == '\0' || f.front() == '\t'))
    f.remove_prefix(1);
  while (!f.empty() && (f.back() == ' ' || f.back() == '\0' || f.back() == '\t' ||
                        f.back() == '\r' || f.back() == '\n'))
    f.remove_suffix(1);
  return f;
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    fields.push_back(trim(text.substr(start, comma == std::string_view::npos ? text.npos
                                                                                : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return fields;
}

std::optional<long long> to_integer(std::string_view text) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

PrefixStatus read_prefix(std::span<const std::byte> bytes, std::uint64_t* length,
                         std::string* why) {
  const std::string_view text = as_text(bytes);
  const std::size_t have = std::min(text.size(), kPrefixBytes + 1);
  if (text.substr(0, std::min(have, kMagic.size())) != kMagic.substr(0, std::min(have, kMagic.size()))) {
    *why = "a message that does not start with \"MPX,\"";
    return PrefixStatus::kBad;
  }
  for (std::size_t i = kMagic.size(); i < std::min(have, kPrefixBytes); ++i)
    if (text[i] < '0' || text[i] > '9') {
      *why = "a message whose length is not 10 decimal digits: \"" +
             std::string(text.substr(0, have)) + "\"";
      return PrefixStatus::kBad;
    }
  if (have < kPrefixBytes + 1) return PrefixStatus::kNeedMore;
  if (text[kPrefixBytes] != ',') {
    *why = "a message whose length is not followed by ','";
    return PrefixStatus::kBad;
  }
  std::uint64_t value = 0;
  std::from_chars(text.data() + kMagic.size(), text.data() + kPrefixBytes, value);
  if (value == 0) {
    *why = "a message of length 0 (the length counts the comma after it)";
    return PrefixStatus::kBad;
  }
  *length = value;
  return PrefixStatus::kOk;
}

std::size_t find_prefix(std::span<const std::byte> bytes, std::size_t from) {
  const std::string_view text = as_text(bytes);
  if (from >= text.size()) return std::string_view::npos;
  // A partial "MPX" at the very end may be the start of the next message.
  for (std::size_t i = from; i < text.size(); ++i) {
    const std::size_t n = std::min(kMagic.size(), text.size() - i);
    if (text.compare(i, n, kMagic.substr(0, n)) == 0) return i;
  }
  return std::string_view::npos;
}

Split split_message(std::span<const std::byte> bytes, std::uint64_t max_length) {
  Split out;
  auto resync = [&](Split::Kind kind) {
    const std::size_t next = find_prefix(bytes, 1);
    out.kind = kind;
    out.consume = next == std::string_view::npos ? bytes.size() : next;
    return out;
  };
  switch (read_prefix(bytes, &out.length, &out.why)) {
    case PrefixStatus::kNeedMore: return out;
    case PrefixStatus::kBad: return resync(Split::Kind::kBadFraming);
    case PrefixStatus::kOk: break;
  }
  if (out.length > kMaxMessageLength) {
    out.why = "a message length of " + std::to_string(out.length) + " bytes, more than any frame";
    return resync(Split::Kind::kBadLength);
  }
  const std::uint64_t total = kPrefixBytes + out.length;
  if (out.length > max_length) {
    out.kind = Split::Kind::kTooLong;
    out.consume = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), total));
    out.skip_after = total - out.consume;
    out.why = "a message of " + std::to_string(out.length) + " bytes, more than " +
              std::to_string(max_length);
    return out;
  }
  if (bytes.size() < total) return out;
  out.kind = Split::Kind::kMessage;
  out.consume = static_cast<std::size_t>(total);
  out.body = bytes.subspan(kPrefixBytes + 1, static_cast<std::size_t>(out.length - 1));
  return out;
}

std::optional<FrameHeader> parse_frame_header(std::span<const std::byte> bytes, std::string* why) {
  const std::string_view text = as_text(bytes.first(std::min(bytes.size(), kMaxHeaderBytes)));
  if (text.substr(0, kFrameMagic.size()) != kFrameMagic) {
    *why = "no Merlin frame header (\"MQ1,\") there";
    return std::nullopt;
  }
  // The fields used are in the first 256 bytes; the rest is detector settings and padding.
  const std::vector<std::string_view> fields = split_fields(text.substr(0, 256));
  if (fields.size() < 8) {
    *why = "a frame header with fewer than 8 fields";
    return std::nullopt;
  }
  const auto number = to_integer(fields[1]);
  const auto header_bytes = to_integer(fields[2]);
  const auto chips = to_integer(fields[3]);
  const auto width = to_integer(fields[4]);
  const auto height = to_integer(fields[5]);
  if (!number || !header_bytes || !chips || !width || !height || *number < 0 ||
      *header_bytes < 16 || *header_bytes > static_cast<long long>(kMaxHeaderBytes) ||
      *width <= 0 || *height <= 0 || *width > 65536 || *height > 65536 || *chips < 0 ||
      *chips > 64) {
    *why = "a frame header whose frame number, header size, chips or shape is not a number in "
           "range: \"" +
           std::string(text.substr(0, std::min<std::size_t>(text.size(), 60))) + "...\"";
    return std::nullopt;
  }
  FrameHeader h;
  h.number = static_cast<std::uint64_t>(*number);
  h.header_bytes = static_cast<std::size_t>(*header_bytes);
  h.chips = static_cast<int>(*chips);
  h.width = static_cast<int>(*width);
  h.height = static_cast<int>(*height);
  h.depth = std::string(fields[6]);
  return h;
}

std::optional<PixelType> pixel_type_of(std::string_view depth) {
  if (depth == "U08") return PixelType::kUint8;
  if (depth == "U16") return PixelType::kUint16;
  if (depth == "U32") return PixelType::kUint32;
  return std::nullopt;
}

void decode_pixels(std::span<const std::byte> pixels, PixelType dtype, float* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(pixels.data());
  switch (dtype) {
    case PixelType::kUint8:
      for (std::size_t i = 0; i < pixels.size(); ++i) out[i] = static_cast<float>(p[i]);
      return;
    case PixelType::kUint16:
      for (std::size_t i = 0; i < pixels.size() / 2; ++i)
        out[i] = static_cast<float>((std::uint32_t{p[2 * i]} << 8) | p[2 * i + 1]);
      return;
    case PixelType::kUint32:
      for (std::size_t i = 0; i < pixels.size() / 4; ++i) {
        const std::uint32_t v = (std::uint32_t{p[4 * i]} << 24) | (std::uint32_t{p[4 * i + 1]} << 16) |
                                (std::uint32_t{p[4 * i + 2]} << 8) | p[4 * i + 3];
        out[i] = static_cast<float>(v);
      }
      return;
    default:
      return;
  }
}

AcquisitionHeader parse_acquisition_header(std::string_view text) {
  AcquisitionHeader h;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = trim(line.substr(0, colon));
    const auto number = to_integer(trim(line.substr(colon + 1)));
    if (key.starts_with("Frames in Acquisition")) h.frames_in_acquisition = number;
    else if (key.starts_with("Frames per Trigger")) h.frames_per_trigger = number;
    else if (key.starts_with("Counter Depth")) h.counter_depth = number;
  }
  return h;
}

std::vector<std::string> split_body(std::string_view body) {
  std::vector<std::string> out;
  for (std::string_view f : split_fields(body)) out.emplace_back(f);
  return out;
}

std::string_view status_meaning(int status) {
  switch (status) {
    case 0: return "ok";
    case 1: return "busy";
    case 2: return "not recognised";
    case 3: return "value out of range";
    default: return "unknown status";
  }
}

}  // namespace ptypilot::merlin
