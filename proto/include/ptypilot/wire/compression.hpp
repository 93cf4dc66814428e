// Codecs of detector data: bitshuffle + LZ4 and LZ4, in the framings that DECTRIS detectors use on
// their streams and in their HDF5 files, and uncompressed. Both ends (the daemon's stream
// sources, the replay readers, the simulated detector) use these functions, so there is one
// implementation of each format.
//
// Formats (all multi-byte header fields are big-endian):
//
//   bitshuffle + LZ4, HDF5 framing (HDF5 filter 32008 with LZ4; DECTRIS "bs8/bs16/bs32-lz4<" on
//   stream v1, "bslz4" on stream v2, the chunks of DECTRIS HDF5 data files):
//     uint64  decoded size in bytes
//     uint32  block size in BYTES (a multiple of 8 * element size; 8192 by default)
//     then per block of block-size bytes (the last one shorter, rounded down to a multiple of
//     8 elements): uint32 compressed size, then that many bytes of one LZ4 block holding the
//     bit-transposed block;
//     then the trailing (element count mod 8) elements, copied verbatim and unshuffled.
//   Bit transposition of a block of n elements (n a multiple of 8) of E bytes, little-endian:
//   bit-plane b (0 = least significant, up to 8E - 1) is a row of n / 8 bytes, and bit i mod 8
//   (least significant first) of byte i / 8 of that row is bit b of element i.
//
//   LZ4, HDF5 framing (HDF5 filter 32004; DECTRIS "lz4" on stream v2):
//     uint64  decoded size in bytes
//     uint32  block size in bytes
//     then per block: uint32 stored size, then the block: LZ4-compressed, or stored verbatim when
//     the stored size equals the block's decoded size (a block that LZ4 does not shrink).
//
//   LZ4, raw block (DECTRIS "lz4<" on stream v1): one LZ4 block, no header; the reader knows the
//   decoded size from the image's shape and type.
//
// Decoders take untrusted input. They write into a caller-provided buffer whose size is the
// exact decoded size that the caller expects (from the image's shape and type), and fail with
// kInvalidArgument, naming the byte offset and the problem, on truncated input, a header whose
// sizes disagree with that buffer or with the input, a corrupt LZ4 block, or trailing bytes.
// They never throw and never read or write out of bounds. Their only allocation is a scratch
// block of at most one block's size, which is at most out.size() (and so bounded by what the
// caller chose to allocate); it is reused across calls on the same thread.
//
// Encoders take trusted input (our own frames) and append nothing: they replace *out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ptypilot/status.hpp"

namespace ptypilot::compression {

// The HDF5-framing header, 12 bytes.
inline constexpr std::size_t kHdf5HeaderBytes = 12;
// Bitshuffle's default block: 8192 bytes of elements (so 4096 uint16 elements).
inline constexpr std::size_t kDefaultBitshuffleBlockBytes = 8192;
// A decoded size above this is refused by the header reader: no detector frame or HDF5 chunk we
// read is anywhere near it, and a corrupt header must not make a caller allocate gigabytes.
inline constexpr std::uint64_t kMaxDecodedBytes = 1ULL << 30;

struct Hdf5FramingHeader {
  std::uint64_t decoded_bytes = 0;
  std::uint32_t block_bytes = 0;
};

// Reads the 12-byte header of either HDF5 framing, for a caller that must learn the decoded size
// before it allocates. Fails on fewer than 12 bytes or a decoded size above kMaxDecodedBytes.
Status read_hdf5_framing_header(std::span<const std::byte> in, Hdf5FramingHeader* header);

// --- bitshuffle + LZ4, HDF5 framing ----------------------------------------------------------

// element_size: 1, 2, 4 or 8 bytes. out.size() must be the decoded size the header states.
Status decode_bitshuffle_lz4(std::span<const std::byte> in, std::size_t element_size,
                             std::span<std::byte> out);
// block_bytes 0: the default (8192); otherwise a positive multiple of 8 * element_size.
// in.size() must be a multiple of element_size.
Status encode_bitshuffle_lz4(std::span<const std::byte> in, std::size_t element_size,
                             std::vector<std::byte>* out, std::size_t block_bytes = 0);

// --- LZ4 ---------------------------------------------------------------------------------------

// A raw LZ4 block that must decode to exactly out.size() bytes.
Status decode_lz4(std::span<const std::byte> in, std::span<std::byte> out);
Status encode_lz4(std::span<const std::byte> in, std::vector<std::byte>* out);

// The HDF5 LZ4 framing. block_bytes 0: one block for the whole input (the filter's own default
// is 1 GiB, which is the same for every frame we send).
Status decode_lz4_hdf5(std::span<const std::byte> in, std::span<std::byte> out);
Status encode_lz4_hdf5(std::span<const std::byte> in, std::vector<std::byte>* out,
                       std::size_t block_bytes = 0);

// --- uncompressed ------------------------------------------------------------------------------

// Copies; fails unless in.size() == out.size().
Status decode_none(std::span<const std::byte> in, std::span<std::byte> out);

// --- the transposition alone, for tests and for data that arrives bitshuffled without LZ4 ------

// n = in.size() / element_size must be a multiple of 8, and out as large as in.
Status bitshuffle(std::span<const std::byte> in, std::size_t element_size, std::span<std::byte> out);
Status bitunshuffle(std::span<const std::byte> in, std::size_t element_size,
                    std::span<std::byte> out);

}  // namespace ptypilot::compression
