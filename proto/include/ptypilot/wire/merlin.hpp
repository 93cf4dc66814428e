// The Quantum Detectors Merlin (Medipix3) TCP protocol, as both ends share it (parsers in
// merlin.cpp, builders in merlin_build.cpp): the daemon's
// MerlinSource reads it (untrusted input), the simulated detector writes it, and the .mib file
// reader (sim_detector/recorded) parses its frame headers with the same code. No sockets here.
//
// Two TCP ports on the Merlin PC, which listens; clients connect:
//   control, 6341:  requests "MPX,<len>,<SET|GET|CMD>,<NAME>[,<value>]"; each is answered on the
//                   same connection: SET and CMD with "MPX,<len>,SET|CMD,<NAME>,<status>", GET
//                   with "MPX,<len>,GET,<NAME>,<value>,<status>"; status 0 ok, 1 busy, 2 not
//                   recognised, 3 value out of range.
//   data, 6342:     a byte stream of messages, each "MPX," + a 10-digit decimal length L + L bytes
//                   that start with "," (L counts that comma). The body after the comma is
//                   either the acquisition header, "HDR," + text lines "Key:\tvalue" ending with
//                   "End", sent once when an acquisition starts (before its first trigger), or a
//                   frame, "MQ1,<frame number>,<header bytes>,<chips>,<width>,<height>,<depth>,
//                   <layout>,..." padded to <header bytes>, then width x height big-endian
//                   pixels of <depth> U08, U16 or U32 (R64: raw chip readout, not supported).
//                   Frame numbers count from 1 within an acquisition. Nothing marks the end of
//                   an acquisition, or its abort.
// A .mib file is the frames' bodies ("MQ1,..." + pixels) back to back; NAME.hdr beside it is the
// acquisition header's text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/wire/frame.hpp"

namespace ptypilot::merlin {

inline constexpr int kControlPort = 6341;
inline constexpr int kDataPort = 6342;
// "MPX," + 10 digits; the body's comma follows.
inline constexpr std::size_t kPrefixBytes = 14;
// No frame or acquisition header has a larger text header.
inline constexpr std::size_t kMaxHeaderBytes = 65536;
// The frame header size a single-chip Merlin sends (a quad sends 768).
inline constexpr std::size_t kFrameHeaderBytes = 384;

// --- framing ----------------------------------------------------------------------------------

enum class PrefixStatus { kNeedMore, kOk, kBad };
// The message prefix at the start of `bytes`: kOk with *length (the L above, >= 1), kNeedMore
// while fewer than kPrefixBytes + 1 bytes are there, kBad with *why when they are not
// "MPX," + 10 digits + ",".
PrefixStatus read_prefix(std::span<const std::byte> bytes, std::uint64_t* length, std::string* why);
// Where the next "MPX," starts in `bytes` at or after `from`; npos when none does. A reader that
// lost the framing resumes there.
std::size_t find_prefix(std::span<const std::byte> bytes, std::size_t from);
// No Merlin message is longer: a 4096 x 4096 frame of U32 with the largest header.
inline constexpr std::uint64_t kMaxMessageLength = 4096ULL * 4096ULL * 4 + kMaxHeaderBytes + 1;

// The next message at the start of a data stream's unread bytes, as a reader takes it.
struct Split {
  enum class Kind {
    kNeedMore,    // not all of it is there yet; consume nothing
    kMessage,     // `body` (after the length's comma) is whole; consume `consume` bytes
    kBadFraming,  // not a prefix (`why`): consume `consume` bytes, to the next "MPX," or all
    kBadLength,   // a length above kMaxMessageLength: likewise resynced at the next "MPX,"
    kTooLong,     // above `max_length` but a length a frame can have: consume `consume` now and
                  // `skip_after` more as they arrive
  };
  Kind kind = Kind::kNeedMore;
  std::size_t consume = 0;
  std::uint64_t skip_after = 0;
  std::uint64_t length = 0;  // the prefix's L
  std::span<const std::byte> body;
  std::string why;
};
Split split_message(std::span<const std::byte> bytes, std::uint64_t max_length);

// "MPX,<10 digits>," for a body of `body_bytes` (the comma not included).
std::string prefix_for(std::size_t body_bytes);

// --- frames -----------------------------------------------------------------------------------

struct FrameHeader {
  std::uint64_t number = 0;
  std::size_t header_bytes = 0;
  int chips = 0;
  int width = 0;   // columns
  int height = 0;  // rows
  std::string depth;  // U08, U16, U32, R64, ...
};

// The MQ1 header at the start of `bytes` (at most kMaxHeaderBytes of it are read), or nullopt
// and *why.
std::optional<FrameHeader> parse_frame_header(std::span<const std::byte> bytes, std::string* why);
// The pixel type of a depth: U08 uint8, U16 uint16, U32 uint32; nullopt for others.
std::optional<PixelType> pixel_type_of(std::string_view depth);
// Big-endian pixels of `dtype` (uint8, uint16 or uint32) into floats; `out` holds
// pixels.size() / pixel_size(dtype) values.
void decode_pixels(std::span<const std::byte> pixels, PixelType dtype, float* out);

// A frame message, prefix included: the MQ1 header (kFrameHeaderBytes) and `pixels`, rows x cols
// little-endian `dtype` elements (uint8, uint16 or uint32; encode_payload() of native_frame.hpp
// makes them from counts), sent big-endian.
std::vector<std::byte> frame_message(std::uint64_t number, int rows, int cols, PixelType dtype,
                                     std::span<const std::byte> pixels);

// --- the acquisition header -------------------------------------------------------------------

struct AcquisitionHeader {
  std::optional<long long> frames_in_acquisition;
  std::optional<long long> frames_per_trigger;
  std::optional<long long> counter_depth;
};
// The "Key:\tvalue" lines of an acquisition header (the data port's HDR body or a .hdr file);
// unknown keys and lines are skipped.
AcquisitionHeader parse_acquisition_header(std::string_view text);
// An acquisition header message, prefix included, for `frames` frames of `counter_depth` bits.
std::vector<std::byte> acquisition_header_message(std::uint64_t frames, int counter_depth);

// --- control ----------------------------------------------------------------------------------

// A control message's body (after the length's comma), split at commas: {"SET",
// "NUMFRAMESTOACQUIRE", "100"}, or a response {"SET", "NUMFRAMESTOACQUIRE", "0"}.
std::vector<std::string> split_body(std::string_view body);
// A whole control message, prefix included, of the fields joined by commas.
std::string control_message(const std::vector<std::string>& fields);
// What a response's status code means, for messages.
std::string_view status_meaning(int status);

}  // namespace ptypilot::merlin
