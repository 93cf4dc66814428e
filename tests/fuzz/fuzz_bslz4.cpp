// libFuzzer target: the bitshuffle + LZ4 decoder (HDF5 framing). Byte 0 chooses the element
// size (1, 2, 4, 8) and a block size; the rest is decoded into the size its header states, and
// also encoded and decoded again, which must give it back exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "ptypilot/wire/compression.hpp"

using namespace ptypilot;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr std::size_t kElementSizes[] = {1, 2, 4, 8};
  const std::size_t element = kElementSizes[data[0] & 3];
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  compression::Hdf5FramingHeader header;
  if (compression::read_hdf5_framing_header(in, &header).ok() && header.decoded_bytes <= (1u << 20)) {
    std::vector<std::byte> out(header.decoded_bytes);
    (void)compression::decode_bitshuffle_lz4(in, element, out);
  }

  const std::span<const std::byte> raw = in.first(in.size() / element * element);
  const std::size_t block = (data[0] >> 2) == 0 ? 0 : 8 * element * (data[0] >> 2);
  std::vector<std::byte> encoded;
  if (!compression::encode_bitshuffle_lz4(raw, element, &encoded, block).ok()) std::abort();
  std::vector<std::byte> decoded(raw.size());
  if (!compression::decode_bitshuffle_lz4(encoded, element, decoded).ok()) std::abort();
  if (!std::equal(decoded.begin(), decoded.end(), raw.begin())) std::abort();
  return 0;
}
