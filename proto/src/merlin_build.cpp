// The Merlin protocol's builders (ptypilot/wire/merlin.hpp): the simulated detector, the
// daemon's control requests, the tests and the fuzz seeds. The parsers are merlin.cpp.
#include <algorithm>
#include <cstdio>
#include <string>

#include "ptypilot/wire/merlin.hpp"

namespace ptypilot::merlin {
namespace {

void append(std::vector<std::byte>& out, std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), p, p + text.size());
}

}  // namespace

std::string prefix_for(std::size_t body_bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "MPX,%010zu,", body_bytes + 1);
  return buffer;
}

std::vector<std::byte> frame_message(std::uint64_t number, int rows, int cols, PixelType dtype,
                                     std::span<const std::byte> pixels) {
  const char* depth = dtype == PixelType::kUint8 ? "U08" : dtype == PixelType::kUint32 ? "U32" : "U16";
  const int counter_depth = dtype == PixelType::kUint8 ? 6 : dtype == PixelType::kUint32 ? 24 : 12;
  char fields[256];
  // number, header bytes, chips, width, height, depth, chip layout, chip select (hex), time
  // stamp, shutter s, counter, colour mode, gain mode, thresholds..., DAC format, counter depth
  std::snprintf(fields, sizeof fields,
                "MQ1,%06llu,%05zu,01,%04d,%04d,%s,   1x1,01,2026-01-01 00:00:00.000000,"
                "0.001000,0,0,0,1.200000E+2,5.110000E+2,0.000000E+0,0.000000E+0,0.000000E+0,"
                "0.000000E+0,0.000000E+0,0.000000E+0,3RX,%d,",
                static_cast<unsigned long long>(number), kFrameHeaderBytes, cols, rows, depth,
                counter_depth);
  std::string header(fields);
  header.resize(kFrameHeaderBytes, ' ');  // padded to its size, as the Merlin does
  std::vector<std::byte> raw(pixels.begin(), pixels.end());  // little-endian: swapped below
  const std::size_t element = pixel_size(dtype);
  for (std::size_t i = 0; element > 1 && i + element <= raw.size(); i += element)
    std::reverse(raw.begin() + static_cast<std::ptrdiff_t>(i),
                 raw.begin() + static_cast<std::ptrdiff_t>(i + element));
  std::vector<std::byte> out;
  out.reserve(kPrefixBytes + 1 + header.size() + raw.size());
  append(out, prefix_for(header.size() + raw.size()));
  append(out, header);
  out.insert(out.end(), raw.begin(), raw.end());
  return out;
}

std::vector<std::byte> acquisition_header_message(std::uint64_t frames, int counter_depth) {
  std::string body = "HDR,\t\n";
  body += "Time and Date Stamp (day, mnth, yr, hr, min, s):\t01/01/2026 00:00:00\n";
  body += "Chip ID:\tW0_A0,-,-,-\n";
  body += "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX\n";
  body += "Assembly Size (NX1, 2X2):\t   1x1\n";
  body += "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM\n";
  body += "Counter Depth (number):\t" + std::to_string(counter_depth) + "\n";
  body += "Gain:\tSLGM\n";
  body += "Active Counters:\tAlternating\n";
  body += "Frames in Acquisition (Number):\t" + std::to_string(frames) + "\n";
  body += "Frames per Trigger (Number):\t1\n";
  body += "Trigger Start (Positive, Negative, Internal):\tRising Edge\n";
  body += "Trigger Stop (Positive, Negative, Internal):\tInternal\n";
  body += "Sensor Bias (V):\t120 V\n";
  body += "Sensor Polarity (Positive, Negative):\tPositive\n";
  body += "Temperature (C):\tBoard Temp 0.000000 Deg C\n";
  body += "End\t";
  std::vector<std::byte> out;
  append(out, prefix_for(body.size()));
  append(out, body);
  return out;
}

std::string control_message(const std::vector<std::string>& fields) {
  std::string body;
  for (std::size_t i = 0; i < fields.size(); ++i) body += (i ? "," : "") + fields[i];
  return prefix_for(body.size()) + body;
}

}  // namespace ptypilot::merlin
