// libFuzzer target: the Merlin data stream as the daemon's MerlinSource reads it. Byte 0 is the
// configured frame side (0: any shape); the rest is the TCP byte stream, split into messages by
// split_message (which must always make progress), each acquisition header and frame header
// parsed, and a frame's big-endian pixels widened when its length holds them. Also the control
// answers' fields.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "ptypilot/wire/merlin.hpp"

using namespace ptypilot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint64_t side = data[0];
  const std::uint64_t max_length =
      side == 0 ? merlin::kMaxMessageLength : side * side * 4 + merlin::kMaxHeaderBytes + 1;
  const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  std::vector<float> pixels;
  std::size_t at = 0;
  std::uint64_t skip = 0;
  while (at < stream.size()) {
    if (skip > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(skip, stream.size() - at));
      at += n;
      skip -= n;
      continue;
    }
    const merlin::Split split = merlin::split_message(stream.subspan(at), max_length);
    if (split.kind == merlin::Split::Kind::kNeedMore) break;
    if (split.consume == 0 || split.consume > stream.size() - at) std::abort();
    if (split.kind == merlin::Split::Kind::kMessage) {
      const std::span<const std::byte> body = split.body;
      if (body.size() + merlin::kPrefixBytes + 1 != split.consume) std::abort();
      const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
      if (text.starts_with("HDR,")) {
        (void)merlin::parse_acquisition_header(text);
      } else if (text.starts_with("MQ1,")) {
        std::string why;
        const auto header = merlin::parse_frame_header(body, &why);
        const auto type = header ? merlin::pixel_type_of(header->depth) : std::nullopt;
        if (header && type &&
            header->header_bytes + std::uint64_t(header->width) * header->height * pixel_size(*type) ==
                body.size()) {
          pixels.resize(std::size_t(header->width) * header->height);
          merlin::decode_pixels(body.subspan(header->header_bytes), *type, pixels.data());
        }
      } else {
        (void)merlin::split_body(text.substr(0, 256));
      }
    }
    at += split.consume;
    skip = split.skip_after;
  }
  return 0;
}
