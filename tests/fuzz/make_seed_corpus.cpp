// make_seed_corpus DIR: writes valid inputs for each fuzz target into DIR/<target>/, made by the
// same builders the simulated detector uses: every v1 and v2 message kind, in every encoding
// and pixel type, on small images, and compressed blobs. Fuzzing starts from these, so that it
// reaches the deep paths (decompression, widening) instead of spending its time on the syntax.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "ptypilot.pb.h"
#include "ptypilot/wire/compression.hpp"
#include "ptypilot/wire/dectris_build.hpp"
#include "ptypilot/wire/merlin.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, const std::string& name, const std::vector<std::byte>& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The framing of fuzz_dectris_v1: uint16 LE length before each part.
std::vector<std::byte> framed(const std::vector<dectris::Part>& parts) {
  std::vector<std::byte> out;
  for (const auto& p : parts) {
    const std::size_t n = std::min<std::size_t>(p.size(), 65535);
    out.push_back(std::byte(n & 0xff));
    out.push_back(std::byte(n >> 8));
    out.insert(out.end(), p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

std::vector<std::byte> pixels(int n, PixelType type) {
  std::vector<std::byte> raw(static_cast<std::size_t>(n) * pixel_size(type));
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = std::byte((i * 7 % 5 == 0) ? i % 3 : 0);
  return raw;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seed_corpus DIR\n";
    return 2;
  }
  const fs::path root = argv[1];
  int count = 0;
  const auto name = [&count] { return "seed-" + std::to_string(count++); };
  for (PixelType type : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32, PixelType::kFloat32}) {
    for (dectris::Encoding encoding : {dectris::Encoding::kNone, dectris::Encoding::kLz4,
                                       dectris::Encoding::kBitshuffleLz4}) {
      dectris::SeriesInfo series;
      series.rows = 8;
      series.cols = 12;
      series.dtype = type;
      series.encoding = encoding;
      const auto raw = pixels(series.rows * series.cols, type);
      std::vector<std::byte> blob;
      for (auto protocol : {dectris::Protocol::kV1, dectris::Protocol::kV2}) {
        if (!dectris::encode_pixels(protocol, encoding, type, raw, &blob).ok()) return 1;
        if (protocol == dectris::Protocol::kV1)
          write(root / "fuzz_dectris_v1", name(), framed(dectris::v1_image(series, 3, blob, 10, 20)));
        else
          write(root / "fuzz_dectris_v2", name(), dectris::v2_image(series, 3, blob, 10, 20));
      }
    }
  }
  for (const char* detail : {"none", "basic", "all"}) {
    dectris::SeriesInfo series;
    series.rows = series.cols = 4;
    series.header_detail = detail;
    write(root / "fuzz_dectris_v1", name(), framed(dectris::v1_series_header(series)));
    write(root / "fuzz_dectris_v2", name(), dectris::v2_start(series));
  }
  write(root / "fuzz_dectris_v1", name(), framed(dectris::v1_series_end(5)));
  write(root / "fuzz_dectris_v2", name(), dectris::v2_end(5));

  for (std::size_t element : {1, 2, 4, 8}) {
    for (std::size_t n : {5, 64, 203}) {
      const auto raw = pixels(static_cast<int>(n * element), PixelType::kUint8);
      std::vector<std::byte> encoded;
      if (!compression::encode_bitshuffle_lz4(raw, element, &encoded, 8 * element * 4).ok()) return 1;
      encoded.insert(encoded.begin(), std::byte(element == 1 ? 4 : element == 2 ? 5 : element == 4 ? 6 : 7));
      write(root / "fuzz_bslz4", name(), encoded);
      if (!compression::encode_lz4(raw, &encoded).ok()) return 1;
      encoded.insert(encoded.begin(), {std::byte{1}, std::byte(raw.size() & 0xff), std::byte(raw.size() >> 8)});
      write(root / "fuzz_lz4", name(), encoded);
      if (!compression::encode_lz4_hdf5(raw, &encoded, 64).ok()) return 1;
      encoded.insert(encoded.begin(), {std::byte{0}, std::byte{64}, std::byte{0}});
      write(root / "fuzz_lz4", name(), encoded);
    }
  }
  // fuzz_recorded_dataset: byte 0 picks the part the rest replaces (see that target).
  const auto chosen = [](char which, const auto& bytes) {
    std::vector<std::byte> out{std::byte(which)};
    for (char c : bytes) out.push_back(std::byte(c));
    return out;
  };
  write(root / "fuzz_recorded_dataset", name(), chosen(0, fuzz::valid_npy()));
  write(root / "fuzz_recorded_dataset", name(), chosen(1, fuzz::valid_mib()));
  write(root / "fuzz_recorded_dataset", name(), chosen(2, fuzz::kValidHdr));
  write(root / "fuzz_recorded_dataset", name(),
        chosen(3, fuzz::kSidecarStart + R"(, "Cs_mm": 1.2, "scan_shape": [2, 2]})"));
  // fuzz_merlin: byte 0 the frame side; a stream of an acquisition header and frames of each
  // depth, whole, cut short, and behind a bad prefix.
  for (PixelType type : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32}) {
    std::vector<std::byte> stream{std::byte{4}};
    const auto add = [&stream](const auto& message) { stream.insert(stream.end(), message.begin(), message.end()); };
    add(merlin::acquisition_header_message(3, 12));
    for (std::uint64_t k = 1; k <= 2; ++k) add(merlin::frame_message(k, 4, 4, type, pixels(16, type)));
    write(root / "fuzz_merlin", name(), stream);
    const std::string junk = "MPX,00000x0009,junk" + merlin::control_message({"GET", "DETECTORSTATUS", "0", "0"});
    for (char c : junk) stream.push_back(std::byte(c));
    stream.resize(stream.size() - 7);
    write(root / "fuzz_merlin", name(), stream);
  }
  // fuzz_control: every command as JSON and as protobuf; a Configure with the example config.
  const auto text = [](const std::string& t) {
    std::vector<std::byte> out;
    for (char c : t) out.push_back(std::byte(c));
    return out;
  };
  std::ifstream example(PTYPILOT_EXAMPLE_CONFIG);
  const std::string example_config((std::istreambuf_iterator<char>(example)),
                                   std::istreambuf_iterator<char>());
  if (example_config.empty()) return 1;
  for (const char* json :
       {R"({"command": "status"})", R"({"command": "stop"})", R"({"command": "get_reconstruction"})",
        R"({"command": "start", "session_id": "s-1"})",
        R"({"command": "configure", "config": {"session": {"preset": "mos2-paper",
            "total_positions": 100}, "policy": {"kind": "heuristic"}, "detector": {"dtype":
            "uint16"}, "recorder": {"directory": "sessions"}}})"})
    write(root / "fuzz_control", name(), text(json));
  std::vector<wire::ControlRequest> requests(5);
  requests[0].mutable_status();
  requests[1].mutable_stop();
  requests[2].mutable_get_reconstruction();
  requests[3].mutable_start()->set_session_id("s-2");
  requests[4].mutable_configure()->set_config_json(example_config);
  for (const auto& r : requests) write(root / "fuzz_control", name(), text(r.SerializeAsString()));
  std::cout << "wrote " << count << " seeds into " << root.string() << "\n";
  return 0;
}
